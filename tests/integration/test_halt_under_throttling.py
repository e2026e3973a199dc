"""Cancel and expiry while the SMSC throttles half the parts and answers in 500 ms (issue 20,
item 4): after the halt is decided nothing more is submitted, whatever comes back; after the
expiry, nothing at all. Real PostgreSQL, the mock SMSC over TCP; its record is the judge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine import runner as runner_module
from broadcaster.engine.runner import BroadcastRunner
from broadcaster.engine.worker import Worker
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings
from broadcaster.smpp.constants import Status
from broadcaster.store import broadcasts as store
from broadcaster.store.database import create_pool

HOSTILE = MockConfig(seed=4, latency_ms=500, errors={Status.ESME_RTHROTTLED: 0.5})
"""Half the parts answered ESME_RTHROTTLED, every answer 500 ms late."""


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=2, max_size=8)
    async with pool.acquire() as conn:
        await seed_synthetic(conn, 20_000, seed=5)
    yield pool
    await pool.close()


async def _create(db: asyncpg.Pool, db_dsn: str, request: BroadcastRequest) -> int:
    settings = Settings(database_url=db_dsn, chunk_size=500)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        return await create_broadcast(conn, settings, request, plan)


async def test_nothing_is_submitted_after_a_cancel_is_decided(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock, smsc = await start_mock(HOSTILE, binds=2, window=32)
    broadcast_id = await _create(
        db, db_dsn, BroadcastRequest(areas=["dep:13"], template="outage", variables={})
    )
    written_at_halt: list[int] = []
    halt = BroadcastRunner._halt

    def spy_halt(self: BroadcastRunner, reason: str) -> None:
        halt(self, reason)
        written_at_halt.append(self.pool.stats.sent)  # every submit_sm written so far

    monkeypatch.setattr(BroadcastRunner, "_halt", spy_halt)
    worker = Worker(db, [smsc])
    task = asyncio.create_task(worker.run(until_idle=True))
    # Wait until throttled parts are being retried: the case the issue measured.
    await mock.wait_for(lambda: mock.statuses[Status.ESME_RTHROTTLED] >= 50, timeout=20)
    async with db.acquire() as conn:
        assert await store.apply_action(conn, broadcast_id, "cancel") == "cancelled"
    runs = await asyncio.wait_for(task, 20)
    assert runs[-1].state == "cancelled"
    assert len(written_at_halt) == 1
    # The parts in flight at the halt came back (half throttled): none was sent again.
    await asyncio.sleep(0)
    assert mock.submits == written_at_halt[0]
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
    assert status["state"] == "cancelled"
    # Each part the SMSC accepted is recorded; throttled ones not sent again have no row.
    assert status["part_outcomes"] == mock.statuses[0]
    assert status["duplicates"] == 0


async def test_nothing_is_submitted_after_the_expiry(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mock reads in the test's own event loop: on a busy machine a part written just
    # before the deadline may be read some time later. A wider margin than the product's
    # 50 ms keeps the mock's clock a fair judge of when parts were written.
    monkeypatch.setattr(runner_module, "EXPIRY_MARGIN", 0.3)
    mock, smsc = await start_mock(HOSTILE, binds=2, window=32)
    broadcast_id = await _create(
        db,
        db_dsn,
        BroadcastRequest(
            areas=["dep:13"], template="outage", variables={}, expires_in=timedelta(seconds=3)
        ),
    )
    async with db.acquire() as conn:
        expires_at = await conn.fetchval(
            "SELECT expires_at FROM broadcasts WHERE id = $1", broadcast_id
        )
    # The expiry on this process's monotonic clock, which the mock stamps submits with.
    expiry = time.monotonic() + (expires_at.timestamp() - time.time())
    received_after: list[int] = []
    asyncio.get_running_loop().call_at(expiry, lambda: received_after.append(mock.submits))
    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 20)
    assert runs[-1].state == "expired"
    assert mock.statuses[Status.ESME_RTHROTTLED] > 0  # throttled parts were in play
    assert 0 < mock.last_submit < expiry
    assert received_after == [mock.submits]  # nothing came after the expiry
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
        last = await conn.fetchval(
            "SELECT max(submitted_at) FROM deliveries WHERE broadcast_id = $1", broadcast_id
        )
    assert status["state"] == "expired"
    assert last < expires_at
    assert status["part_outcomes"] == mock.statuses[0]


async def test_parts_not_sent_at_a_pause_are_sent_at_the_resume_exactly_once(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    """NOT_SENT leaves no outcome: the throttled parts dropped at the pause go out after the
    resume, and every recipient gets its text exactly once."""
    mock, smsc = await start_mock(
        HOSTILE.replace(latency_ms=100), binds=2, window=64, response_timeout_s=5.0
    )
    request = BroadcastRequest(areas=["dep:13"], template="outage", variables={})
    settings = Settings(database_url=db_dsn, chunk_size=500)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    task = asyncio.create_task(Worker(db, [smsc]).run(until_idle=True))
    await mock.wait_for(lambda: mock.statuses[Status.ESME_RTHROTTLED] >= 50, timeout=20)
    async with db.acquire() as conn:
        await store.apply_action(conn, broadcast_id, "pause")
    runs = await asyncio.wait_for(task, 20)
    assert runs[-1].state == "paused"
    assert mock.statuses[0] < plan.parts
    # The SMSC recovers (its next connections behave), and the broadcast is resumed.
    mock.config = MockConfig(seed=5)
    async with db.acquire() as conn:
        assert await store.apply_action(conn, broadcast_id, "resume") == "approved"
    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 60)
    assert runs[-1].state == "completed"
    received = mock.record.messages
    assert len(received) == plan.recipients
    assert all(len(texts) == 1 for texts in received.values())
    assert mock.statuses[0] == plan.parts
