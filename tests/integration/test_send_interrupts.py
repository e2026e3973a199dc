"""`send`'s interruptions at the edges the terminal tests cannot time: a pause that lands as the
last parts are answered, a pause before the binds are up, and SMSCs that never bind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.broadcasts import act
from broadcaster.commands.context import Context
from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.commands.sending import execute
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine.engine import Engine
from broadcaster.engine.runner import BroadcastRunner
from broadcaster.errors import BroadcasterError
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings, SmscConfig
from broadcaster.store import broadcasts as store
from broadcaster.store import workers
from broadcaster.store.database import create_pool

REQUEST = BroadcastRequest(areas=["dep:13"], template="outage", variables={})
TESTER = Caller(name="test", role="admin", interface="cli")


def _ctx(db: asyncpg.Pool, dsn: str) -> Context:
    return Context(db=db, settings=Settings(database_url=dsn))


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=2, max_size=8)
    async with pool.acquire() as conn:
        await seed_synthetic(conn, 20_000, seed=6)
    yield pool
    await pool.close()


async def test_a_pause_landing_after_the_last_part_still_completes(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An operator's Ctrl-C landing in the last instant: every part answered, the engine about
    to write the final state. Everything was sent, so the broadcast is completed — not left
    paused with nothing to resume."""
    _mock, smsc = await start_mock(MockConfig(seed=2))
    final_state = BroadcastRunner._final_state
    paused: list[str] = []

    async def pause_first(runner: BroadcastRunner) -> str:
        async with db.acquire() as conn:
            paused.append(await act(conn, TESTER, runner.broadcast_id, "pause"))
        return await final_state(runner)

    monkeypatch.setattr(BroadcastRunner, "_final_state", pause_first)
    plan, report = await execute(_ctx(db, db_dsn), TESTER, [smsc], REQUEST)
    assert paused == ["paused"]
    assert report["state"] == "completed"
    assert report["accepted"] == plan.recipients
    async with db.acquire() as conn:
        assert (await store.progress(conn, report["broadcast_id"]))["state"] == "completed"


async def test_a_run_of_one_broadcast_stops_when_it_was_paused_before_binding(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    _mock, smsc = await start_mock(MockConfig(seed=2))
    settings = Settings(database_url=db_dsn)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, REQUEST)
        broadcast_id = await create_broadcast(conn, settings, REQUEST, plan)
        await act(conn, TESTER, broadcast_id, "pause")
    async with Engine(db, [smsc]) as engine:
        runs = await asyncio.wait_for(engine.run_to_end(broadcast_id), 10)
    assert runs == []  # it returned (it used to idle for ever, waiting for a resume)


async def test_smscs_that_never_bind_leave_the_broadcast_paused_and_named(
    db: asyncpg.Pool, db_dsn: str, unused_tcp_port: int
) -> None:
    nowhere = SmscConfig(name="down", port=unused_tcp_port, binds=1)
    with pytest.raises(BroadcasterError) as refused:
        await execute(_ctx(db, db_dsn), TESTER, [nowhere], REQUEST)
    message = str(refused.value)
    assert "no bind to any SMSC came up" in message
    assert "broadcast 1 was stored and is now paused" in message
    assert "`broadcaster resume 1` approves it again and a running worker" in message
    async with db.acquire() as conn:
        assert (await store.progress(conn, 1))["state"] == "paused"
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 0
        # Resumed with no worker running: the status tells the truth, nothing is sent.
        await act(conn, TESTER, 1, "resume")
        status = await store.progress(conn, 1)
    assert status["state"] == "approved"
    assert status["waiting_for"].startswith("a worker: none is running")


async def test_a_waiting_broadcast_says_what_it_waits_for(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    """No worker: says so. A worker alive (its heartbeat): waits for it to pick it up. A more
    urgent live alert queued: names it. Pending approval: a second person."""
    settings = Settings(database_url=db_dsn, api_approval_threshold=0)
    drill = BroadcastRequest(areas=["dep:13"], template="drill", variables={}, kind="drill")
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, drill)
        drill_id = await create_broadcast(conn, settings, drill, plan)
        assert (await store.progress(conn, drill_id))["waiting_for"].startswith(
            "a worker: none is running"
        )
        await workers.heartbeat(conn, "host:1", [])
        assert (await store.progress(conn, drill_id))["waiting_for"] == "a worker to pick it up"
        plan = await make_plan(conn, settings, REQUEST)
        live_id = await create_broadcast(conn, settings, REQUEST, plan)
        status = await store.progress(conn, drill_id)
        assert status["waiting_for"] == f"more urgent broadcasts to finish first: {live_id}"
        # The same, for a page to word in its own language: the queue ahead, the workers alive.
        assert (status["waiting_behind"], status["workers_alive"]) == ([live_id], 1)
        pending = await create_broadcast(conn, settings, REQUEST, plan, state="pending_approval")
        assert (await store.progress(conn, pending))["waiting_for"].startswith(
            "approval by a second person"
        )
        await workers.gone(conn, "host:1")
        assert (await store.progress(conn, live_id))["waiting_for"].startswith(
            "a worker: none is running"
        )
