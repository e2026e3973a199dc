"""schemathesis, driven by the served OpenAPI document, finds no 5xx (and no undocumented status).

The app runs on 127.0.0.1 in the test's event loop; schemathesis (synchronous, requests-based)
runs in a worker thread against it, for every operation, with data that fits the schemas and
data that does not. Bounded: a few examples per operation and mode, well under a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import asyncpg
import hypothesis
import hypothesis.errors
import requests
import schemathesis
from aiohttp.test_utils import TestServer
from fixtures_tokens import mint_token
from hypothesis import HealthCheck
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    status_code_conformance,
)

from broadcaster.serve import create_app
from broadcaster.settings import Settings

EXAMPLES_PER_MODE = 12
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


def _fuzz(base_url: str, token: str, statuses: Counter[int]) -> list[str]:
    """Run every operation in both modes; return one line per failure (empty: none)."""
    document = requests.get(f"{base_url}/v1/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    session = requests.Session()
    headers = {"Authorization": f"Bearer {token}"}
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failures += _fuzz_operation(operation, mode, base_url, session, headers, statuses)
    return failures


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    session: requests.Session,
    headers: dict[str, str],
    statuses: Counter[int],
) -> list[str]:
    failures: list[str] = []

    @hypothesis.settings(
        max_examples=EXAMPLES_PER_MODE,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base_url, session=session, headers=headers)
        statuses[response.status_code] += 1
        if operation.label == "GET /readyz" and response.status_code == 503:
            return  # its documented answer here: this app runs no worker, so no bind is up
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # record it, keep fuzzing the others
            failures.append(
                f"{operation.label} [{mode.value}] -> {response.status_code}: "
                f"{type(exc).__name__}: {str(exc)[:400]}"
            )

    # Unsatisfiable: nothing can be invalid about an operation without parameters or body.
    with contextlib.suppress(hypothesis.errors.Unsatisfiable):
        run()
    return failures


async def test_schemathesis_finds_no_server_error(db_dsn: str) -> None:
    settings = Settings(database_url=db_dsn, api_rate_per_second=10_000.0, api_rate_burst=10_000)
    db = await asyncpg.create_pool(db_dsn, min_size=1, max_size=8)
    try:
        async with db.acquire() as conn:
            await conn.execute(
                "INSERT INTO subscribers (msisdn, departement, commune, lang, test_group) "
                "VALUES (33600000001, '75', '75056', 'fr', false), "
                "(33600000002, '75', '75056', 'fr', true)"
            )
            _, token = await mint_token(conn, "fuzzer", "admin")
        statuses: Counter[int] = Counter()
        server = TestServer(create_app(settings, db), host="127.0.0.1")
        await server.start_server()
        try:
            base_url = str(server.make_url("")).rstrip("/")
            fuzz: Callable[[], list[str]] = lambda: _fuzz(base_url, token, statuses)  # noqa: E731
            failures = await asyncio.wait_for(asyncio.to_thread(fuzz), timeout=100)
        finally:
            await server.close()
    finally:
        await db.close()
    assert not failures, "\n".join(failures)
    # It did exercise the API: successes and refusals of several kinds.
    assert sum(statuses.values()) >= 200, statuses
    assert {200, 400, 404} <= set(statuses), statuses
