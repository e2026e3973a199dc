"""Shared pieces of the load tests: a scratch database, the mock SMSC in its own process.

Every load test is bounded in count and time, talks only to 127.0.0.1, and cleans up after
itself (the scratch database is dropped, the mock process is stopped).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from broadcaster.settings import PROJECT_ROOT, Settings
from broadcaster.store.database import database, ensure_migrated

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=1.0)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A migrated database of our own on DATABASE_URL's server, the local one, or embedded."""
    server = os.environ.get("DATABASE_URL") or LOCAL_SERVER
    if not await _answers(server):
        async with database(Settings()) as embedded:
            await ensure_migrated(embedded, PROJECT_ROOT / "sql")
            yield embedded
        return
    name = f"bc_loadtest_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    try:
        await ensure_migrated(dsn, PROJECT_ROOT / "sql")
        yield dsn
    finally:
        admin = await asyncpg.connect(server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextmanager
def mock_smsc_process(*args: str) -> Iterator[int]:
    """`broadcaster mock-smsc` in its own process on a free port; yields the port."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", "mock-smsc", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        event = json.loads(line)
        yield int(event["port"])
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def broadcaster_cli(
    *args: str, env: dict[str, str], timeout: float = 600
) -> tuple[dict[str, Any], float]:
    """Run the CLI with --json; return its last JSON line and the wall time."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "broadcaster", "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    if not proc.stdout.strip():
        raise RuntimeError(f"broadcaster {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), elapsed


async def departements_for(dsn: str, at_least: int) -> list[str]:
    """Smallest prefix of départements (by code) holding at least `at_least` subscribers."""
    conn = await asyncpg.connect(dsn)
    rows = await conn.fetch(
        "SELECT departement, count(*) AS n FROM subscribers GROUP BY 1 ORDER BY 1"
    )
    await conn.close()
    chosen, total = [], 0
    for r in rows:
        chosen.append(r["departement"])
        total += r["n"]
        if total >= at_least:
            break
    return chosen


def run(coro: Any) -> Any:
    return asyncio.run(coro)
