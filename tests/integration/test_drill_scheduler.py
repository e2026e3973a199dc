"""Scheduled drills end to end, on a controlled clock: the scheduler fires "first Monday of the
month at 12:00 Paris time" without waiting for it; a worker sends the drill to two mock SMSCs over
TCP; receipts come back; the report passes. Next month one SMSC loses its receipts: the report
fails and the alarm goes off (log event, metric, webhook). Missed fire times are run or recorded,
never skipped, and two schedulers never fire a schedule twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from fixtures_drills import TEST_GROUP, FakeClock, WebhookSink, seed_subscribers
from fixtures_smsc import StartMock
from prometheus_client.parser import text_string_to_metric_families

from broadcaster.drills.config import DrillSettings, WebhookPolicy
from broadcaster.drills.report import Thresholds
from broadcaster.drills.scheduler import DrillScheduler
from broadcaster.drills.schedules import DrillSpec, ScheduleRequest, create_schedule
from broadcaster.engine.worker import Worker
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.serve import create_app
from broadcaster.settings import Settings, SmscConfig
from broadcaster.store.database import create_pool

PARIS = ZoneInfo("Europe/Paris")
TEST_GROUP_SIZE = sum(TEST_GROUP.values())
LOCAL_HOOKS = WebhookPolicy.parse(["http://127.0.0.1:*"])  # the sink: a local test server
CONFIG = DrillSettings(poll_s=1.0, webhook_retry_delays=(0.0, 0.0), webhook_policy=LOCAL_HOOKS)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await create_pool(db_dsn, min_size=2, max_size=8)
    async with pool.acquire() as conn:
        await seed_subscribers(conn)
    yield pool
    await pool.close()


@pytest.fixture
def settings(db_dsn: str) -> Settings:
    return Settings(database_url=db_dsn, chunk_size=25)


async def _schedule(
    db: asyncpg.Pool[asyncpg.Record],
    settings: Settings,
    now: datetime,
    cron: str = "0 12 * * 1#1",
    webhook: str | None = None,
    name: str = "monthly-paris",
) -> int:
    request = ScheduleRequest(
        name=name,
        cron=cron,
        timezone="Europe/Paris",
        drill=DrillSpec(areas=("dep:75", "dep:13")),
        thresholds=Thresholds(),
        webhook_url=webhook,
    )
    async with db.acquire() as conn:
        row, warnings = await create_schedule(conn, settings, request, now)
    assert warnings == []
    return int(row["id"])


@contextlib.asynccontextmanager
async def serving_worker(
    db: asyncpg.Pool[asyncpg.Record], smscs: Sequence[SmscConfig]
) -> AsyncIterator[Worker]:
    """A worker running as in `serve` (bound, recording receipts) until the block ends."""
    worker = Worker(db, smscs)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task


async def _until(check: Any, timeout: float = 30.0) -> None:
    """Poll the database until `check()` is true (bounded; not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "timed out waiting for the drill"
        await asyncio.sleep(0.05)


async def _fetchval(db: asyncpg.Pool[asyncpg.Record], sql: str, *args: Any) -> Any:
    async with db.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def _completed_with_receipts(
    db: asyncpg.Pool[asyncpg.Record], drill_id: int, missing: Callable[[], int] = lambda: 0
) -> None:
    """Wait until the drill completed and all its receipts but `missing()` are recorded."""

    async def done() -> bool:
        state = await _fetchval(db, "SELECT state FROM broadcasts WHERE id = $1", drill_id)
        pending = await _fetchval(
            db,
            "SELECT count(*) FROM deliveries d WHERE d.broadcast_id = $1 AND d.status = 0 "
            "AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.smsc = d.smsc "
            "AND r.message_id = d.message_id)",
            drill_id,
        )
        return bool(state == "completed" and pending == missing())

    await _until(done)


async def _metrics(db: asyncpg.Pool[asyncpg.Record], settings: Settings) -> dict[str, float]:
    """`/metrics` of an API app over the same database, as Prometheus would scrape it."""
    client = TestClient(TestServer(create_app(settings, db), host="127.0.0.1"))
    await client.start_server()
    try:
        async with client.get("/metrics") as response:
            assert response.status == 200
            text = await response.text()
    finally:
        await client.close()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("broadcaster_drill"):
            for sample in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                out[f"{sample.name}{{{labels}}}"] = sample.value
    return out


def _reached_only_the_test_group(mocks: Sequence[MockSmsc]) -> None:
    received: dict[str, list[str]] = {}
    for mock in mocks:
        for msisdn, texts in mock.record.messages.items():
            received.setdefault(msisdn, []).extend(texts)
    test_group = {
        str(33600000000 + n * 1_000_000 + i)
        for n, dep in enumerate(("75", "13"))
        for i in range(TEST_GROUP[dep])
    }
    assert set(received) == test_group
    for texts in received.values():
        assert len(texts) == 1
        assert texts[0].startswith(("EXERCICE", "EXERCISE"))


async def test_a_schedule_fires_on_the_clock_passes_then_fails_and_raises_the_alarm(
    db: asyncpg.Pool[asyncpg.Record],
    settings: Settings,
    start_mock: StartMock,
    webhook_sink: WebhookSink,
) -> None:
    a, smsc_a = await start_mock(MockConfig(seed=1, receipts=True), name="smsc-a")
    b, smsc_b = await start_mock(MockConfig(seed=2, receipts=True), name="smsc-b")
    clock = FakeClock(datetime(2026, 12, 7, 11, 59, tzinfo=PARIS))  # a first Monday
    schedule_id = await _schedule(db, settings, clock.now(), webhook=webhook_sink.url)
    scheduler = DrillScheduler(db, settings, clock=clock, config=CONFIG)

    assert (await scheduler.tick()).started == []  # 11:59: not yet
    clock.set(datetime(2026, 12, 7, 12, 0, 20, tzinfo=PARIS))
    fired = await scheduler.tick()
    assert len(fired.started) == 1
    first = fired.started[0]

    async with serving_worker(db, [smsc_a, smsc_b]):
        await _completed_with_receipts(db, first)
    assert a.record.parts_received > 0 and b.record.parts_received > 0  # both SMSCs used
    _reached_only_the_test_group([a, b])

    clock.advance(timedelta(seconds=30))
    with structlog.testing.capture_logs() as logs:
        reported = (await scheduler.tick()).reported
    assert [r.report.verdict for r in reported] == ["pass"]
    report = reported[0].report
    assert report.info.drill_id == first
    assert report.info.schedule == "monthly-paris"
    assert report.total.delivered_in_time == TEST_GROUP_SIZE
    assert {s.name for s in report.by_smsc} == {"smsc-a", "smsc-b"}
    assert {s.name: s.submitted for s in report.by_area} == {"13": 40, "75": 60}
    assert not [e for e in logs if e["event"] == "drill_alarm"]
    assert webhook_sink.received == []

    # Next month, SMSC b is replaced by one that loses every receipt.
    b2, smsc_b2 = await start_mock(
        MockConfig(seed=3, receipts=True, receipt_drop_rate=1.0), name="smsc-b2"
    )
    clock.set(datetime(2027, 1, 4, 12, 0, 30, tzinfo=PARIS))
    second = (await scheduler.tick()).started
    assert len(second) == 1
    async with serving_worker(db, [smsc_a, smsc_b2]):
        await _completed_with_receipts(db, second[0], missing=lambda: b2.record.parts_received)
    assert b2.record.parts_received > 0

    clock.advance(timedelta(minutes=1))
    assert (await scheduler.tick()).reported == []  # receipts may still come: it waits
    clock.advance(timedelta(minutes=5))  # the 300 s delivery window has passed
    with structlog.testing.capture_logs() as logs:
        reported = (await scheduler.tick()).reported
    assert [r.report.verdict for r in reported] == ["fail"]
    failing = reported[0].report
    assert {c.scope for c in failing.failures} >= {"all", "smsc smsc-b2"}
    assert "smsc smsc-a" not in {c.scope for c in failing.failures}

    alarms = [e for e in logs if e["event"] == "drill_alarm"]
    assert len(alarms) == 1
    assert alarms[0]["reason"] == "thresholds"
    assert alarms[0]["schedule"] == "monthly-paris"
    assert alarms[0]["drill_id"] == second[0]
    assert "smsc smsc-b2: 0.0%" in alarms[0]["message"]

    assert len(webhook_sink.received) == 1
    posted = webhook_sink.received[0]
    assert posted["event"] == "drill_failed"
    assert posted["drill_id"] == second[0]
    assert posted["report"]["verdict"] == "fail"
    assert {s["name"]: s["delivered"] for s in posted["report"]["by_smsc"]}["smsc-b2"] == 0

    metrics = await _metrics(db, settings)
    assert metrics["broadcaster_drill_failing{schedule=monthly-paris}"] == 1.0
    assert metrics["broadcaster_drill_alarms{reason=thresholds,schedule=monthly-paris}"] == 1.0
    assert metrics["broadcaster_drill_runs{outcome=started,schedule=monthly-paris}"] == 2.0

    async with db.acquire() as conn:
        runs = await conn.fetch(
            "SELECT verdict, alarm, webhook_status, due_at FROM drill_runs "
            "WHERE schedule_id = $1 ORDER BY id",
            schedule_id,
        )
        stored = json.loads(
            await conn.fetchval("SELECT report FROM drill_runs WHERE broadcast_id = $1", second[0])
        )
    assert [(r["verdict"], r["alarm"]) for r in runs] == [("pass", None), ("fail", "thresholds")]
    assert runs[1]["webhook_status"] == "sent (HTTP 200)"
    assert [r["due_at"].astimezone(PARIS).hour for r in runs] == [12, 12]
    assert stored["verdict"] == "fail"
    # Reported once: later passes neither report nor alarm it again.
    clock.advance(timedelta(hours=1))
    assert (await scheduler.tick()).reported == []
    assert len(webhook_sink.received) == 1


async def test_missed_fire_times_are_recorded_and_alarmed_never_run_as_a_backlog(
    db: asyncpg.Pool[asyncpg.Record], settings: Settings, webhook_sink: WebhookSink
) -> None:
    clock = FakeClock(datetime(2026, 12, 7, 9, 0, tzinfo=PARIS))
    await _schedule(db, settings, clock.now(), cron="0 12 * * *", webhook=webhook_sink.url)
    scheduler = DrillScheduler(db, settings, clock=clock, config=CONFIG)
    # The server was down from before Monday noon until Thursday 14:00: four noons passed, the
    # last one two hours ago, past the one-hour grace period.
    clock.set(datetime(2026, 12, 10, 14, 0, tzinfo=PARIS))
    with structlog.testing.capture_logs() as logs:
        tick = await scheduler.tick()
    assert tick.started == []
    assert len(tick.missed) == 4
    missed = [e for e in logs if e["event"] == "drill_missed"]
    assert missed[0]["missed"] == 4
    assert [e["reason"] for e in logs if e["event"] == "drill_alarm"] == ["missed"]
    assert [p["event"] for p in webhook_sink.received] == ["drill_missed"]
    assert "4 drill(s) missed" in webhook_sink.received[0]["message"]

    # Down again over Friday noon, back at 12:40 (within the grace period): that one runs, late.
    clock.set(datetime(2026, 12, 11, 12, 40, tzinfo=PARIS))
    tick = await scheduler.tick()
    assert len(tick.started) == 1
    assert tick.missed == []
    metrics = await _metrics(db, settings)
    assert metrics["broadcaster_drill_runs{outcome=missed,schedule=monthly-paris}"] == 4.0
    assert metrics["broadcaster_drill_alarms{reason=missed,schedule=monthly-paris}"] == 4.0
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT outcome, due_at, reason FROM drill_runs ORDER BY due_at")
        next_run = await conn.fetchval("SELECT next_run_at FROM drill_schedules")
    assert [r["outcome"] for r in rows] == ["missed"] * 4 + ["started"]
    assert all("grace period" in r["reason"] for r in rows[:4])
    assert next_run == datetime(2026, 12, 12, 12, 0, tzinfo=PARIS)


async def test_two_schedulers_fire_a_schedule_once(
    db: asyncpg.Pool[asyncpg.Record], settings: Settings
) -> None:
    clock = FakeClock(datetime(2026, 12, 7, 11, 0, tzinfo=PARIS))
    await _schedule(db, settings, clock.now())
    clock.set(datetime(2026, 12, 7, 12, 0, 5, tzinfo=PARIS))
    first = DrillScheduler(db, settings, clock=clock, config=CONFIG)
    second = DrillScheduler(db, settings, clock=clock, config=CONFIG)
    ticks = await asyncio.gather(first.tick(), second.tick(), first.tick())
    assert sum(len(t.started) for t in ticks) == 1
    assert await _fetchval(db, "SELECT count(*) FROM broadcasts WHERE kind = 'drill'") == 1


async def test_a_drill_that_cannot_start_is_recorded_and_alarmed(
    db: asyncpg.Pool[asyncpg.Record], settings: Settings, webhook_sink: WebhookSink
) -> None:
    clock = FakeClock(datetime(2026, 12, 7, 11, 0, tzinfo=PARIS))
    await _schedule(db, settings, clock.now(), webhook=webhook_sink.url)
    async with db.acquire() as conn:
        await conn.execute("UPDATE subscribers SET test_group = false")  # the test group left
    clock.set(datetime(2026, 12, 7, 12, 0, 5, tzinfo=PARIS))
    with structlog.testing.capture_logs() as logs:
        tick = await DrillScheduler(db, settings, clock=clock, config=CONFIG).tick()
    assert tick.started == []
    assert len(tick.not_started) == 1
    assert [e["reason"] for e in logs if e["event"] == "drill_alarm"] == ["not_started"]
    assert webhook_sink.received[0]["event"] == "drill_not_started"
    assert "could not start" in webhook_sink.received[0]["message"]
    assert "test group" in webhook_sink.received[0]["message"]
    assert await _fetchval(db, "SELECT count(*) FROM broadcasts") == 0


async def test_the_scheduler_loop_runs_on_the_injected_clock_and_stops(
    db: asyncpg.Pool[asyncpg.Record], settings: Settings
) -> None:
    clock = FakeClock(datetime(2026, 12, 7, 11, 58, tzinfo=PARIS))
    await _schedule(db, settings, clock.now())
    scheduler = DrillScheduler(db, settings, clock=clock, config=CONFIG)
    task = asyncio.create_task(scheduler.run())

    async def fired() -> bool:
        return bool(await _fetchval(db, "SELECT count(*) FROM drill_runs"))

    await _until(fired)  # the loop's sleeps advance the fake clock to noon
    scheduler.stop()
    await asyncio.wait_for(task, 5)
    assert clock.now() >= datetime(2026, 12, 7, 12, 0, tzinfo=PARIS)
    assert await _fetchval(db, "SELECT outcome FROM drill_runs") == "started"
