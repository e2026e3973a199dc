"""Roll-ups (issue 22) against a full recount of the outcomes: after a run with retries
(throttled answers), refusals, a worker killed mid-send (real process, SIGKILL), a chunk's parts
recorded twice, and receipts of every stat from the mock SMSC."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine.worker import Worker
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig
from broadcaster.mocksmsc.scenario import RECEIPT_STATS
from broadcaster.settings import Settings
from broadcaster.smpp.receipts import FINAL_STATS, MESSAGE_STATES, UNDELIVERED_STATS
from broadcaster.store import broadcasts as store
from broadcaster.store import chunks, maps, rollups
from broadcaster.store.database import create_pool


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=2, max_size=8)
    async with pool.acquire() as conn:
        await seed_synthetic(conn, 20_000, seed=11)
    yield pool
    await pool.close()


def test_a_percentile_is_never_above_the_largest_delay() -> None:
    """The percentiles are a bucket's middle: above the largest delay seen when it fell low in
    its bucket (`status` said p50 14.7 s, max 14.05 s)."""
    top = 1000  # one delay of 14.05 s, in the bucket whose middle is above it
    bucket = math.floor(math.log(14.05 / rollups.BUCKET_BASE_S) / math.log(rollups.BUCKET_RATIO))
    estimate = rollups.percentile([(bucket, top)], 0.5)
    assert estimate is not None and estimate > 14.05
    assert (rollups._at_most(estimate, 14.05) or 99.0) <= 14.05
    assert rollups._at_most(1.23456, 14.05) == 1.235
    assert rollups._at_most(None, 14.05) is None
    assert rollups._at_most(0.02351, 0.02346) == 0.023  # rounding never lifts it past the max
    assert rollups._at_most(1.5, None) == 1.5


def test_recipient_delta_counts_each_recipient_once_across_flushes() -> None:
    first = [(1, 1, 2, 0)]  # part 1 of 2 accepted
    assert rollups.recipient_delta([], first) == (1, 0, 0, 0)
    # part 2 accepted in a later flush, part 1 recorded again (a duplicate row)
    assert rollups.recipient_delta(first, [(1, 2, 2, 0), (1, 1, 2, 0)]) == (0, 1, 0, 1)
    assert rollups.recipient_delta([], [(2, 1, 1, 0x0B)]) == (1, 0, 1, 0)


async def test_rollups_equal_a_full_recount_after_retries_a_crash_duplicates_and_receipts(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, tmp_path: Path
) -> None:
    mix = {stat: 1.0 / len(RECEIPT_STATS) for stat in RECEIPT_STATS}
    config = MockConfig(
        seed=9,
        tps=1500,
        errors={0x58: 0.05, 0x0B: 0.02},  # throttled (sent again), invalid destination
        receipts=True,
        receipt_delay_ms=20,
        receipt_mix=mix,
    )
    mock, smsc = await start_mock(config, tps=800)
    settings = Settings(database_url=db_dsn, chunk_size=150)
    request = BroadcastRequest(areas=["dep:75", "dep:13"], template="outage", variables={})
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)

    env = {
        **os.environ,
        "DATABASE_URL": db_dsn,
        "BROADCASTER_SMSC_URL": f"smpp://r:pw@127.0.0.1:{smsc.port}?binds=2&window=32",
    }
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broadcaster",
            "worker",
            "--until-idle",
            "--lease-seconds",
            "3",
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    while mock.submits < plan.parts // 3:
        assert worker.returncode is None, log.read_text()
        await asyncio.sleep(0.01)
    worker.send_signal(signal.SIGKILL)  # the crash: sent, not all recorded
    await worker.wait()

    runs = await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 120)
    assert runs[-1].state == "completed"
    async with db.acquire() as conn:
        # A worker whose lease expired while it was alive records what it sent: rows twice.
        again = await conn.fetch(
            "SELECT broadcast_id, msisdn, part, parts, status, message_id, smsc, submitted_at,"
            " answered_at, group_no FROM deliveries WHERE broadcast_id = $1 LIMIT 40",
            broadcast_id,
        )
        await chunks.record_outcomes(conn, broadcast_id, [tuple(r) for r in again], [])
        rolled, counted = await rollups.compare(conn, broadcast_id)
        status = await store.progress(conn, broadcast_id)
    assert rolled == counted
    assert counted["recipients"]["duplicates"] >= 40
    assert counted["recipients"]["failed"] > 0
    assert set(counted["receipts"]) == set(RECEIPT_STATS)  # every stat came back
    assert {k.split("|")[1] for k in counted["outcomes"]} >= {"0", str(0x0B)}
    assert status["accepted"] == counted["recipients"]["accepted"]
    assert {s: r["count"] for s, r in status["receipts"].items()} == counted["receipts"]
    for stat, r in status["receipts"].items():  # estimated, never above what was seen
        assert r["p50_s"] <= r["p95_s"] <= r["max_s"], stat
        assert r["p95_s"] == round(r["p95_s"], 3)
    # Per area too (the console map's delivered share): each stat's parts, split by département.
    by_area = counted["receipt_areas"]
    assert {key.split("|")[0] for key in by_area} == {"75", "13"}
    for stat, parts in counted["receipts"].items():
        assert sum(n for key, n in by_area.items() if key.endswith(f"|{stat}")) == parts
    async with db.acquire() as conn:
        areas = {a.departement: a for a in await maps.areas_progress(conn, broadcast_id)}
    for dep in ("75", "13"):
        assert areas[dep].delivered == by_area.get(f"{dep}|DELIVRD", 0) > 0
        assert 0 < areas[dep].delivered_share <= 1
    # And each stat's delays, bucket by bucket (the same function both ways: receipt_delay_bucket).
    delays = counted["receipt_delays"]
    for stat, parts in counted["receipts"].items():
        assert sum(n for key, n in delays.items() if key.startswith(f"{stat}|")) == parts


async def test_undelivered_stats_are_the_same_in_sql_and_python(db: asyncpg.Pool) -> None:
    """A receipt stat saying its part never reached the phone has one home on each side
    (`receipt_undelivered`, `UNDELIVERED_STATS`): the report's SQL listed five stats seven
    times, ACCEPTD left out (its parts read as still awaiting a receipt)."""
    stats = sorted({*MESSAGE_STATES.values(), "ENROUTE", "ACCEPTD", "DELIVRD", "nonsense"})
    async with db.acquire() as conn:
        undelivered = {
            r["s"]
            for r in await conn.fetch(
                "SELECT s FROM unnest($1::text[]) AS u(s) WHERE receipt_undelivered(s)", stats
            )
        }
    assert undelivered == set(UNDELIVERED_STATS) == set(FINAL_STATS) - {"DELIVRD"}
    assert "ACCEPTD" in undelivered and "ENROUTE" not in undelivered


async def test_the_delay_bucket_is_the_one_the_percentiles_read(db: asyncpg.Pool) -> None:
    """Bucket b holds delays from BUCKET_BASE_S × BUCKET_RATIO^b (store/rollups.py reads them
    so): the SQL function and the Python constants say the same, at the ends too."""
    delays = [-1.0, 0.0, 0.005, 0.01, 0.0105, 0.0111, 0.2, 0.5, 1.0, 7.3, 60.0, 3600.0, 1e7]
    async with db.acquire() as conn:
        got = await conn.fetchval(
            "SELECT array_agg(receipt_delay_bucket(d) ORDER BY o)"
            " FROM unnest($1::float8[]) WITH ORDINALITY AS u(d, o)",
            delays,
        )
    ratio = math.log(rollups.BUCKET_RATIO)
    want = [
        min(
            max(
                math.floor(math.log(max(d, rollups.BUCKET_BASE_S) / rollups.BUCKET_BASE_S) / ratio),
                0,
            ),
            200,
        )
        for d in delays
    ]
    assert list(got) == want
    assert want[0] == want[3] == 0 and want[-1] == 200 and want[4] == 0 and want[5] == 1


async def test_fresh_recipients_are_looked_up_once_their_chunk_is_claimed_again(
    db: asyncpg.Pool, db_dsn: str
) -> None:
    """A flush's recipients marked fresh (first outcome in a first claim) are not looked up;
    once their chunk has been claimed again (a worker whose lease expired while it was alive),
    they are: the roll-ups still equal a full recount."""
    settings = Settings(database_url=db_dsn, chunk_size=150)
    request = BroadcastRequest(areas=["dep:75"], template="outage", variables={})
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
        now = datetime.now(UTC)

        def row(msisdn: int, status: int = 0) -> tuple[object, ...]:
            return (
                broadcast_id, msisdn, 1, 1, status, "A1" if not status else None, "s", now, now, 0
            )  # fmt: skip

        first_chunk = await conn.fetchval(
            "SELECT min(chunk_no) FROM broadcast_chunks WHERE broadcast_id = $1", broadcast_id
        )
        fresh = rollups.Fresh({33600000001, 33600000002}, [first_chunk])
        rows = [row(33600000001), row(33600000002, 0x58)]
        await chunks.record_outcomes(conn, broadcast_id, rows, [], 0, fresh)
        rolled, counted = await rollups.compare(conn, broadcast_id)
        assert rolled == counted and counted["recipients"]["recorded"] == 2
        # Claimed again: the same recipients come back marked fresh by the other claim's run.
        await conn.execute(
            "UPDATE broadcast_chunks SET claims = 2 WHERE broadcast_id = $1", broadcast_id
        )
        await chunks.record_outcomes(conn, broadcast_id, [row(33600000001)], [], 0, fresh)
        rolled, counted = await rollups.compare(conn, broadcast_id)
    assert rolled == counted
    assert counted["recipients"] == {"recorded": 2, "accepted": 1, "failed": 1, "duplicates": 1}
