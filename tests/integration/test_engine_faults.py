"""The engine under faults (issue 20), with real processes and the mock SMSC's record as judge:
a data change between planning and sending, an unexpected error in the streaming path, and a
worker restarted with `--until-idle` after a crash."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.cli.control import _status_text
from broadcaster.commands.broadcasts import act
from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine.runner import BroadcastRunner, PartTag
from broadcaster.engine.worker import Worker
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig
from broadcaster.planning import Plan
from broadcaster.settings import Settings, SmscConfig
from broadcaster.store import broadcasts as store
from broadcaster.store.database import create_pool
from broadcaster.web.progress import snapshot

TESTER = Caller(name="test", role="admin", interface="cli")
ITALIAN = 33699999001


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=2, max_size=8)
    async with pool.acquire() as conn:
        await seed_synthetic(conn, 20_000, seed=7)
    yield pool
    await pool.close()


async def _create(
    db: asyncpg.Pool, dsn: str, areas: list[str], chunk_size: int = 200
) -> tuple[int, Plan]:
    settings = Settings(database_url=dsn, chunk_size=chunk_size)
    request = BroadcastRequest(areas=areas, template="outage", variables={})
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        return await create_broadcast(conn, settings, request, plan), plan


async def _subscribers(db: asyncpg.Pool, deps: list[str]) -> dict[str, tuple[str, str]]:
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT msisdn, departement, lang FROM subscribers WHERE departement = ANY($1)", deps
        )
    return {str(r["msisdn"]): (r["departement"], r["lang"]) for r in rows}


def _worker_env(dsn: str, smsc: SmscConfig) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "BROADCASTER_SMSC_URL": f"smpp://faults:pw@127.0.0.1:{smsc.port}?binds=2&window=32",
        "BROADCASTER_LOG_LEVEL": "info",
        "PYTHONUNBUFFERED": "1",
    }


def _log_file(path: Path) -> BinaryIO:
    return path.open("ab")


async def _start_worker(
    dsn: str, smsc: SmscConfig, *args: str, log_to: Path
) -> asyncio.subprocess.Process:
    """`broadcaster worker ARGS` in a process of its own, its output appended to `log_to`."""
    with _log_file(log_to) as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broadcaster",
            "worker",
            *args,
            env=_worker_env(dsn, smsc),
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


async def _wait(proc: asyncio.subprocess.Process, seconds: float) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), seconds)
    except TimeoutError:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        raise AssertionError(f"the worker did not finish within {seconds:g} s") from None


async def test_a_subscriber_imported_in_a_new_language_gets_the_default_text_in_a_worker(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, tmp_path: Path
) -> None:
    """The issue's repro: plan dep:48, pause, import an Italian subscriber, resume, run a real
    worker: everybody gets one message, the newcomer the département's default text."""
    mock, smsc = await start_mock(MockConfig(seed=4))
    broadcast_id, plan = await _create(db, db_dsn, ["dep:48"])
    async with db.acquire() as conn:
        await act(conn, TESTER, broadcast_id, "pause")
        default = await conn.fetchval("SELECT default_language FROM departements WHERE code='48'")
        assert ("48", "it") not in plan.language_of
    csv = tmp_path / "it.csv"
    csv.write_text(f"msisdn,departement,lang\n{ITALIAN},48,it\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broadcaster",
        "subscribers",
        "import",
        str(csv),
        env=_worker_env(db_dsn, smsc),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    async with db.acquire() as conn:
        await act(conn, TESTER, broadcast_id, "resume")
    expected = await _subscribers(db, ["48"])
    assert expected[str(ITALIAN)] == ("48", "it")
    worker = await _start_worker(db_dsn, smsc, "--until-idle", log_to=tmp_path / "worker.log")
    assert await _wait(worker, 60) == 0, (tmp_path / "worker.log").read_text()

    received = mock.record.messages
    assert set(received) == set(expected)
    assert all(len(texts) == 1 for texts in received.values())
    text_of = {(g.departement, g.language): g.text for g in plan.groups}
    assert received[str(ITALIAN)] == [text_of[("48", default)]]
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
    assert status["state"] == "completed"
    assert status["accepted"] == len(expected)
    assert "language_fallback" in (tmp_path / "worker.log").read_text()


async def test_an_error_while_streaming_pauses_the_broadcast_and_says_why(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception in the streaming path ends the chunk cleanly: no hang, the lease handed
    back, the broadcast paused by the engine with an audit entry; a resume finishes it."""
    mock, smsc = await start_mock(MockConfig(seed=4))
    broadcast_id, _plan = await _create(db, db_dsn, ["dep:48"])
    async with db.acquire() as conn:
        await act(conn, TESTER, broadcast_id, "pause")
        await conn.execute(
            "INSERT INTO subscribers (msisdn, departement, lang) VALUES ($1, '48', 'it')", ITALIAN
        )
        await act(conn, TESTER, broadcast_id, "resume")

    async def no_fallback(conn: object, broadcast_id: int) -> dict[str, int]:
        return {}  # as if the département had no text at all: the look-up must fail

    monkeypatch.setattr(store, "fallback_groups", no_fallback)
    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 30)
    assert [r.state for r in runs] == ["paused"]
    assert runs[0].error is not None and "it" in runs[0].error
    async with db.acquire() as conn:
        leased = await conn.fetchval(
            "SELECT count(*) FROM broadcast_chunks WHERE broadcast_id = $1 AND leased_by IS NOT"
            " NULL",
            broadcast_id,
        )
        audit = await conn.fetch(
            "SELECT actor, action, details FROM audit_log WHERE subject = $1 ORDER BY id",
            f"broadcast:{broadcast_id}",
        )
    assert leased == 0
    last = audit[-1]
    assert last["action"] == "broadcast_paused_on_error"
    assert "LookupError" in json.loads(last["details"])["reason"]
    sent_before = dict(mock.record.messages)
    assert str(ITALIAN) not in sent_before

    monkeypatch.undo()
    async with db.acquire() as conn:
        await act(conn, TESTER, broadcast_id, "resume")
    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 30)
    assert [r.state for r in runs] == ["completed"]
    expected = await _subscribers(db, ["48"])
    received = mock.record.messages
    assert set(received) == set(expected)
    assert all(len(texts) == 1 for texts in received.values())


async def test_a_worker_restarted_until_idle_after_a_kill_finishes_the_broadcast(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, tmp_path: Path
) -> None:
    """As an operator would: kill -9 the worker mid-send, start `worker --until-idle` again.
    It waits for the dead worker's leases to expire, takes the chunks up and completes the
    broadcast (no SQL on the leases); nobody missed, duplicates bounded by what was in flight."""
    mock, smsc = await start_mock(MockConfig(seed=5, tps=1500), tps=700)
    broadcast_id, plan = await _create(db, db_dsn, ["dep:75", "dep:13"], chunk_size=150)
    log = tmp_path / "worker.log"
    first = await _start_worker(db_dsn, smsc, "--until-idle", "--lease-seconds", "3", log_to=log)
    while mock.submits < plan.parts // 3:
        assert first.returncode is None, log.read_text()
        await asyncio.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    async with db.acquire() as conn:
        recorded = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE broadcast_id = $1", broadcast_id
        )
        held = await conn.fetchval(
            "SELECT count(*) FROM broadcast_chunks WHERE broadcast_id = $1 AND NOT done"
            " AND lease_until > now()",
            broadcast_id,
        )
    in_flight = mock.submits - recorded
    assert held > 0  # the dead worker's leases: what the restarted one must wait for

    second = await _start_worker(db_dsn, smsc, "--until-idle", log_to=log)
    assert await _wait(second, 120) == 0, log.read_text()
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
    assert status["state"] == "completed", log.read_text()
    expected = await _subscribers(db, ["75", "13"])
    received = mock.record.messages
    assert set(expected) <= set(received)  # nobody missed
    twice = sum(len(texts) - 1 for texts in received.values())
    assert twice <= in_flight


async def test_parts_possibly_sent_twice_are_recorded_and_reported(
    db: asyncpg.Pool,
    db_dsn: str,
    start_mock: StartMock,
    monkeypatch: pytest.MonkeyPatch,
    cli: Any,
) -> None:
    """The pool says which parts may have gone twice (sent again after a loss or a timeout);
    the engine adds them up per broadcast with its outcomes, and status, report (text and
    JSON) and console show "possibly sent twice", not a "0 duplicates" read from rows alone."""
    _mock, smsc = await start_mock(MockConfig(seed=4))
    broadcast_id, _plan = await _create(db, db_dsn, ["dep:48"])
    on_outcome = BroadcastRunner.on_outcome
    flagged = 0

    def as_the_pool_reports(runner: BroadcastRunner, tag: PartTag, *outcome: Any) -> None:
        nonlocal flagged
        twice = 1 if tag[1] % 7 == 0 else 0  # these were resent while in flight
        flagged += twice
        status, message_id, smsc_name, submitted_at, answered_at = outcome[:5]
        on_outcome(runner, tag, status, message_id, smsc_name, submitted_at, answered_at, twice)

    monkeypatch.setattr(BroadcastRunner, "on_outcome", as_the_pool_reports)
    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 30)
    assert [r.state for r in runs] == ["completed"]
    assert runs[0].possibly_twice == flagged > 0

    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
    assert status["resent_in_flight"] == flagged
    assert status["duplicates"] == 0  # no row recorded twice: the rows alone would say 0
    assert status["possibly_sent_twice"] == flagged
    assert f"parts possibly sent twice: {flagged:,}" in _status_text(status, {}, "Europe/Paris")
    report = await asyncio.to_thread(cli, "report", str(broadcast_id))
    assert report["possibly_sent_twice"] == flagged
    shown = snapshot(status, None, None, "en")
    assert shown["text"]["possibly_twice"] == f"{flagged:,}"


async def test_a_broadcast_left_running_with_every_chunk_done_is_completed_by_a_worker(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    """Its run recorded the last chunk, then died (or lost its database) before writing the
    final state: the next worker completes it, sending nothing."""
    mock, smsc = await start_mock(MockConfig(seed=4))
    broadcast_id, _plan = await _create(db, db_dsn, ["dep:48"])
    async with db.acquire() as conn:
        assert await store.apply(conn, broadcast_id, "start")
        await conn.execute(  # as the dead run left it
            "UPDATE broadcast_chunks SET done = true WHERE broadcast_id = $1", broadcast_id
        )
    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 30)
    assert runs == []
    assert mock.submits == 0
    async with db.acquire() as conn:
        assert await store.get_state(conn, broadcast_id) == "completed"


async def test_the_report_counts_every_part_the_smsc_got_twice_after_a_stall(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    """An SMSC that stalls with parts in flight: the pool times them out and sends them again,
    and the SMSC, once it resumes, accepts both copies. The mock's record is the judge: every
    duplicate it received is among the parts the report says were possibly sent twice (the
    outcome rows alone said "0 duplicates": issue 20, item 6)."""
    mock, smsc = await start_mock(
        MockConfig(seed=6, stall_after=120, stall_seconds=1.5), window=20, response_timeout_s=0.5
    )
    broadcast_id, _plan = await _create(db, db_dsn, ["dep:75", "dep:13"])
    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 120)
    assert [r.state for r in runs] == ["completed"]
    received = mock.record.messages
    expected = await _subscribers(db, ["75", "13"])
    assert set(received) == set(expected)
    twice_at_the_smsc = sum(len(texts) - 1 for texts in received.values())
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
    assert mock.stalls > 0
    assert 0 < twice_at_the_smsc <= status["possibly_sent_twice"]
    assert status["possibly_sent_twice"] == status["resent_in_flight"] + status["duplicates"]
    assert runs[0].possibly_twice == status["resent_in_flight"]
