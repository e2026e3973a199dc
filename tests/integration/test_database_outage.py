"""A database outage mid-send, ridden out (issue 20, item 2): a throwaway cluster of this test's
own is stopped with `pg_ctl stop -m immediate` while a `worker --until-idle` process and a
`serve` process send, and started again some seconds later. Nobody restarts anything: the
worker survives and finishes the broadcast, `serve` stays up and answers 503 meanwhile, and
the mock SMSC's record shows nobody missing and no more duplicates than could be in flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import PROJECT_ROOT, Settings, SmscConfig
from broadcaster.store import broadcasts as store
from broadcaster.store.areas import accept_placeholders_for_rehearsal
from broadcaster.store.database import ensure_migrated
from broadcaster.store.embedded import EmbeddedPostgres

WINDOW = 16
BINDS = 2
TPS = 150
"""Per bind: two processes of two binds send ~600 parts/s, the broadcast lasts seconds."""
OUTAGE_S = 4.0
pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def cluster() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL cluster of this test's own: it is stopped and started mid-test. Commits
    survive the stop as on a real server (the throwaway default, synchronous_commit=off, loses
    the last acknowledged ones on `-m immediate`: their parts would be sent again)."""
    with EmbeddedPostgres(settings={"synchronous_commit": "on"}) as pg:
        yield pg


def _log_file(path: Path) -> BinaryIO:
    return path.open("ab")


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


def _tail(path: Path) -> str:
    return _read(path)[-3000:]


def _env(dsn: str, smsc: SmscConfig) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "BROADCASTER_SMSC_URL": (
            f"smpp://outage:pw@127.0.0.1:{smsc.port}?binds={BINDS}&window={WINDOW}&tps={TPS}"
        ),
        "BROADCASTER_LOG_LEVEL": "info",
        "PYTHONUNBUFFERED": "1",
    }


async def _broadcaster(env: dict[str, str], log: Path, *args: str) -> asyncio.subprocess.Process:
    with _log_file(log) as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broadcaster",
            *args,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


@contextlib.asynccontextmanager
async def _serving(env: dict[str, str], log: Path) -> AsyncIterator[tuple[str, Any]]:
    """`broadcaster serve` (API, console and a worker) on a free port; its URL and process."""
    with _log_file(log) as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "broadcaster", "serve", "--host", "127.0.0.1", "--port", "0", "--json"),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, _tail(log)
        yield json.loads(line)["listening"], proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _get(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, Any]:
    async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        text = await response.text()
        body = json.loads(text) if "json" in response.content_type else text
        return response.status, body


async def _prepare(dsn: str) -> tuple[int, set[str], int]:
    """Schema, subscribers and an approved broadcast: (its id, its recipients, its parts)."""
    await ensure_migrated(dsn, PROJECT_ROOT / "sql")
    conn = await asyncpg.connect(dsn)
    try:
        await accept_placeholders_for_rehearsal(conn)
        await seed_synthetic(conn, 40_000, seed=9)
        settings = Settings(database_url=dsn, chunk_size=300)
        request = BroadcastRequest(areas=["dep:75", "dep:13"], template="outage", variables={})
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
        rows = await conn.fetch(
            "SELECT msisdn FROM subscribers WHERE departement = ANY($1)", ["75", "13"]
        )
    finally:
        await conn.close()
    return broadcast_id, {str(r["msisdn"]) for r in rows}, plan.parts


async def _token(env: dict[str, str]) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "broadcaster", "--json", "tokens", "create", "--role", "operator"),
        *("--name", "watcher"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return str(json.loads(out)["token"])


async def test_a_database_outage_mid_send_is_ridden_out_by_worker_and_serve(
    cluster: EmbeddedPostgres, start_mock: StartMock, tmp_path: Path
) -> None:
    dsn = cluster.dsn
    broadcast_id, expected, parts = await _prepare(dsn)
    # Paced so that the send lasts several seconds: the outage lands mid-send.
    mock, smsc = await start_mock(MockConfig(seed=9))
    env = _env(dsn, smsc)
    token = await _token(env)
    worker_log, serve_log = tmp_path / "worker.log", tmp_path / "serve.log"
    status_url = f"/v1/broadcasts/{broadcast_id}"
    # The worker process first: it claims the broadcast's chunks and sends them; `serve` (its
    # own worker idle meanwhile) answers the API.
    worker = await _broadcaster(env, worker_log, "worker", "--until-idle")
    while not mock.submits:
        assert worker.returncode is None, _tail(worker_log)
        await asyncio.sleep(0.01)
    async with _serving(env, serve_log) as (base, serve), aiohttp.ClientSession() as http:
        try:
            while mock.submits < parts // 4:
                assert worker.returncode is None, _tail(worker_log)
                await asyncio.sleep(0.01)

            await asyncio.to_thread(cluster.stop_server)
            answers: list[tuple[int, Any]] = []
            loop = asyncio.get_running_loop()
            down_until = loop.time() + OUTAGE_S
            while loop.time() < down_until:
                answers.append(await _get(http, base + status_url, token))
                await asyncio.sleep(0.5)
            submits_at_restart = mock.submits
            assert worker.returncode is None, _tail(worker_log)
            assert serve.returncode is None, _tail(serve_log)
            await asyncio.to_thread(cluster.start_server)

            code = await asyncio.wait_for(worker.wait(), 180)
            assert code == 0, _tail(worker_log)
        finally:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        status, after = await _get(http, base + status_url, token)
        assert serve.returncode is None, _tail(serve_log)

    # The API said "unavailable", with a clear JSON error, while the database was away.
    assert answers and all(s == 503 for s, _ in answers), answers
    assert all(body["error"]["code"] == "unavailable" for _, body in answers), answers
    assert status == 200 and after["state"] == "completed", after
    assert mock.submits > submits_at_restart  # it resumed by itself after the restart
    received = mock.record.messages
    assert not expected - set(received), "recipients missing"
    twice = sum(len(texts) - 1 for texts in received.values())
    in_flight = 2 * BINDS * WINDOW  # two processes, each with its binds' windows
    assert twice <= in_flight
    conn = await asyncpg.connect(dsn)
    try:
        final = await store.progress(conn, broadcast_id)
    finally:
        await conn.close()
    assert final["accepted"] == len(expected)
    # The worker process stopped submitting, kept its binds and resumed by itself.
    logs = _read(worker_log)
    assert "database_lost" in logs and "database_back" in logs, logs[-3000:]
    assert logs.count("bind_up") == BINDS and "bind_lost" not in logs, logs[-3000:]


async def test_a_worker_told_to_stop_while_the_database_is_away_stops(
    cluster: EmbeddedPostgres, start_mock: StartMock, tmp_path: Path
) -> None:
    """SIGTERM during an outage: the worker gives the database a few seconds to record what it
    holds, then exits (cleanly, saying how many outcomes went unrecorded) instead of hanging."""
    dsn = cluster.dsn
    await _prepare(dsn)
    mock, smsc = await start_mock(MockConfig(seed=9))
    env = _env(dsn, smsc)
    log = tmp_path / "worker.log"
    worker = await _broadcaster(env, log, "worker")
    try:
        while mock.submits < 200:
            assert worker.returncode is None, _tail(log)
            await asyncio.sleep(0.01)
        await asyncio.to_thread(cluster.stop_server)
        await asyncio.sleep(1.0)
        assert worker.returncode is None, _tail(log)
        worker.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(worker.wait(), 60)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await asyncio.to_thread(cluster.start_server)
    assert code == 0, _tail(log)
    assert "did not answer within" in _read(log), _tail(log)
