"""The engine against a real PostgreSQL and the mock SMSC over TCP: exactly once, stoppable."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine import runner as runner_module
from broadcaster.engine.worker import Worker
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.planning import Plan
from broadcaster.settings import Settings
from broadcaster.store import broadcasts as store
from broadcaster.store import workers
from broadcaster.store.database import create_pool

AREAS = ("dep:75", "dep:13", "dep:971")


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=2, max_size=8)
    async with pool.acquire() as conn:
        await seed_synthetic(conn, 30_000, seed=5)
    yield pool
    await pool.close()


async def _create(
    db: asyncpg.Pool, db_dsn: str, request: BroadcastRequest, chunk_size: int = 500
) -> tuple[int, Plan]:
    settings = Settings(database_url=db_dsn, chunk_size=chunk_size)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        return await create_broadcast(conn, settings, request, plan), plan


async def _expected(db: asyncpg.Pool, plan: Plan) -> dict[str, str]:
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT msisdn, departement, lang FROM subscribers WHERE departement = ANY($1)",
            sorted(plan.target.departements),
        )
    return {
        str(r["msisdn"]): plan.groups[plan.language_of[(r["departement"], r["lang"])]].text
        for r in rows
    }


def _exactly_once(mock: MockSmsc, expected: dict[str, str]) -> None:
    received = mock.record.messages
    assert set(received) == set(expected)
    wrong = [d for d, text in expected.items() if received[d] != [text]]
    assert not wrong, f"{len(wrong)} recipients did not get exactly their text once"


async def test_run_delivers_each_recipient_its_text_once(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1, receipts=True), window=32)
    broadcast_id, plan = await _create(
        db, db_dsn, BroadcastRequest(areas=AREAS, template="outage", variables={})
    )
    worker = Worker(db, [smsc])
    runs = await worker.run(until_idle=True)
    assert [r.state for r in runs] == ["completed"]
    _exactly_once(mock, await _expected(db, plan))
    assert mock.record.parts_received == plan.parts
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
        receipts = await conn.fetchval("SELECT count(*) FROM receipts")
    assert status["state"] == "completed"
    assert status["accepted"] == plan.recipients and status["duplicates"] == 0
    assert status["chunks_done"] == status["chunks_total"] > 1
    assert receipts == plan.parts  # every accepted part got its DELIVRD receipt recorded
    assert status["receipts"]["DELIVRD"]["count"] == plan.parts


async def test_vendor_statuses_are_recorded_per_part(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=3, errors={0x401: 0.1, 0x0B: 0.05}))
    broadcast_id, plan = await _create(
        db, db_dsn, BroadcastRequest(areas=["dep:13"], template="outage", variables={})
    )
    await Worker(db, [smsc]).run(until_idle=True)
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
    failed = status["failed_by_status"]
    assert failed["0x00000401"] == mock.statuses[0x401] > 0
    assert failed["0x0000000B"] == mock.statuses[0x0B] > 0
    assert status["accepted"] + status["failed"] == plan.recipients
    assert status["state"] == "completed"


async def test_cancel_stops_submitting_within_a_second(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1, tps=300), binds=2, tps=300)
    broadcast_id, plan = await _create(
        db, db_dsn, BroadcastRequest(areas=["dep:13"], template="outage", variables={})
    )
    worker = Worker(db, [smsc])
    task = asyncio.create_task(worker.run(until_idle=True))
    while mock.submits < 200:
        await asyncio.sleep(0.02)
    async with db.acquire() as conn:
        assert await store.apply_action(conn, broadcast_id, "cancel") == "cancelled"
    cancelled_at = time.monotonic()
    await asyncio.sleep(1.0)
    after_one_second = mock.submits
    await asyncio.sleep(0.5)
    assert mock.submits == after_one_second < plan.parts
    runs = await asyncio.wait_for(task, 5)
    assert time.monotonic() - cancelled_at < 3
    assert runs[-1].state == "cancelled"
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
    assert status["state"] == "cancelled"
    assert status["part_outcomes"] == mock.submits  # every submitted part has its outcome


async def test_nothing_is_submitted_after_expiry(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1, tps=200), binds=1, tps=200)
    broadcast_id, plan = await _create(
        db,
        db_dsn,
        BroadcastRequest(
            areas=["dep:13"],
            template="outage",
            variables={},
            expires_in=timedelta(seconds=1.5),
        ),
    )
    runs = await Worker(db, [smsc]).run(until_idle=True)
    assert runs[-1].state == "expired"
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT max(d.submitted_at) AS last, b.expires_at FROM deliveries d "
            "JOIN broadcasts b ON b.id = d.broadcast_id WHERE b.id = $1 GROUP BY b.expires_at",
            broadcast_id,
        )
        state = (await store.progress(conn, broadcast_id))["state"]
    assert row is not None and row["last"] <= row["expires_at"]
    assert 0 < mock.submits < plan.parts
    assert state == "expired"
    # A worker started after the expiry sends nothing more.
    before = mock.submits
    await Worker(db, [smsc]).run(until_idle=True)
    assert mock.submits == before


async def test_pause_then_resume_completes_without_duplicates(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1, tps=1500), binds=2, tps=1500)
    broadcast_id, plan = await _create(
        db, db_dsn, BroadcastRequest(areas=["dep:75", "dep:971"], template="outage", variables={})
    )
    task = asyncio.create_task(Worker(db, [smsc]).run(until_idle=True))
    while mock.submits < 300:
        await asyncio.sleep(0.02)
    async with db.acquire() as conn:
        await store.apply_action(conn, broadcast_id, "pause")
    runs = await asyncio.wait_for(task, 5)
    assert runs[-1].state == "paused"
    paused_at = mock.submits
    assert paused_at < plan.parts
    async with db.acquire() as conn:
        assert await store.apply_action(conn, broadcast_id, "resume") == "approved"
    runs = await Worker(db, [smsc]).run(until_idle=True)
    assert runs[-1].state == "completed"
    _exactly_once(mock, await _expected(db, plan))


async def test_two_workers_share_one_broadcast(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1), binds=1)
    broadcast_id, plan = await _create(
        db, db_dsn, BroadcastRequest(areas=AREAS, template="outage", variables={}), chunk_size=200
    )
    first, second = Worker(db, [smsc], name="w1"), Worker(db, [smsc], name="w2")
    await asyncio.gather(first.run(until_idle=True), second.run(until_idle=True))
    _exactly_once(mock, await _expected(db, plan))
    async with db.acquire() as conn:
        holders = await conn.fetch(
            "SELECT DISTINCT leased_by FROM broadcast_chunks WHERE broadcast_id = $1",
            broadcast_id,
        )
        status = await store.progress(conn, broadcast_id)
    assert status["state"] == "completed" and status["duplicates"] == 0
    assert len(mock.binds) == 2  # both workers bound and sent
    assert all(b.parts > 0 for b in mock.binds)
    assert holders  # leases were used (released once done)


async def test_live_broadcast_preempts_a_drill(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1, tps=400), binds=1, tps=400)
    async with db.acquire() as conn:  # a test group large enough for the drill to last ~2 s
        await conn.execute("UPDATE subscribers SET test_group = true WHERE departement = '13'")
    drill_id, drill = await _create(
        db,
        db_dsn,
        BroadcastRequest(areas=["dep:13", "dep:75"], template="drill", variables={}, kind="drill"),
        chunk_size=50,
    )
    worker = Worker(db, [smsc])
    task = asyncio.create_task(worker.run(until_idle=True))
    while mock.submits < 20:
        await asyncio.sleep(0.01)
    live_id, live = await _create(
        db, db_dsn, BroadcastRequest(areas=["dep:971"], template="outage", variables={})
    )
    runs = await asyncio.wait_for(task, 30)
    order = [r.broadcast_id for r in runs]
    # The drill was interrupted, the live broadcast ran to completion, then the drill finished.
    assert order[0] == drill_id and live_id in order
    assert order.index(live_id) < len(order) - 1
    assert runs[order.index(live_id)].state == "completed"
    assert runs[-1].broadcast_id == drill_id and runs[-1].state == "completed"
    async with db.acquire() as conn:
        done = {
            r["id"]: r["finished_at"]
            for r in await conn.fetch("SELECT id, finished_at FROM broadcasts")
        }
    assert done[live_id] < done[drill_id]
    live_texts = {g.text for g in live.groups}
    for texts in mock.record.messages.values():
        for text in texts:
            assert text in live_texts or text.startswith(("EXERCICE", "EXERCISE", "EJERCICIO"))
    async with db.acquire() as conn:
        testers = await conn.fetchval(
            "SELECT count(*) FROM subscribers WHERE test_group AND departement IN ('13', '75')"
        )
    assert drill.recipients == testers  # a drill reaches the test group only


async def test_reached_only_update_follows_its_parent(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=9, errors={0x401: 0.2}))
    parent_id, parent = await _create(
        db, db_dsn, BroadcastRequest(areas=["dep:971"], template="outage", variables={})
    )
    await Worker(db, [smsc]).run(until_idle=True)
    async with db.acquire() as conn:
        reached = await conn.fetchval(
            "SELECT count(DISTINCT msisdn) FROM deliveries WHERE broadcast_id = $1 AND status = 0",
            parent_id,
        )
    update = BroadcastRequest(
        areas=(),
        template="all_clear",
        variables={},
        parent_id=parent_id,
        reached_only=True,
        allow_language_fallback=True,  # all_clear has no ar or de text
    )
    update_id, plan = await _create(db, db_dsn, update)
    assert 0 < plan.recipients == reached < parent.recipients
    before = Counter(d for d, texts in mock.record.messages.items() for _ in texts)
    await Worker(db, [smsc]).run(until_idle=True)
    async with db.acquire() as conn:
        status = await store.progress(conn, update_id)
        parent_row = await store.get_broadcast(conn, parent_id)
    assert status["accepted"] + status["failed"] == reached
    assert status["parent_id"] == parent_id and parent_row["state"] == "completed"
    after = Counter(d for d, texts in mock.record.messages.items() for _ in texts)
    assert sum((after - before).values()) == status["accepted"]


async def test_an_update_stops_its_running_parent(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1, tps=200), binds=1, tps=200)
    parent_id, _ = await _create(
        db, db_dsn, BroadcastRequest(areas=["dep:13"], template="outage", variables={})
    )
    task = asyncio.create_task(Worker(db, [smsc]).run(until_idle=True))
    while mock.submits < 50:
        await asyncio.sleep(0.02)
    update = BroadcastRequest(
        areas=(),
        template="update",
        variables={"instruction": "Appelez le 01 99 00 13 00."},
        parent_id=parent_id,
        allow_language_fallback=True,  # one French instruction for every language
    )
    update_id, plan = await _create(db, db_dsn, update)
    runs = await asyncio.wait_for(task, 60)
    states = {r.broadcast_id: r.state for r in runs}
    assert states[parent_id] == "cancelled"
    assert states[update_id] == "completed"
    assert plan.recipients > 0


async def test_each_smsc_sends_with_its_own_sender(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    """Two SMSCs with their own sender ids (`source_addr`): every part an SMSC carried bears
    that SMSC's sender, single and concatenated texts alike (all the parts of a message go
    through one SMSC: a phone joins parts from one sender only), and between them every
    recipient got exactly its text once."""
    paris, paris_smsc = await start_mock(MockConfig(seed=21), name="paris", source_addr="PREF75")
    lyon, lyon_smsc = await start_mock(MockConfig(seed=22), name="lyon", source_addr="PREF69")
    request = BroadcastRequest(
        areas=("dep:75", "dep:69"),
        template="outage",
        variables={"details": "Rendez-vous en mairie."},  # some groups need two parts
        max_parts=6,
        allow_language_fallback=True,  # the French details go into every language's text
    )
    broadcast_id, plan = await _create(db, db_dsn, request, chunk_size=200)
    assert any(g.message.part_count > 1 for g in plan.groups)
    await Worker(db, [paris_smsc, lyon_smsc]).run(until_idle=True)
    for mock, sender in ((paris, "PREF75"), (lyon, "PREF69")):
        senders = {s for per_recipient in mock.record.senders.values() for s in per_recipient}
        assert senders == {sender}
        assert mock.record.incomplete() == 0  # every concatenated text reassembled at one SMSC
    assert len(paris.record.messages) > plan.recipients // 4  # both carried a share
    assert len(lyon.record.messages) > plan.recipients // 4
    expected = await _expected(db, plan)
    received: dict[str, list[str]] = {}
    for mock in (paris, lyon):
        for destination, texts in mock.record.messages.items():
            received.setdefault(destination, []).extend(texts)
    assert received == {d: [text] for d, text in expected.items()}
    async with db.acquire() as conn:
        assert (await store.progress(conn, broadcast_id))["state"] == "completed"


async def test_a_worker_says_it_is_alive_and_leaves_when_stopped(
    db: asyncpg.Pool, start_mock: StartMock
) -> None:
    _mock, smsc = await start_mock(MockConfig(seed=3))
    worker = Worker(db, [smsc], name="w-alive")
    task = asyncio.create_task(worker.run())
    async with asyncio.timeout(10):
        while True:
            async with db.acquire() as conn:
                if await workers.alive(conn):
                    break
            await asyncio.sleep(0.05)
    worker.stop()
    await asyncio.wait_for(task, 10)
    async with db.acquire() as conn:
        assert await workers.alive(conn) == 0  # a clean stop leaves at once


async def test_two_live_alerts_share_the_binds_side_by_side(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two approved live alerts of one priority: the worker sends them at once, each keeping its
    share of the backlog, so the second does not wait for the first to finish. Judged by the
    SMSC: in the first half of what it received, each alert has a fair part. (A backlog of 200
    parts, for alerts of ~1,000 recipients: what 20,000 is for national ones.)"""
    monkeypatch.setattr(runner_module, "MAX_BACKLOG", 200)
    mock, smsc = await start_mock(MockConfig(seed=4, tps=1500), binds=2, tps=1500)
    first, first_plan = await _create(
        db, db_dsn, BroadcastRequest(areas=("dep:13",), template="outage", variables={})
    )
    second, second_plan = await _create(
        db, db_dsn, BroadcastRequest(areas=("dep:75",), template="outage", variables={})
    )
    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 60)
    assert sorted((r.broadcast_id, r.state) for r in runs) == [
        (first, "completed"),
        (second, "completed"),
    ]
    ours = {"13": set(await _expected(db, first_plan)), "75": set(await _expected(db, second_plan))}
    order = [d for d in mock.record.messages]  # first message per destination, in arrival order
    half = order[: len(order) // 2]
    share_second = sum(1 for d in half if d in ours["75"]) / len(half)
    share_first = sum(1 for d in half if d in ours["13"]) / len(half)
    # Each alert's share of the first half is at least half its share of the whole.
    whole = len(ours["75"]) / (len(ours["13"]) + len(ours["75"]))
    assert share_second >= whole / 2, (share_first, share_second, whole)
    assert share_first >= (1 - whole) / 2, (share_first, share_second, whole)


async def test_a_stopped_worker_hands_its_chunks_back_at_once(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    """A worker told to stop (SIGTERM) does not finish the broadcast first: it halts, hands its
    chunks back (no lease left for another worker to wait out) and the broadcast stays running
    for the next worker, which completes it."""
    _mock, smsc = await start_mock(MockConfig(seed=6, tps=200), binds=1, tps=200)
    broadcast_id, plan = await _create(
        db, db_dsn, BroadcastRequest(areas=AREAS, template="outage", variables={})
    )
    worker = Worker(db, [smsc], name="leaving")
    task = asyncio.create_task(worker.run())
    async with asyncio.timeout(10):
        while not worker.engine.running:
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    worker.stop()
    runs = await asyncio.wait_for(task, 5)
    assert [(r.broadcast_id, r.state) for r in runs] == [(broadcast_id, "running")]
    async with db.acquire() as conn:
        leased = await conn.fetchval(
            "SELECT count(*) FROM broadcast_chunks WHERE leased_by IS NOT NULL"
        )
        assert leased == 0
        assert (await store.progress(conn, broadcast_id))["recorded"] < plan.recipients
    _fast_mock, fast = await start_mock(MockConfig(seed=7))
    await asyncio.wait_for(Worker(db, [fast], name="next").run(until_idle=True), 30)
    async with db.acquire() as conn:
        status = await store.progress(conn, broadcast_id)
    assert status["state"] == "completed"
    assert status["accepted"] == plan.recipients
