"""What must not make drills lie or stop: a schedule that fails unexpectedly, a scheduler pass that
fails, an SMSC that refuses every bind, a webhook that redirects or fails, an intermediate
receipt. Real PostgreSQL, mock SMSCs over TCP, a real local HTTP server; the clock is controlled.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
import structlog
from aiohttp import web
from fixtures_drills import TEST_GROUP, FakeClock, seed_subscribers
from fixtures_smsc import StartMock

from broadcaster.domain.receipt_ids import keys
from broadcaster.drills import runs as drill_runs
from broadcaster.drills.config import DrillSettings, WebhookPolicy
from broadcaster.drills.report import Thresholds
from broadcaster.drills.runs import FINAL_RECEIPT_STATS, load_report
from broadcaster.drills.scheduler import DrillScheduler
from broadcaster.drills.schedules import DrillSpec, ScheduleRequest, create_schedule
from broadcaster.engine.worker import Worker
from broadcaster.errors import ConfigError
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings, SmscConfig
from broadcaster.store import receipts as store_receipts
from broadcaster.store.database import Conn, create_pool
from broadcaster.store.queries import queries

PARIS = ZoneInfo("Europe/Paris")
TEST_GROUP_SIZE = sum(TEST_GROUP.values())
LOCAL_HOOKS = WebhookPolicy.parse(["http://127.0.0.1:*"])  # local test servers
CONFIG = DrillSettings(
    poll_s=1.0,
    webhook_timeout_s=5.0,
    webhook_retry_delays=(0.0, 0.0),
    webhook_policy=LOCAL_HOOKS,
)


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
    name: str,
    cron: str = "0 12 * * *",
    webhook: str | None = None,
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
        row, _ = await create_schedule(conn, settings, request, now)
    return int(row["id"])


async def _fetch(db: asyncpg.Pool[asyncpg.Record], sql: str, *args: Any) -> list[asyncpg.Record]:
    async with db.acquire() as conn:
        return list(await conn.fetch(sql, *args))


async def _fetchval(db: asyncpg.Pool[asyncpg.Record], sql: str, *args: Any) -> Any:
    async with db.acquire() as conn:
        return await conn.fetchval(sql, *args)


async def _until(check: Any, timeout: float = 30.0) -> None:
    """Poll until `check()` is true (bounded; not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def serving_worker(
    db: asyncpg.Pool[asyncpg.Record], smscs: Sequence[SmscConfig]
) -> AsyncIterator[Worker]:
    worker = Worker(db, smscs)
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await task


async def _completed(db: asyncpg.Pool[asyncpg.Record], drill_id: int, pending: int = 0) -> None:
    """Wait until the drill completed and exactly `pending` accepted parts lack a final receipt."""

    async def done() -> bool:
        state = await _fetchval(db, "SELECT state FROM broadcasts WHERE id = $1", drill_id)
        left = await _fetchval(db, queries["drill_receipts_pending"], drill_id, FINAL_RECEIPT_STATS)
        return bool(state == "completed" and left == pending)

    await _until(done)


# -- 1. one schedule's unexpected failure; a failing pass -------------------------------------


async def test_an_unexpected_error_in_one_schedule_is_a_not_started_run_and_others_fire(
    db: asyncpg.Pool[asyncpg.Record], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock(datetime(2026, 12, 7, 11, 0, tzinfo=PARIS))
    broken = await _schedule(db, settings, clock.now(), "a-broken")
    healthy = await _schedule(db, settings, clock.now(), "b-healthy")
    real_start = drill_runs.start_drill

    async def failing_start(*args: Any, **kwargs: Any) -> Any:
        if kwargs["schedule"]["name"] == "a-broken":
            raise ConfigError("templates/catalogue.toml is not valid TOML")
        return await real_start(*args, **kwargs)

    monkeypatch.setattr("broadcaster.drills.scheduler.start_drill", failing_start)
    clock.set(datetime(2026, 12, 7, 12, 0, 5, tzinfo=PARIS))
    scheduler = DrillScheduler(db, settings, clock=clock, config=CONFIG)
    with structlog.testing.capture_logs() as logs:
        tick = await scheduler.tick()

    assert len(tick.started) == 1  # the healthy one fired in the same pass
    assert len(tick.not_started) == 1
    runs = {
        r["schedule_id"]: r
        for r in await _fetch(db, "SELECT schedule_id, outcome, alarm, reason FROM drill_runs")
    }
    assert runs[healthy]["outcome"] == "started"
    assert runs[broken]["outcome"] == "not_started"
    assert runs[broken]["alarm"] == "not_started"
    assert "ConfigError: templates/catalogue.toml is not valid TOML" in runs[broken]["reason"]
    failed = [e for e in logs if e["event"] == "drill_schedule_failed"]
    assert failed[0]["action"] == "drill_schedule_failed"
    assert failed[0]["schedule"] == "a-broken"
    assert isinstance(failed[0]["exc_info"], ConfigError)
    alarms = [e for e in logs if e["event"] == "drill_alarm"]
    assert [(a["reason"], a["schedule"]) for a in alarms] == [("not_started", "a-broken")]
    # Both moved past now: the broken one is not retried (and alarmed) every pass.
    nexts = await _fetch(db, "SELECT next_run_at FROM drill_schedules")
    assert all(r["next_run_at"] == datetime(2026, 12, 8, 12, 0, tzinfo=PARIS) for r in nexts)
    assert (await scheduler.tick()).not_started == []


async def test_the_loop_survives_a_broken_catalogue_and_a_failing_pass(
    db: asyncpg.Pool[asyncpg.Record],
    db_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(Settings().templates_dir, templates)
    settings = Settings(database_url=db_dsn, chunk_size=25, templates_dir=templates)
    clock = FakeClock(datetime(2026, 12, 7, 10, 30, tzinfo=PARIS))
    await _schedule(db, settings, clock.now(), "hourly", cron="0 * * * *")
    catalogue = templates / "catalogue.toml"
    good = catalogue.read_text()
    catalogue.write_text("[drill\nthis is not TOML")  # broken before the 11:00 fire time

    real_report = drill_runs.report_finished
    calls = 0

    async def report_failing_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncpg.InterfaceError("cannot call Connection.fetch(): connection is closed")
        return await real_report(*args, **kwargs)

    monkeypatch.setattr("broadcaster.drills.scheduler.report_finished", report_failing_once)
    config = DrillSettings(poll_s=600.0, webhook_retry_delays=(0.0, 0.0))
    scheduler = DrillScheduler(db, settings, clock=clock, config=config)

    async def outcomes() -> list[str]:
        rows = await _fetch(db, "SELECT outcome FROM drill_runs ORDER BY due_at")
        return [r["outcome"] for r in rows]

    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(scheduler.run())
        try:
            await _until(lambda: _has(outcomes, "not_started"))
            catalogue.write_text(good)  # repaired: the next fire time runs
            await _until(lambda: _has(outcomes, "started"))
            assert not task.done()
        finally:
            scheduler.stop()
            await asyncio.wait_for(task, 10)
    assert task.exception() is None
    assert (await outcomes())[0] == "not_started"
    failed = [e for e in logs if e["event"] == "drill_scheduler_pass_failed"]
    assert failed and failed[0]["action"] == "drill_scheduler_pass_failed"
    assert isinstance(failed[0]["exc_info"], asyncpg.InterfaceError)
    not_started = await _fetchval(
        db, "SELECT reason FROM drill_runs WHERE outcome = 'not_started' ORDER BY id LIMIT 1"
    )
    assert "ConfigError" in not_started


async def _has(outcomes: Any, outcome: str) -> bool:
    return outcome in await outcomes()


# -- 2. an SMSC that carried nothing ----------------------------------------------------------


async def test_an_smsc_refusing_binds_fails_the_drill(
    db: asyncpg.Pool[asyncpg.Record], db_dsn: str, start_mock: StartMock
) -> None:
    _, smsc_a = await start_mock(MockConfig(seed=1, receipts=True), name="smsc-a")
    dead, smsc_b = await start_mock(MockConfig(seed=2, refuse_binds=True), name="smsc-b")
    settings = Settings(database_url=db_dsn, chunk_size=25, smscs=(smsc_a, smsc_b))
    clock = FakeClock(datetime(2026, 12, 7, 11, 0, tzinfo=PARIS))
    await _schedule(db, settings, clock.now(), "daily")
    clock.set(datetime(2026, 12, 7, 12, 0, 5, tzinfo=PARIS))
    scheduler = DrillScheduler(db, settings, clock=clock, config=CONFIG)
    (drill_id,) = (await scheduler.tick()).started
    async with serving_worker(db, [smsc_a, smsc_b]):
        await _completed(db, drill_id)
    assert dead.record.parts_received == 0

    clock.advance(timedelta(seconds=30))
    with structlog.testing.capture_logs() as logs:
        (reported,) = (await scheduler.tick()).reported
    report = reported.report
    assert report.total.delivered_in_time == TEST_GROUP_SIZE  # all through smsc-a...
    assert report.verdict == "fail"  # ...but smsc-b would have carried nothing in a crisis
    assert report.info.smscs == ("smsc-a", "smsc-b")
    rows = {b.name: b for b in report.by_smsc}
    assert rows["smsc-b"].submitted == 0 and rows["smsc-a"].submitted == TEST_GROUP_SIZE
    assert [(c.name, c.scope) for c in report.failures] == [("carried", "smsc smsc-b")]
    assert "smsc smsc-b carried no part" in report.failures[0].message
    alarms = [e for e in logs if e["event"] == "drill_alarm"]
    assert len(alarms) == 1 and "smsc smsc-b carried no part" in alarms[0]["message"]
    stored = await _fetchval(db, "SELECT smscs FROM drill_runs WHERE broadcast_id = $1", drill_id)
    assert stored == ["smsc-a", "smsc-b"]


# -- 3. webhooks that redirect, fail, or are not there ---------------------------------------


@pytest.fixture
async def bad_webhooks() -> AsyncIterator[dict[str, str]]:
    """A real local server: /redirect answers 302 to /elsewhere (which would answer a GET with
    200), /error answers 500; and a port where nothing listens."""

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("/elsewhere")

    async def elsewhere(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def error(request: web.Request) -> web.Response:
        return web.json_response({"error": "boom"}, status=500)

    app = web.Application()
    app.router.add_post("/redirect", redirect)
    app.router.add_route("*", "/elsewhere", elsewhere)
    app.router.add_post("/error", error)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    try:
        yield {
            "redirect": f"http://{host}:{port}/redirect",
            "error": f"http://{host}:{port}/error",
            "unreachable": f"http://127.0.0.1:{closed_port}/alarms",
        }
    finally:
        await runner.cleanup()


async def test_webhooks_that_redirect_fail_or_are_unreachable_are_recorded_failed(
    db: asyncpg.Pool[asyncpg.Record], settings: Settings, bad_webhooks: dict[str, str]
) -> None:
    clock = FakeClock(datetime(2026, 12, 7, 11, 0, tzinfo=PARIS))
    for kind, url in bad_webhooks.items():
        await _schedule(db, settings, clock.now(), f"hook-{kind}", webhook=url)
    async with db.acquire() as conn:
        await conn.execute("UPDATE subscribers SET test_group = false")  # drills cannot start
    clock.set(datetime(2026, 12, 7, 12, 0, 5, tzinfo=PARIS))
    scheduler = DrillScheduler(db, settings, clock=clock, config=CONFIG)
    assert len((await scheduler.tick()).not_started) == 3

    status = {
        r["schedule_name"]: r["webhook_status"]
        for r in await _fetch(db, "SELECT schedule_name, webhook_status FROM drill_runs")
    }
    # In generic words (what anyone who reads runs sees); the details are in the log only.
    assert status["hook-redirect"] == "failed (HTTP 302, redirect not followed)"
    assert status["hook-error"] == "failed (HTTP 500)"
    assert status["hook-unreachable"] == "failed (no answer)"

    # The scheduler carries on: the next day, with the test group back, the drills start.
    async with db.acquire() as conn:
        await conn.execute("UPDATE subscribers SET test_group = msisdn % 1000000 < 500000")
    clock.set(datetime(2026, 12, 8, 12, 0, 5, tzinfo=PARIS))
    assert len((await scheduler.tick()).started) == 3


# -- 4. intermediate receipts ----------------------------------------------------------------


async def test_an_enroute_receipt_neither_ends_the_wait_nor_counts_as_an_outcome(
    db: asyncpg.Pool[asyncpg.Record], settings: Settings, start_mock: StartMock
) -> None:
    _, smsc = await start_mock(MockConfig(seed=1), name="smsc-a")  # sends no receipt itself
    clock = FakeClock(datetime(2026, 12, 7, 11, 0, tzinfo=PARIS))
    await _schedule(db, settings, clock.now(), "daily")
    clock.set(datetime(2026, 12, 7, 12, 0, 5, tzinfo=PARIS))
    scheduler = DrillScheduler(db, settings, clock=clock, config=CONFIG)
    (drill_id,) = (await scheduler.tick()).started
    async with serving_worker(db, [smsc]):
        await _completed(db, drill_id, pending=TEST_GROUP_SIZE)

    async def receipt(conn: Conn, drill_id: int, stat: str) -> None:
        """One receipt of `stat` per accepted part, recorded (and matched) as the engine does."""
        parts = await conn.fetch(
            "SELECT smsc, message_id FROM deliveries WHERE broadcast_id = $1 AND status = 0",
            drill_id,
        )
        now = datetime.now(UTC)
        rows = [
            store_receipts.staged(
                p["smsc"], p["message_id"], None, None, stat, None, None, now, keys([i], "same")
            )
            for p in parts
            for i in [p["message_id"]]
        ]
        await store_receipts.record(conn, rows)

    async with db.acquire() as conn:
        await receipt(conn, drill_id, "ENROUTE")  # on its way: not an outcome
        pending = await conn.fetchval(
            queries["drill_receipts_pending"], drill_id, FINAL_RECEIPT_STATS
        )
        early = await load_report(conn, drill_id)
    assert pending == TEST_GROUP_SIZE
    assert early.total.undelivered_by_stat == {"no receipt": TEST_GROUP_SIZE}

    clock.advance(timedelta(seconds=30))
    assert (await scheduler.tick()).reported == []  # still waiting for the final receipts

    async with db.acquire() as conn:
        await receipt(conn, drill_id, "DELIVRD")
    clock.advance(timedelta(seconds=30))
    (reported,) = (await scheduler.tick()).reported
    assert reported.report.verdict == "pass"
    assert reported.report.total.delivered == TEST_GROUP_SIZE
