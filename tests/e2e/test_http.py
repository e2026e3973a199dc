"""The HTTP trigger as the crisis cell drives it: `broadcaster serve --mock-smsc` (API and worker in
one process), tokens from the CLI, create -> approve by a second person -> watch until completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

THRESHOLD = 10
PUBLIC_75 = 60
PUBLIC_92 = 15


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broadcaster", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def cli_json(env: dict[str, str], *args: str) -> Any:
    proc = cli(env, *args, "--json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture
def env(db_dsn: str) -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    out["DATABASE_URL"] = db_dsn
    out["BROADCASTER_API_APPROVAL_THRESHOLD"] = str(THRESHOLD)
    return out


async def _seed(dsn: str) -> None:
    rows = [(33610000000 + i, "75", "75056", "fr" if i % 4 else "en", False) for i in range(60)]
    rows += [(33620000000 + i, "92", "92012", "fr", False) for i in range(15)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO subscribers (msisdn, departement, commune, lang, test_group) "
            "VALUES ($1, $2, $3, $4, $5)",
            rows,
        )
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def serving(env: dict[str, str]) -> AsyncIterator[str]:
    """`broadcaster serve --mock-smsc` on a free port; yields its base URL; stops it (SIGTERM)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broadcaster",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--mock-smsc",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr_task = asyncio.ensure_future(proc.stderr.read())
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, (await stderr_task).decode()[-3000:]
        yield json.loads(line)["listening"]
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
        stderr = (await stderr_task).decode()
        assert code == 0, stderr[-3000:]
        assert "unexpected_error" not in stderr, stderr[-3000:]


async def _get(session: aiohttp.ClientSession, url: str, token: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.get(url, headers=headers) as response:
        text = await response.text()
        return response.status, (json.loads(text) if "json" in response.content_type else text)


async def _post(
    session: aiohttp.ClientSession, url: str, token: str, body: Any = None
) -> tuple[int, Any]:
    async with session.post(
        url, json=body, headers={"Authorization": f"Bearer {token}", "X-Request-Id": "e2e-1"}
    ) as response:
        return response.status, await response.json()


async def test_create_approve_by_a_second_person_and_watch_until_completed(
    env: dict[str, str], db_dsn: str
) -> None:
    await _seed(db_dsn)
    alice = (
        await asyncio.to_thread(
            cli_json, env, "tokens", "create", "--role", "operator", "--name", "alice"
        )
    )["token"]
    bob = (
        await asyncio.to_thread(
            cli_json, env, "tokens", "create", "--role", "approver", "--name", "bob"
        )
    )["token"]
    async with serving(env) as base, aiohttp.ClientSession() as http:
        deadline = time.monotonic() + 20
        while True:
            status, ready = await _get(http, f"{base}/readyz")
            if status == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert status == 200, ready
        assert ready["binds_up"] >= 1

        status, created = await _post(
            http,
            f"{base}/v1/broadcasts",
            alice,
            {"areas": ["dep:75", "dep:92"], "template": "outage"},
        )
        assert status == 201, created
        broadcast = created["broadcast"]
        broadcast_id = broadcast["broadcast_id"]
        assert broadcast["recipients"] == PUBLIC_75 + PUBLIC_92
        assert broadcast["state"] == "pending_approval"

        # The worker runs, but nothing goes out before a second person approves.
        await asyncio.sleep(1.0)
        _, waiting = await _get(http, f"{base}/v1/broadcasts/{broadcast_id}", alice)
        assert waiting["state"] == "pending_approval"
        assert waiting["recorded"] == 0
        status, _ = await _post(http, f"{base}/v1/broadcasts/{broadcast_id}/approve", alice)
        assert status == 403

        status, approved = await _post(http, f"{base}/v1/broadcasts/{broadcast_id}/approve", bob)
        assert status == 200, approved
        assert approved["approved_by"] == "bob"

        deadline = time.monotonic() + 60
        seen_states = []
        while True:
            _, current = await _get(http, f"{base}/v1/broadcasts/{broadcast_id}", bob)
            seen_states.append(current["state"])
            if current["state"] in ("completed", "cancelled", "expired", "failed"):
                break
            assert time.monotonic() < deadline, current
            await asyncio.sleep(0.1)
        assert current["state"] == "completed", current
        assert current["accepted"] == PUBLIC_75 + PUBLIC_92, json.dumps(current)
        assert current["failed"] == 0
        assert current["duplicates"] == 0
        assert current["approved_by"] == "bob"

        _, report = await _get(http, f"{base}/v1/broadcasts/{broadcast_id}/report", bob)
        assert {(g["departement"], g["lang"]) for g in report["groups"]} == {
            ("75", "fr"),
            ("75", "en"),
            ("92", "fr"),
        }
        assert [e["action"] for e in report["audit"]] == ["create", "denied", "approve"]

        _, metrics = await _get(http, f"{base}/metrics")
        values = _samples(metrics)
        assert values["broadcaster_parts_accepted_total"] >= PUBLIC_75 + PUBLIC_92
        assert values["broadcaster_parts_submitted_total"] >= PUBLIC_75 + PUBLIC_92
        assert any(k.startswith("broadcaster_bind_up{") and v == 1.0 for k, v in values.items())
        assert 'broadcaster_broadcasts{kind="live",state="completed"}' in values

        # The audit log, from the CLI: who did what, in which request.
        audit = await asyncio.to_thread(cli_json, env, "audit", "--limit", "10")
        actions = {(e["actor"], e["action"]) for e in audit["entries"]}
        assert {("alice", "create"), ("alice", "denied"), ("bob", "approve")} <= actions
        assert all(
            e["details"].get("request_id") == "e2e-1"
            for e in audit["entries"]
            if e["action"] in ("create", "approve")
        )

        # Revoking a token from the CLI shuts its holder out at once.
        tokens = await asyncio.to_thread(cli_json, env, "tokens", "list")
        alice_id = next(t["id"] for t in tokens["tokens"] if t["name"] == "alice")
        await asyncio.to_thread(cli_json, env, "tokens", "revoke", str(alice_id))
        status, body = await _get(http, f"{base}/v1/broadcasts", alice)
        assert status == 401
        assert "revoked" in body["error"]["message"]


def _samples(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_serve_refuses_without_an_smsc(env: dict[str, str]) -> None:
    proc = cli(env, "serve", "--port", "0")
    assert proc.returncode == 2
    assert "no SMSC is configured" in proc.stderr
    assert "--mock-smsc" in proc.stderr


def test_tokens_cli_shows_a_token_once_and_lists_it_without_it(env: dict[str, str]) -> None:
    created = cli(env, "tokens", "create", "--role", "admin", "--name", "root")
    assert created.returncode == 0, created.stderr
    token = next(w for w in created.stdout.split() if w.startswith("bct_"))
    listing = cli(env, "tokens", "list")
    assert listing.returncode == 0
    assert "root" in listing.stdout
    assert token not in listing.stdout
    assert token[:12] in listing.stdout
    bad = cli(env, "tokens", "create", "--role", "admin", "--name", "cli")
    assert bad.returncode == 2
    assert "reserved" in bad.stderr
