"""A stop (cancel, pause, expiry, preemption) that lands while a chunk's COPY stream is open ends
the run and gives every connection back to the pool, whatever the chunk size.

asyncpg answers an exception raised from a COPY output callback by sending a CancelRequest and
waiting for the server to acknowledge the cancelled query. When the buffer the callback failed on
was the stream's last one (a small chunk arrives whole; the rest of a mid-sized one arrives in one
read after a back-pressure wait), the COPY had already ended: no acknowledgment ever comes, and
the connection's release waits forever (and so does the run). The stop is made to land at two
exact points:

- `claim`: a chunk is leased and its COPY is next (the stream's first buffer sees the stop);
- `stream`: inside the consumer's back-pressure wait, with the COPY read in part, after the
  server has sent the rest (so that the rest, when read, ends the stream).

The runner used to end a stopped chunk's stream by raising in its COPY consumer, and most of
these cases hung; it now reads the rest of the stream and drops it. Each run is bounded, so that
a hang fails the test instead of blocking the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine import runner as runner_module
from broadcaster.engine.runner import BroadcastRunner, RunStats
from broadcaster.engine.worker import Worker
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings
from broadcaster.store import broadcasts as store
from broadcaster.store import chunks
from broadcaster.store.database import create_pool

RUN_BOUND_S = 10.0
"""A stopped run ends well within this (a cancel must act within a second)."""
POOL_SIZE = 6
EXTRA_13 = 20_000
"""Test-group subscribers added to département 13 (the drill's and the alert's target): a
chunk of them spans one read or several, as chunk_size says."""

OUTAGE = BroadcastRequest(areas=["dep:13"], template="outage", variables={})
DRILL = BroadcastRequest(areas=["dep:13"], template="drill", variables={}, kind="drill")
LIVE = BroadcastRequest(areas=["dep:971"], template="outage", variables={})
STATE_AFTER = {"cancel": "cancelled", "pause": "paused", "expire": "expired", "preempt": "running"}


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=2, max_size=POOL_SIZE)
    async with pool.acquire() as conn:
        await seed_synthetic(conn, 3_000, seed=5)
        await conn.execute(  # (numbers outside the synthetic range)
            "INSERT INTO subscribers (msisdn, departement, lang, test_group) "
            "SELECT 33900000000 + g, '13', 'fr', true FROM generate_series(1, $1::int) g",
            EXTRA_13,
        )
    yield pool
    try:
        await asyncio.wait_for(pool.close(), 5)
    except TimeoutError:
        pool.terminate()  # a connection stuck in its release must not hang the session too


async def _create(db: asyncpg.Pool, db_dsn: str, request: BroadcastRequest, chunk_size: int) -> int:
    settings = Settings(database_url=db_dsn, chunk_size=chunk_size)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        return await create_broadcast(conn, settings, request, plan)


async def _stop(db: asyncpg.Pool, db_dsn: str, action: str, broadcast_id: int) -> None:
    """Stop the broadcast as an operator, another worker or a new alert would."""
    if action == "preempt":
        await _create(db, db_dsn, LIVE, chunk_size=500)  # a live alert outranks the drill
        return
    async with db.acquire() as conn:
        if action == "expire":  # the expiry moved to now, then found overdue by a status poll
            await conn.execute(
                "UPDATE broadcasts SET expires_at = now() WHERE id = $1", broadcast_id
            )
            await store.expire_overdue(conn)
        else:
            await store.apply_action(conn, broadcast_id, action)  # type: ignore[arg-type]


async def _copy_sent(db: asyncpg.Pool) -> None:
    """Wait (bounded) until no COPY is running on the server: the stream is all sent."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2), db.acquire() as conn:
            while await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND state = 'active' AND query LIKE 'COPY (%'"
            ):
                await asyncio.sleep(0.01)


def _start_only(monkeypatch: pytest.MonkeyPatch, broadcast_id: int) -> None:
    """The worker would start the live alert side by side at once (and, on a slow machine, finish
    it before the drill's controller looks): it starts nothing but the drill here, so the drill's
    run is the one that sees the alert and is preempted."""
    startable = Worker._startable

    async def only_that(self: Worker, running: Any) -> list[tuple[int, int]]:
        return [(i, p) for i, p in await startable(self, running) if i == broadcast_id]

    monkeypatch.setattr(Worker, "_startable", only_that)


@pytest.mark.parametrize(
    ("action", "point", "chunk_size"),
    [
        ("cancel", "claim", 10),
        ("pause", "claim", 10),
        ("expire", "claim", 300),
        ("preempt", "claim", 50),
        ("cancel", "claim", 5000),
        ("cancel", "stream", 2000),
        ("pause", "stream", 5000),
        ("expire", "stream", 5000),
        ("preempt", "stream", 2000),
        # The whole département in one chunk (~400 kB): the rest takes more than one read.
        ("cancel", "stream", 100_000),
    ],
)
async def test_a_stop_while_a_chunk_streams_ends_the_run_and_frees_its_connection(
    db: asyncpg.Pool,
    db_dsn: str,
    start_mock: StartMock,
    monkeypatch: pytest.MonkeyPatch,
    action: str,
    point: str,
    chunk_size: int,
) -> None:
    # Slowish answers, small windows: parts are queued and in flight when the stop lands, and
    # the broadcast takes seconds (~3,200 parts/s), so that a stop noticed late on a loaded
    # machine still lands part-way.
    mock, smsc = await start_mock(MockConfig(seed=1, latency_ms=10), binds=2, window=16)
    broadcast_id = await _create(db, db_dsn, DRILL if action == "preempt" else OUTAGE, chunk_size)
    worker = Worker(db, [smsc])
    halted = asyncio.Event()
    triggered = False
    halt = BroadcastRunner._halt

    def spy_halt(self: BroadcastRunner, reason: str) -> None:
        halt(self, reason)
        halted.set()
        if reason == "preempted":
            worker.stop()  # this test is about the drill's run: leave the live alert be

    async def stop_now() -> None:
        nonlocal triggered
        if triggered:
            return
        triggered = True
        await _stop(db, db_dsn, action, broadcast_id)
        # The runner's controller acts within CONTROL_INTERVAL: the stop is set from here on.
        await asyncio.wait_for(halted.wait(), 5)

    monkeypatch.setattr(BroadcastRunner, "_halt", spy_halt)
    if action == "preempt":
        _start_only(monkeypatch, broadcast_id)
    if point == "claim":
        recorded_parts = chunks.recorded_parts

        async def claim_then_stop(*args: Any) -> set[tuple[int, int]]:
            parts = await recorded_parts(*args)
            await stop_now()  # the chunk is leased; its COPY starts next
            return parts

        monkeypatch.setattr(chunks, "recorded_parts", claim_then_stop)
    else:
        # The consumer waits for room once 64 parts are queued; the stop lands there, in the
        # first wait with the chunk read in part (chunks hold exactly chunk_size recipients,
        # the last one excepted), after the server has sent the rest of it.
        monkeypatch.setattr(runner_module, "MAX_BACKLOG", 64)
        runners: list[BroadcastRunner] = []
        claim_loop = BroadcastRunner._claim_loop

        async def spy_claim_loop(self: BroadcastRunner, *args: Any) -> None:
            runners.append(self)
            await claim_loop(self, *args)

        monkeypatch.setattr(BroadcastRunner, "_claim_loop", spy_claim_loop)
        wait_for_room = BroadcastRunner.wait_for_room

        async def stop_while_waiting(runner: BroadcastRunner) -> None:
            waits = runner.outstanding >= runner_module.MAX_BACKLOG  # it will wait for room
            streamed = runner.stats.recipients_streamed
            # A chunk small enough to arrive in one read is read whole before any wait: then
            # the stop lands in the wait after the second chunk, part-way still (waiting for
            # the last, short chunk made it a race with that chunk's end: 11 of 11 done).
            mid_chunk = streamed % chunk_size or streamed >= 2 * chunk_size
            if waits and not triggered and mid_chunk:
                await stop_now()
                await _copy_sent(db)
            await wait_for_room(runner)

        monkeypatch.setattr(BroadcastRunner, "wait_for_room", stop_while_waiting)

    runs: list[RunStats] = await asyncio.wait_for(worker.run(until_idle=True), RUN_BOUND_S)

    assert triggered
    assert [(r.broadcast_id, r.state) for r in runs] == [(broadcast_id, STATE_AFTER[action])]
    # Every connection is back in the pool and usable: none waits on a cancellation.
    async with asyncio.timeout(5):
        conns = [await db.acquire() for _ in range(POOL_SIZE)]
        try:
            assert [await c.fetchval("SELECT 1") for c in conns] == [1] * POOL_SIZE
        finally:
            for c in conns:
                await db.release(c)
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
        leased = await conn.fetchval(
            "SELECT count(*) FROM broadcast_chunks "
            "WHERE broadcast_id = $1 AND leased_by IS NOT NULL",
            broadcast_id,
        )
    assert status["state"] == STATE_AFTER[action]
    assert status["chunks_done"] < status["chunks_total"]  # stopped part-way
    assert leased == 0  # unfinished chunks were handed back at once
    assert status["part_outcomes"] == mock.submits  # every part sent has its outcome
    assert status["duplicates"] == 0
