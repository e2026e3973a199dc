"""Receipts matched to the submission they answer (real PostgreSQL, the mock SMSC over TCP).

Known answers first, on hand-made deliveries: ids in another base, ids reused after a restart, a
receipt two submissions could claim. Then the whole chain against a mock SMSC that writes its
receipt ids in decimal: every receipt lands on the part the SMSC says it is about.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.receipt_ids import keys
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.drills.local import send_drill
from broadcaster.drills.runs import load_report
from broadcaster.engine import receipts as recorder_module
from broadcaster.engine import runner as runner_module
from broadcaster.engine.engine import Engine
from broadcaster.engine.receipts import ReceiptRecorder
from broadcaster.engine.sent_parts import SentParts
from broadcaster.engine.worker import Worker
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings, SmscConfig
from broadcaster.smpp.receipts import Receipt
from broadcaster.store import broadcasts as store_broadcasts
from broadcaster.store import receipts as store
from broadcaster.store import rollups
from broadcaster.store.chunks import record_outcomes
from broadcaster.store.database import Conn, create_pool
from broadcaster.store.queries import queries

T0 = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def _deliveries(conn: Conn, *rows: tuple[int, int, str, datetime]) -> None:
    """Accepted parts: (broadcast, msisdn, message_id as the response gave it, submitted at)."""
    await conn.copy_records_to_table(
        "deliveries",
        records=[(b, m, 1, 1, 0, mid, "smsc", at, at) for b, m, mid, at in rows],
        columns=(
            "broadcast_id",
            "msisdn",
            "part",
            "parts",
            "status",
            "message_id",
            "smsc",
            "submitted_at",
            "answered_at",
        ),
    )


async def _receive(conn: Conn, message_id: str, at: datetime, form: str) -> None:
    row = store.staged(
        "smsc", message_id, None, None, "DELIVRD", None, None, at, keys([message_id], form)
    )
    await store.record(conn, [row])


async def _eventually(done: Callable[[], object], seconds: float = 10.0) -> None:
    """Wait until `done()` is true, `seconds` at most (a loaded machine's flush may take a
    while; the caller's assertions say what was due)."""
    for _ in range(int(seconds / 0.05)):
        if done():
            return
        await asyncio.sleep(0.05)


async def _last(conn: Conn) -> tuple[str, int | None, int | None]:
    row = await conn.fetchrow(
        "SELECT match, broadcast_id, msisdn FROM receipts ORDER BY received_at DESC, ctid DESC"
        " LIMIT 1"
    )
    assert row is not None
    return row["match"], row["broadcast_id"], row["msisdn"]


async def test_a_decimal_receipt_id_is_matched_to_its_hex_submission_not_a_lookalike(
    db: asyncpg.Pool,
) -> None:
    async with db.acquire() as conn:
        # 0x3039 = 12345: the receipt's "12345" answers 33600000001; 33600000002's response id
        # happens to be the string "12345" (an all-digit hex id).
        await _deliveries(conn, (1, 33600000001, "00003039", T0), (1, 33600000002, "12345", T0))
        await _receive(conn, "12345", T0 + timedelta(seconds=5), "decimal")
        assert await _last(conn) == ("matched", 1, 33600000001)
        await _receive(conn, "12345", T0 + timedelta(seconds=6), "same")
        assert await _last(conn) == ("matched", 1, 33600000002)
        # Not known yet: both readings name a part, so neither gets it.
        await _receive(conn, "12345", T0 + timedelta(seconds=7), "auto")
        assert await _last(conn) == ("ambiguous", None, None)
        await _receive(conn, "FFFF", T0 + timedelta(seconds=8), "auto")
        assert await _last(conn) == ("unmatched", None, None)
        counts = await store.unattributed(conn, T0)
    assert counts == {"unmatched": 1, "ambiguous": 1}


async def test_an_id_reused_after_an_smsc_restart_goes_to_the_latest_submission_before_it(
    db: asyncpg.Pool,
) -> None:
    later = T0 + timedelta(hours=1)
    async with db.acquire() as conn:
        await _deliveries(conn, (1, 33600000001, "A1", T0), (2, 33600000009, "A1", later))
        await _receive(conn, "A1", T0 + timedelta(minutes=2), "same")  # before the restart
        assert await _last(conn) == ("matched", 1, 33600000001)
        await _receive(conn, "A1", later + timedelta(minutes=2), "same")
        assert await _last(conn) == ("matched", 2, 33600000009)
        await _receive(conn, "A1", later + timedelta(minutes=3), "same")  # sent twice by the SMSC
        summary = await conn.fetch(
            "SELECT broadcast_id, count(DISTINCT (msisdn, part)) AS parts FROM receipts"
            " WHERE match = 'matched' GROUP BY broadcast_id ORDER BY broadcast_id"
        )
    assert [(r["broadcast_id"], r["parts"]) for r in summary] == [(1, 1), (2, 1)]


async def test_an_auto_smsc_is_learnt_from_its_receipts_and_early_ones_matched_again(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(recorder_module, "EVIDENCE", 10)
    hex_ids = [format(0x10_0000_0000 + 7919 * n, "016X") for n in range(12)]
    async with db.acquire() as conn:
        await _deliveries(
            conn,
            *[(1, 33600000100 + n, mid, T0) for n, mid in enumerate(hex_ids)],
            # a lookalike: its response id is the decimal text of the first receipt
            (1, 33600000999, str(int(hex_ids[0], 16)), T0),
        )
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc")])
    recorder(Receipt(message_id=str(int(hex_ids[0], 16)), stat="DELIVRD"), "smsc")
    await recorder.flush()
    async with db.acquire() as conn:
        assert (await _last(conn))[0] == "ambiguous"  # both readings name a part: nobody's yet
    for mid in hex_ids[1:]:
        recorder(Receipt(message_id=str(int(mid, 16)), stat="DELIVRD"), "smsc")
    await recorder.flush()
    assert recorder.ids.form("smsc") == "decimal"
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT match, msisdn FROM receipts ORDER BY msisdn")
    assert [r["match"] for r in rows] == ["matched"] * 12
    assert [r["msisdn"] for r in rows] == [33600000100 + n for n in range(12)]


async def test_a_receipt_ahead_of_its_submission_record_is_held_and_matched_when_it_lands(
    db: asyncpg.Pool,
) -> None:
    """A fast SMSC's receipt can arrive before the outcome flush that records its part: it is
    tried again at the next flushes, not stored as 'unmatched' for ever (seen under load)."""
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    recorder(Receipt(message_id="B7", stat="DELIVRD"), "smsc")
    recorder(Receipt(message_id="NEVER", stat="DELIVRD"), "smsc")
    await recorder.flush()
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM receipts") == 0
        assert recorder.held == 2 and recorder.recorded == 0
        await _deliveries(conn, (1, 33600000007, "B7", datetime.now(UTC)))
    await recorder.flush()
    async with db.acquire() as conn:
        assert await _last(conn) == ("matched", 1, 33600000007)
        assert await conn.fetchval("SELECT parts FROM receipt_rollup WHERE broadcast_id = 1") == 1
    assert recorder.held == 1 and recorder.recorded == 1
    await recorder.stop()  # the last flush stores what names no part as 'unmatched'
    async with db.acquire() as conn:
        assert await store.unattributed(conn, T0) == {"unmatched": 1, "ambiguous": 0}
    assert recorder.held == 0 and recorder.recorded == 2


async def test_a_held_receipt_is_stored_unmatched_once_the_hold_has_passed(
    db: asyncpg.Pool,
) -> None:
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")], hold_s=0.2)
    recorder(Receipt(message_id="C9", stat="DELIVRD"), "smsc")
    await recorder.flush()
    assert recorder.held == 1
    await asyncio.sleep(0.3)
    await recorder.flush()
    assert recorder.held == 0
    async with db.acquire() as conn:
        assert await _last(conn) == ("unmatched", None, None)


async def test_a_flush_cancelled_after_its_commit_stores_nothing_twice(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`stop` cancels the periodic flush: cancelled once its batch was committed (here while it
    matches earlier receipts again, held up by a row lock), the batch used to be put back and
    stored a second time by the last flush (seen in a loaded run: 3,467 receipts for 2,059
    parts)."""
    monkeypatch.setattr(recorder_module, "EVIDENCE", 10)
    hex_ids = [format(0x20_0000_0000 + 7919 * n, "016X") for n in range(12)]
    async with db.acquire() as conn:
        await _deliveries(conn, *[(1, 33600000100 + n, mid, T0) for n, mid in enumerate(hex_ids)])
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc")])
    recorder(Receipt(message_id=str(int(hex_ids[0], 16)), stat="DELIVRD"), "smsc")
    await recorder.flush()  # recorded while the form is being found out
    for mid in hex_ids[1:]:
        recorder(Receipt(message_id=str(int(mid, 16)), stat="DELIVRD"), "smsc")
    async with db.acquire() as locker, locker.transaction():
        await locker.execute("SELECT * FROM receipts FOR UPDATE")  # holds up the taking back
        flushing = asyncio.create_task(recorder.flush())
        for _ in range(200):
            await asyncio.sleep(0.02)
            if recorder.ids.form("smsc") == "decimal":
                break
        await asyncio.sleep(0.1)
        flushing.cancel()  # its batch is committed; matching again waits for the lock
    with pytest.raises(asyncio.CancelledError):
        await flushing
    await recorder.stop()
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT match, msisdn FROM receipts ORDER BY msisdn")
    assert [r["msisdn"] for r in rows] == [33600000100 + n for n in range(12)]
    assert [r["match"] for r in rows] == ["matched"] * 12
    assert recorder.recorded == 12


@pytest.mark.parametrize(
    ("form", "delivered"), [("auto", True), ("decimal", True), ("same", False)]
)
async def test_receipts_in_decimal_from_the_mock_land_on_the_right_people(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, form: str, delivered: bool
) -> None:
    async with db.acquire() as conn:
        await seed_synthetic(conn, 3_000, seed=3)
    config = MockConfig(seed=4, receipts=True, receipt_tlv=False, receipt_decimal_ids=True)
    mock, smsc = await start_mock(config, window=32, receipt_ids=form)
    request = BroadcastRequest(areas=("dep:75", "dep:13"), template="outage", variables={})
    settings = Settings(database_url=db_dsn, chunk_size=500)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    runs = await Worker(db, [smsc]).run(until_idle=True)
    assert [r.state for r in runs] == ["completed"]
    assert mock.record.parts_received == plan.parts
    async with db.acquire() as conn:
        status = await store_broadcasts.progress(conn, broadcast_id)
        rows = await conn.fetch("SELECT match, msisdn, reported_msisdn FROM receipts")
    assert len(rows) == plan.parts  # every receipt the mock sent was recorded
    if delivered:
        assert status["receipts"]["DELIVRD"]["count"] == plan.parts
        # the right people: the handset each receipt is about is the part it was matched to
        assert all(r["match"] == "matched" for r in rows)
        assert all(str(r["msisdn"]) == r["reported_msisdn"] for r in rows)
    else:  # read as the same form, decimal ids name nothing: no delivery claimed by guess
        assert status["receipts"] == {}
        assert status["receipts_unattributed"] == {"unmatched": plan.parts, "ambiguous": 0}


@pytest.mark.parametrize(("form", "verdict"), [("auto", "pass"), ("same", "fail")])
async def test_a_drill_against_decimal_receipt_ids_reports_the_truth(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, form: str, verdict: str
) -> None:
    async with db.acquire() as conn:
        await seed_synthetic(conn, 20_000, seed=3)
    config = MockConfig(seed=5, receipts=True, receipt_tlv=False, receipt_decimal_ids=True)
    mock, smsc = await start_mock(config, window=32, receipt_ids=form)
    request = BroadcastRequest(
        areas=("dep:75", "dep:13", "dep:69"),
        template="drill",
        variables={},
        kind="drill",
        test_group_only=True,
    )
    settings = Settings(database_url=db_dsn, chunk_size=500)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    stats, pending = await send_drill(db, [smsc], broadcast_id, wait_s=2.0)
    assert stats.state == "completed" and plan.recipients > 0
    assert mock.receipts_sent == plan.parts  # the SMSC sent a receipt for every part
    async with db.acquire() as conn:
        report = await load_report(conn, broadcast_id)
    assert report.verdict == verdict
    if verdict == "pass":
        assert pending == 0 and report.total.delivered == plan.recipients
    else:  # receipts that name nobody are not deliveries: no false PASS
        assert pending == plan.parts and report.total.delivered == 0


async def test_a_receipt_matched_in_memory_is_stored_and_counted_as_the_database_matches_it(
    db: asyncpg.Pool, db_dsn: str
) -> None:
    """The process that sent a part matches its receipt in memory (`sent_parts`); one it does
    not remember is looked up by the database. Both land on the same part, with the same
    delay, and the roll-ups (per stat, per home département, per delay) equal a recount; a
    duplicate of a final receipt, forgotten in memory, goes to the database and is counted
    once."""
    async with db.acquire() as conn:
        await seed_synthetic(conn, 2_000, seed=8)
        people = [  # two of Paris, one of Marseille: the third's receipt is not in memory
            (
                await conn.fetch(
                    "SELECT msisdn, departement FROM subscribers WHERE departement = $1"
                    " ORDER BY msisdn OFFSET $2 LIMIT 1",
                    dep,
                    offset,
                )
            )[0]
            for dep, offset in (("75", 0), ("13", 0), ("75", 1))
        ]
        settings = Settings(database_url=db_dsn)
        request = BroadcastRequest(areas=("dep:75", "dep:13"), template="outage", variables={})
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
        submitted = datetime.now(UTC) - timedelta(seconds=3)
        ids = ["000000A1", "000000B2", "000000C3"]
        rows = [
            (broadcast_id, p["msisdn"], 1, 1, 0, mid, "smsc", submitted, submitted, 0)
            for p, mid in zip(people, ids, strict=True)
        ]
        await record_outcomes(conn, broadcast_id, rows, [])
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    for person, mid in zip(people[:2], ids[:2], strict=True):  # the third: by another process
        recorder.sent.add(
            mid.lstrip("0"),
            (
                "smsc",
                broadcast_id,
                person["msisdn"],
                1,
                submitted.timestamp(),
                person["departement"],
            ),
        )
    recorder(Receipt(message_id=ids[0], stat="ENROUTE"), "smsc")  # not final: remembered
    for mid in ids:
        recorder(Receipt(message_id=mid, stat="DELIVRD"), "smsc")
    assert recorder.held == 4 and len(recorder.sent) == 0  # final: both forgotten
    recorder(Receipt(message_id=ids[0], stat="DELIVRD"), "smsc")  # sent twice by the SMSC
    assert len(recorder._matched) == 3 and len(recorder._rows) == 2  # in memory / database
    await recorder.stop()
    async with db.acquire() as conn:
        stored = await conn.fetch(
            "SELECT msisdn, stat, match, broadcast_id, part,"
            " abs(delay_s - date_part('epoch', received_at - $1)) < 1e-5 AS delay_right"
            " FROM receipts ORDER BY msisdn, stat",
            submitted,
        )
        rolled, counted = await rollups.compare(conn, broadcast_id)
    by_person = [(r["msisdn"], r["stat"]) for r in stored]
    assert by_person == sorted(
        [(p["msisdn"], "DELIVRD") for p in people]
        + [(people[0]["msisdn"], "DELIVRD"), (people[0]["msisdn"], "ENROUTE")]
    )
    assert all(r["match"] == "matched" and r["broadcast_id"] == broadcast_id for r in stored)
    assert all(r["part"] == 1 and r["delay_right"] for r in stored)
    assert rolled == counted
    assert counted["receipts"] == {"DELIVRD": 3, "ENROUTE": 1}
    homes = [p["departement"] for p in people]
    assert sum(n for k, n in counted["receipt_areas"].items() if k.endswith("|DELIVRD")) == 3
    assert {k.split("|")[0] for k in counted["receipt_areas"]} == set(homes)


async def test_a_reused_id_matched_in_memory_goes_to_the_latest_submission_of_any_process(
    db: asyncpg.Pool,
) -> None:
    """Review of issue 22's in-memory matching: an SMSC that restarted reuses ids, and its
    receipts come back on any bind of any worker. This process sent 33600000001 as "A1" ten
    minutes ago (still remembered: no final receipt yet); after the restart another worker was
    given "A1" again for 33600000009. The database path gives the receipt to the latest
    submission (33600000009); memory must not give it to this process's older part."""
    now = datetime.now(UTC)
    mine, theirs = now - timedelta(minutes=10), now - timedelta(seconds=5)
    async with db.acquire() as conn:
        await _deliveries(conn, (1, 33600000001, "A1", mine), (2, 33600000009, "A1", theirs))
    smscs = [SmscConfig(name="smsc", receipt_ids="same")]
    by_database = ReceiptRecorder(db, smscs)  # remembers nothing: the database's answer
    by_database(Receipt(message_id="A1", stat="ENROUTE"), "smsc")
    await by_database.stop()
    async with db.acquire() as conn:
        assert await _last(conn) == ("matched", 2, 33600000009)
    recorder = ReceiptRecorder(db, smscs)
    recorder.sent.add("A1", ("smsc", 1, 33600000001, 1, mine.timestamp(), "75"))
    recorder(Receipt(message_id="A1", stat="DELIVRD"), "smsc")
    await recorder.stop()
    async with db.acquire() as conn:
        assert await _last(conn) == ("matched", 2, 33600000009)


async def _broadcast_to_one(conn: Conn, db_dsn: str, dep: str) -> tuple[int, int]:
    """A live broadcast to département `dep` of 2,000 synthetic subscribers, and the first of
    its residents (by number)."""
    await seed_synthetic(conn, 2_000, seed=8)
    msisdn = await conn.fetchval(
        "SELECT msisdn FROM subscribers WHERE departement = $1 ORDER BY msisdn LIMIT 1", dep
    )
    assert msisdn is not None
    settings = Settings(database_url=db_dsn)
    request = BroadcastRequest(areas=(f"dep:{dep}",), template="outage", variables={})
    plan = await make_plan(conn, settings, request)
    return await create_broadcast(conn, settings, request, plan), int(msisdn)


async def test_a_receipt_matched_in_memory_counts_the_home_the_part_was_sent_to(
    db: asyncpg.Pool, db_dsn: str
) -> None:
    """Review of issue 22's in-memory matching: a recipient's home changed (a subscriber import
    ran) between the chunk read and the receipt. Memory counts the receipt under the chunk's
    département, where the part was sent; the receipt row keeps it (migration 0021), so the
    recount reads the same and the roll-ups still equal it (they differed when the recount
    looked up today's home)."""
    async with db.acquire() as conn:
        broadcast_id, person = await _broadcast_to_one(conn, db_dsn, "75")
        submitted = datetime.now(UTC) - timedelta(seconds=3)
        row = (broadcast_id, person, 1, 1, 0, "D4", "smsc", submitted, submitted, 0)
        await record_outcomes(conn, broadcast_id, [row], [])
        # The import moves the recipient to Marseille after the chunk was read.
        await conn.execute(
            "UPDATE subscribers SET departement = '13', commune = '13055' WHERE msisdn = $1",
            person,
        )
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    recorder.sent.add("D4", ("smsc", broadcast_id, person, 1, submitted.timestamp(), "75"))
    recorder(Receipt(message_id="D4", stat="DELIVRD"), "smsc")
    await recorder.stop()
    async with db.acquire() as conn:
        rolled, counted = await rollups.compare(conn, broadcast_id)
    assert counted["receipt_areas"] == {"75|DELIVRD": 1}
    assert rolled == counted


async def test_a_receipt_matched_by_the_database_keeps_its_home_after_an_import(
    db: asyncpg.Pool, db_dsn: str
) -> None:
    """The database path counts a receipt under the home it looks up when matching; an import
    that moves the recipient afterwards changes neither that count nor the recount, which reads
    the département the receipt row kept (it looked up today's home, and the two differed)."""
    async with db.acquire() as conn:
        broadcast_id, person = await _broadcast_to_one(conn, db_dsn, "92")
        submitted = datetime.now(UTC) - timedelta(seconds=3)
        row = (broadcast_id, person, 1, 1, 0, "E5", "smsc", submitted, submitted, 0)
        await record_outcomes(conn, broadcast_id, [row], [])
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    recorder(Receipt(message_id="E5", stat="DELIVRD"), "smsc")  # nothing in memory: a lookup
    await recorder.stop()
    assert recorder.matched_in_memory == 0
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE subscribers SET departement = '13', commune = '13055' WHERE msisdn = $1",
            person,
        )
        rolled, counted = await rollups.compare(conn, broadcast_id)
        kept = await conn.fetchval(
            "SELECT departement FROM receipts WHERE broadcast_id = $1", broadcast_id
        )
    assert kept == "92"
    assert counted["receipt_areas"] == {"92|DELIVRD": 1}
    assert rolled == counted


async def test_a_receipt_recorded_without_its_departement_counts_under_todays_home(
    db: asyncpg.Pool, db_dsn: str
) -> None:
    """Receipts recorded before migration 0021, or by a worker still running the code before it
    while another has migrated, carry no département: the recounts (`rollup_recount`, and the
    one after receipts are taken back to be matched again) read today's home for them, as the
    roll-up counted them then, and never write a NULL area."""
    async with db.acquire() as conn:
        broadcast_id, person = await _broadcast_to_one(conn, db_dsn, "92")
        await conn.execute(  # as the code before 0021 stored and counted it
            "INSERT INTO receipts (smsc, message_id, stat, received_at, broadcast_id, msisdn,"
            " part, delay_s, match) VALUES ('smsc', 'B2', 'DELIVRD', now(), $1, $2, 1, 0.2,"
            " 'matched')",
            broadcast_id,
            person,
        )
        await conn.execute(queries["rollup_receipts_recount"], [broadcast_id])
        rolled, counted = await rollups.compare(conn, broadcast_id)
        batch = await conn.fetchval("SELECT batch FROM receipts WHERE message_id = 'B2'")
    assert counted["receipt_areas"] == {"92|DELIVRD": 1}
    assert rolled["receipt_areas"] == counted["receipt_areas"]
    assert batch is not None  # numbered in storage order by the default (migration 0023)


async def test_a_duplicate_receipt_weeks_later_is_counted_once_across_month_partitions(
    db: asyncpg.Pool, db_dsn: str
) -> None:
    """The duplicate check probes only the receipts received since the batch's broadcasts were
    created (the months before, and those from next week, are not searched for each receipt):
    a copy of a receipt stored in an earlier month, of a broadcast created then, is still
    found, and the part counted once."""
    weeks_ago = datetime.now(UTC) - timedelta(days=40)
    async with db.acquire() as conn:
        broadcast_id, person = await _broadcast_to_one(conn, db_dsn, "75")
        await conn.execute(
            "UPDATE broadcasts SET created_at = $2 WHERE id = $1", broadcast_id, weeks_ago
        )
        row = (broadcast_id, person, 1, 1, 0, "C3", "smsc", weeks_ago, weeks_ago, 0)
        await record_outcomes(conn, broadcast_id, [row], [])
        first = store.staged(
            "smsc", "C3", None, None, "DELIVRD", "000", None,
            weeks_ago + timedelta(minutes=1), keys(("C3", None), "same"),
        )  # fmt: skip
        await store.record(conn, [first], (), 0.0)
        month = await conn.fetchval(
            "SELECT tableoid::regclass::text FROM receipts WHERE broadcast_id = $1", broadcast_id
        )
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    recorder(Receipt(message_id="C3", stat="DELIVRD"), "smsc")  # the SMSC's copy, today
    await recorder.stop()
    async with db.acquire() as conn:
        rolled, counted = await rollups.compare(conn, broadcast_id)
        months = await conn.fetchval(
            "SELECT count(DISTINCT tableoid) FROM receipts WHERE broadcast_id = $1", broadcast_id
        )
    assert months == 2, f"both copies in {month}: the test would not cross partitions"
    assert counted["receipts"] == {"DELIVRD": 1}
    assert rolled == counted


async def test_two_flushes_at_once_in_one_process_count_a_duplicate_receipt_once(
    db: asyncpg.Pool,
) -> None:
    """A worker flushes its receipts every half second (`_loop`) and also whenever a drill or
    `send --wait` waits for them (`Engine.await_receipts`): two flushes of one recorder may run
    at once. A receipt sent twice by the SMSC, one copy in each batch, is one part delivered:
    the roll-ups must not count it twice (each statement's snapshot misses the other's)."""
    now = datetime.now(UTC) - timedelta(seconds=3)
    async with db.acquire() as conn:
        await _deliveries(conn, (7, 33600000001, "E5", now))
        await conn.execute("INSERT INTO receipt_rollup VALUES (7, 'DELIVRD', 0, 0)")
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    recorder.sent.add("E5", ("smsc", 7, 33600000001, 1, now.timestamp(), None))
    async with db.acquire() as blocker, blocker.transaction():
        # Holds the roll-up row both flushes' statements update, so that both take their
        # snapshots before either commits (as a slow flush under load does).
        await blocker.execute(
            "SELECT 1 FROM receipt_rollup WHERE broadcast_id = 7 AND stat = 'DELIVRD' FOR UPDATE"
        )
        recorder(Receipt(message_id="E5", stat="DELIVRD"), "smsc")  # matched in memory
        first = asyncio.create_task(recorder.flush())
        await asyncio.sleep(0.3)
        recorder(Receipt(message_id="E5", stat="DELIVRD"), "smsc")  # the SMSC's copy
        second = asyncio.create_task(recorder.flush())
        await asyncio.sleep(0.3)
    await asyncio.gather(first, second)
    async with db.acquire() as conn:
        rolled, counted = await rollups.compare(conn, 7)
    assert counted["receipts"] == {"DELIVRD": 1}
    for kind in ("receipts", "receipt_areas", "receipt_delays"):  # (no outcome roll-ups here)
        assert rolled[kind] == counted[kind]


async def test_a_receipt_matched_in_memory_before_its_part_is_recorded_survives_a_match_again(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review of issue 22's in-memory matching: memory stores a receipt as matched before its
    part's outcome is flushed (the database path holds it until the part is recorded). Another
    worker, still learning the SMSC's `auto` form, settles it and takes back every receipt of
    that SMSC since its first to match them again (`_match_again`): the database finds no part
    yet for the one matched in memory, which was then stored 'unmatched' for good; now it is
    held, as a fresh receipt is, until its part is recorded."""
    monkeypatch.setattr(recorder_module, "EVIDENCE", 1)
    now = datetime.now(UTC) - timedelta(seconds=2)
    async with db.acquire() as conn:
        await _deliveries(conn, (8, 33600000002, "A7", now))  # the learner's evidence
    learner = ReceiptRecorder(db, [SmscConfig(name="smsc")])  # auto
    learner(Receipt(message_id="A7", stat="DELIVRD"), "smsc")  # its first receipt of "smsc"
    sender = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    sender.sent.add("F6", ("smsc", 8, 33600000001, 1, now.timestamp(), None))
    sender(Receipt(message_id="F6", stat="DELIVRD"), "smsc")
    await sender.flush()  # before the sender's outcome flush: F6 not recorded yet
    await learner.flush()  # settles "same", takes back and matches again since its first
    assert learner.ids.form("smsc") == "same"
    async with db.acquire() as conn:
        await _deliveries(conn, (8, 33600000001, "F6", now))  # the sender's outcome flush
    await sender.stop()
    await learner.stop()  # (its next flush: what it took back and holds)
    async with db.acquire() as conn:
        stored = await conn.fetch(
            "SELECT message_id, match, msisdn FROM receipts ORDER BY message_id"
        )
    assert [(r["message_id"], r["match"], r["msisdn"]) for r in stored] == [
        ("A7", "matched", 33600000002),
        ("F6", "matched", 33600000001),
    ]


async def test_a_duplicate_receipt_of_a_reused_id_goes_to_the_later_part_not_the_older_one(
    db: asyncpg.Pool,
) -> None:
    """Review of issue 22's in-memory matching: this process sent 33600000001 as "A1", then
    (some parts later: a generation of `sent_parts` behind) the SMSC restarted and gave "A1"
    again, for 33600000009. The later part's final receipt takes it from memory; the SMSC
    sends that receipt twice, and the copy must go where the database's lookup sends it (the
    latest submission, 33600000009), not to the older part left in the previous generation."""
    now = datetime.now(UTC)
    # Both within sent_parts.MAX_AGE_S: memory answers for both.
    older, later = now - timedelta(seconds=20), now - timedelta(seconds=5)
    async with db.acquire() as conn:
        await _deliveries(conn, (1, 33600000001, "A1", older), (2, 33600000009, "A1", later))
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    recorder.sent = SentParts(capacity=4)  # two parts a generation
    recorder.sent.add("A1", ("smsc", 1, 33600000001, 1, older.timestamp(), None))
    recorder.sent.add("B2", ("smsc", 1, 33600000002, 1, older.timestamp(), None))
    recorder.sent.add("A1", ("smsc", 2, 33600000009, 1, later.timestamp(), None))
    recorder(Receipt(message_id="A1", stat="DELIVRD"), "smsc")
    recorder(Receipt(message_id="A1", stat="DELIVRD"), "smsc")  # sent twice by the SMSC
    await recorder.stop()
    async with db.acquire() as conn:
        stored = await conn.fetch("SELECT broadcast_id, msisdn FROM receipts ORDER BY ctid")
    assert [(r["broadcast_id"], r["msisdn"]) for r in stored] == [(2, 33600000009)] * 2


async def test_two_workers_flushing_a_duplicate_receipt_at_once_count_it_once(
    db: asyncpg.Pool, db_dsn: str
) -> None:
    """An SMSC sends a receipt again, and the copy comes back on another worker's bind (any
    bind of its system_id may carry it). Each worker's flush matches its copy in a statement
    that cannot see the other's: without one batch at a time across processes, both counted
    the part (delivered beyond what was accepted). The second waits for the first's commit,
    and finds its copy."""
    now = datetime.now(UTC) - timedelta(seconds=3)
    async with db.acquire() as conn:
        await _deliveries(conn, (7, 33600000001, "E5", now))
        await conn.execute("INSERT INTO receipt_rollup VALUES (7, 'DELIVRD', 0, 0)")
    other = await create_pool(db_dsn, min_size=1, max_size=2)  # the other worker's database
    try:
        sender = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
        sender.sent.add("E5", ("smsc", 7, 33600000001, 1, now.timestamp(), None))
        elsewhere = ReceiptRecorder(other, [SmscConfig(name="smsc", receipt_ids="same")])
        async with db.acquire() as blocker, blocker.transaction():
            # Holds the roll-up row both statements update: both would take their snapshots
            # before either commits, as two flushes under load do.
            await blocker.execute(
                "SELECT 1 FROM receipt_rollup WHERE broadcast_id = 7 AND stat = 'DELIVRD'"
                " FOR UPDATE"
            )
            sender(Receipt(message_id="E5", stat="DELIVRD"), "smsc")  # matched in memory
            first = asyncio.create_task(sender.flush())
            await asyncio.sleep(0.3)
            elsewhere(Receipt(message_id="E5", stat="DELIVRD"), "smsc")  # by the database
            second = asyncio.create_task(elsewhere.flush())
            await asyncio.sleep(0.3)
        await asyncio.gather(first, second)
    finally:
        await other.close()
    async with db.acquire() as conn:
        rolled, counted = await rollups.compare(conn, 7)
        copies = await conn.fetchval("SELECT count(*) FROM receipts WHERE match = 'matched'")
    assert copies == 2  # both copies are kept, as received
    assert counted["receipts"] == {"DELIVRD": 1}
    for kind in ("receipts", "receipt_areas", "receipt_delays"):  # (no outcome roll-ups here)
        assert rolled[kind] == counted[kind]


async def test_a_copy_received_first_but_stored_second_is_not_the_one_recounted(
    db: asyncpg.Pool, db_dsn: str
) -> None:
    """Review of issue 22: worker B receives a receipt first and holds it (the part is not
    recorded yet when B looks); worker A receives the SMSC's copy later, matches it in memory,
    stores and counts it. B's copy, stored next, is a duplicate. The recounts took the first
    copy received, B's: another delay bucket, and here another home (B looked it up after an
    import moved the recipient; A counted the chunk's). They take the copy counted, A's."""
    async with db.acquire() as conn:
        broadcast_id, person = await _broadcast_to_one(conn, db_dsn, "75")
        submitted = datetime.now(UTC) - timedelta(seconds=30)
        row = (broadcast_id, person, 1, 1, 0, "C9", "smsc", submitted, submitted, 0)
        await record_outcomes(conn, broadcast_id, [row], [])
        said = store.staged(
            "smsc", "C9", None, None, "DELIVRD", "000", None,
            submitted + timedelta(seconds=20), (),
        )[:-2]  # fmt: skip
        # A's copy, matched in memory, with the chunk's home
        later = (*said, broadcast_id, person, 1, submitted.timestamp(), "75")
        await store.record(conn, [], (), 0.0, [later])
        await conn.execute(
            "UPDATE subscribers SET departement = '13', commune = '13055' WHERE msisdn = $1",
            person,
        )
        earlier = store.staged(  # B's copy, received first, stored now by the database path
            "smsc", "C9", None, None, "DELIVRD", "000", None,
            submitted + timedelta(seconds=2), keys(("C9", None), "same"),
        )  # fmt: skip
        await store.record(conn, [earlier], (), 0.0)
        rolled, counted = await rollups.compare(conn, broadcast_id)
    assert counted["receipts"] == {"DELIVRD": 1}
    assert counted["receipt_areas"] == {"75|DELIVRD": 1}  # A's copy
    assert rolled == counted
    async with db.acquire() as conn:  # as after receipts were taken back and matched again
        await conn.execute(queries["rollup_receipts_forget"], [broadcast_id])
        await conn.execute(queries["rollup_receipts_recount"], [broadcast_id])
        again, _counted = await rollups.compare(conn, broadcast_id)
    assert again == counted


async def test_no_receipt_is_stored_before_the_outcome_of_its_part(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receipt matched in memory names a part whose outcome the run may not have recorded
    yet (outcomes are flushed every 50 ms; a fast SMSC answers within that). Stored first, a
    crash before the outcome flush left a part delivered but never accepted, and counted so
    if the broadcast was then cancelled. The engine records its runs' outcomes before it
    stores such receipts: a trigger logs every matched receipt stored while its part has no
    outcome row, here with outcomes held for the whole run and receipts flushed every 50 ms."""
    monkeypatch.setattr(runner_module, "FLUSH_INTERVAL", 30.0)  # outcomes held to the end
    async with db.acquire() as conn:
        await seed_synthetic(conn, 3_000, seed=3)
        await conn.execute(
            """
            CREATE TABLE receipts_ahead (message_id text, parts_recorded bool);
            CREATE FUNCTION log_receipts_ahead() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO receipts_ahead SELECT NEW.message_id, EXISTS (
                    SELECT 1 FROM deliveries d WHERE d.broadcast_id = NEW.broadcast_id
                       AND d.msisdn = NEW.msisdn AND d.part = NEW.part AND d.status = 0);
                RETURN NULL;
            END $$;
            CREATE TRIGGER receipts_ahead AFTER INSERT ON receipts FOR EACH ROW
                WHEN (NEW.match = 'matched') EXECUTE FUNCTION log_receipts_ahead();
            """
        )
    mock, smsc = await start_mock(
        MockConfig(seed=4, receipts=True), window=8, tps=200, receipt_ids="same"
    )
    settings = Settings(database_url=db_dsn, chunk_size=500)
    request = BroadcastRequest(areas=("dep:75",), template="outage", variables={})
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    async with Engine(db, [smsc], receipt_interval=0.05) as engine:
        runs = await engine.run_to_end(broadcast_id)
        during = engine.receipts.recorded  # stored while the run held its outcomes
        matched = engine.receipts.matched_in_memory
    assert [r.state for r in runs] == ["completed"]
    async with db.acquire() as conn:
        logged = await conn.fetch("SELECT parts_recorded FROM receipts_ahead")
    assert during > 0 and matched > 0, "no receipt matched and stored during the run"
    assert len(logged) == plan.parts == mock.receipts_sent
    assert all(r["parts_recorded"] for r in logged)


async def test_receipts_wait_while_the_outcomes_before_them_cannot_be_recorded(
    db: asyncpg.Pool,
) -> None:
    """The outcomes of one broadcast cannot be recorded (its run's database connection went
    away between the two): its receipts matched in memory wait for the next flush; another
    broadcast's are stored meanwhile."""
    now = datetime.now(UTC) - timedelta(seconds=3)
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")])
    recorder.sent.add("A2", ("smsc", 7, 33600000001, 1, now.timestamp(), None))
    recorder.sent.add("B3", ("smsc", 8, 33600000002, 1, now.timestamp(), None))
    asked: list[set[int]] = []

    async def outcomes_first(broadcasts: set[int]) -> set[int]:
        asked.append(broadcasts)
        return {7} if len(asked) == 1 else set()  # 7's outcomes fail once

    recorder.outcomes_first = outcomes_first
    recorder(Receipt(message_id="A2", stat="DELIVRD"), "smsc")
    recorder(Receipt(message_id="B3", stat="DELIVRD"), "smsc")
    await recorder.flush()
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT array_agg(broadcast_id) FROM receipts") == [8]
    assert recorder.held == 1
    await recorder.flush()  # 7's outcomes recorded now: its receipt follows
    async with db.acquire() as conn:
        stored = await conn.fetchval(
            "SELECT array_agg(broadcast_id ORDER BY broadcast_id) FROM receipts"
        )
    assert stored == [7, 8]
    assert asked == [{7, 8}, {7}]


async def test_the_periodic_flush_goes_on_after_any_error(db: asyncpg.Pool) -> None:
    """Whatever a flush raises (here from the hook that records outcomes first), the receipts
    are kept and the next flush, half a second later, stores them: the periodic flush does not
    end (it ended on anything but a database error, and the receipts stayed in memory)."""
    now = datetime.now(UTC) - timedelta(seconds=3)
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc", receipt_ids="same")], interval=0.05)
    recorder.sent.add("C4", ("smsc", 9, 33600000003, 1, now.timestamp(), None))
    failures = [RuntimeError("a bug")]

    async def outcomes_first(broadcasts: set[int]) -> set[int]:
        if failures:
            raise failures.pop()
        return set()

    recorder.outcomes_first = outcomes_first
    recorder.start()
    try:
        recorder(Receipt(message_id="C4", stat="DELIVRD"), "smsc")
        await _eventually(lambda: recorder.recorded, seconds=5.0)
        stored_by_the_loop = recorder.recorded
    finally:
        await recorder.stop()
    assert not failures  # the first flush did fail
    assert stored_by_the_loop == 1
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM receipts WHERE broadcast_id = 9") == 1
    assert recorder.recorded == 1


async def test_an_auto_smsc_is_flushed_often_until_its_form_is_settled_then_at_the_interval(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While an SMSC's id form is being found out, every receipt of it is matched by the
    database under every form, then matched again once the form is known: its first receipts
    are flushed every `LEARNING_INTERVAL`, not at the end of the (here ten-second) interval, so
    that few go that long way (at national speed, half a second held 50,000 of them). Once
    settled, the recorder flushes at its interval again."""
    monkeypatch.setattr(recorder_module, "EVIDENCE", 10)
    hex_ids = [format(0x30_0000_0000 + 7919 * n, "016X") for n in range(13)]
    async with db.acquire() as conn:
        await _deliveries(conn, *[(1, 33600000100 + n, mid, T0) for n, mid in enumerate(hex_ids)])
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc")], interval=10.0)
    recorder.start()
    try:
        for mid in hex_ids[:12]:
            recorder(Receipt(message_id=str(int(mid, 16)), stat="DELIVRD"), "smsc")
        await _eventually(lambda: recorder.ids.form("smsc") != "auto")
        settled_within_10s = recorder.ids.form("smsc")
        stored_while_learning = recorder.recorded
        recorder(Receipt(message_id=str(int(hex_ids[12], 16)), stat="DELIVRD"), "smsc")
        await asyncio.sleep(0.5)  # ten times the learning interval: the interval is back
        held_after_settling = recorder.held
    finally:
        await recorder.stop()
    assert settled_within_10s == "decimal"
    assert stored_while_learning == 12
    assert held_after_settling == 1
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT match, msisdn FROM receipts ORDER BY msisdn")
    assert [(r["match"], r["msisdn"]) for r in rows] == [
        ("matched", 33600000100 + n) for n in range(13)
    ]


async def test_a_receipt_held_while_its_smscs_form_is_settled_is_matched_under_that_form(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receipt held (its part not recorded yet) when the batch it came with settles the
    SMSC's form is tried again under that form, not under every form: kept under every form,
    its decimal id found another broadcast's part whose all-digit hex id reads alike, and
    was counted there for good (found by a hostile review)."""
    monkeypatch.setattr(recorder_module, "EVIDENCE", 10)
    hex_ids = [format(0x30_0000_0000 + 7919 * n, "016X") for n in range(10)]
    async with db.acquire() as conn:
        await _deliveries(conn, *[(1, 33600000100 + n, mid, T0) for n, mid in enumerate(hex_ids)])
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc")], interval=10.0)
    right = "0000003000ABCDEF"
    late = str(int(right, 16))  # its receipt writes the id in decimal
    for mid in hex_ids:
        recorder(Receipt(message_id=str(int(mid, 16)), stat="DELIVRD"), "smsc")
    recorder(Receipt(message_id=late, stat="DELIVRD"), "smsc")  # its part not recorded yet
    await recorder.flush()  # settles 'decimal'; the late one is held
    assert recorder.ids.form("smsc") == "decimal" and recorder.held == 1
    async with db.acquire() as conn:
        # Another broadcast's part whose (all-digit hex) id is that decimal text, then its own.
        await _deliveries(conn, (2, 33699999999, late, T0))
        await _deliveries(conn, (3, 33600000777, right, T0))
    await recorder.flush()
    async with db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT match, broadcast_id, msisdn FROM receipts WHERE message_id = $1", late
        )
        rolled = await conn.fetch(
            "SELECT broadcast_id, parts FROM receipt_rollup ORDER BY broadcast_id"
        )
    assert row is not None
    assert (row["match"], row["broadcast_id"], row["msisdn"]) == ("matched", 3, 33600000777)
    assert [(r["broadcast_id"], r["parts"]) for r in rolled] == [(1, 10), (3, 1)]


async def test_the_first_receipt_of_an_auto_smsc_wakes_the_periodic_flush(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The periodic flush, asleep for its interval (here ten seconds), is woken by an `auto`
    SMSC's first receipt and flushes at the learning pace: the first receipts do not wait
    for the interval's end. An `auto` SMSC that sends no receipt does not set the pace (it
    kept the recorder flushing every 50 ms for ever)."""
    monkeypatch.setattr(recorder_module, "EVIDENCE", 10)
    hex_ids = [format(0x40_0000_0000 + 7919 * n, "016X") for n in range(12)]
    async with db.acquire() as conn:
        await _deliveries(conn, *[(1, 33600000100 + n, mid, T0) for n, mid in enumerate(hex_ids)])
    smscs = [SmscConfig(name="smsc"), SmscConfig(name="quiet", registered_delivery=0)]
    recorder = ReceiptRecorder(db, smscs, interval=10.0)
    flushes: list[float] = []
    flush = recorder.flush

    async def counted(*, hold: bool = True) -> None:
        flushes.append(time.monotonic())
        await flush(hold=hold)

    monkeypatch.setattr(recorder, "flush", counted)
    recorder.start()
    try:
        await asyncio.sleep(0.5)  # asleep for its interval: the quiet SMSC sets no pace
        flushes_while_quiet = len(flushes)
        for mid in hex_ids:
            recorder(Receipt(message_id=str(int(mid, 16)), stat="DELIVRD"), "smsc")
        await _eventually(lambda: recorder.recorded)
        recorded_once_woken = recorder.recorded
    finally:
        await recorder.stop()
    assert flushes_while_quiet == 0
    assert recorded_once_woken == 12
    assert recorder.ids.form("smsc") == "decimal"


async def test_the_recorder_stops_when_stopped_as_an_smscs_first_receipt_comes(
    db: asyncpg.Pool,
) -> None:
    """`stop` right after an `auto` SMSC's first receipt woke the periodic flush: the loop's
    wait (asyncio.wait_for in 3.11) swallowed the cancellation and `stop` waited for ever,
    the last flush never run (found by a hostile review)."""
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc")], interval=10.0)
    recorder.start()
    await asyncio.sleep(0.2)  # the loop waits for its interval, or for the event
    recorder(Receipt(message_id="12345", stat="DELIVRD"), "smsc")  # sets the event
    stopping = asyncio.ensure_future(recorder.stop())
    done, _ = await asyncio.wait([stopping], timeout=10.0)
    if not done:  # (cleaning up: a second cancellation gets through)
        assert recorder._task is not None
        recorder._task.cancel()
        await asyncio.wait([stopping], timeout=3.0)
    assert done, "stop() never returned"
    assert recorder.held == 0 and recorder.recorded == 1  # the last flush stored it


async def test_a_receipt_held_across_the_settling_is_not_given_to_a_later_part_in_memory(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receipt buffered from before its SMSC's form was settled is matched in memory only
    to a part submitted before it was received (with the database's clock slack): here the
    SMSC gave its id again, after a restart, to a part this process sent later; the
    receipt answers another worker's part, recorded later, as the database says (found by a
    hostile review: it went to the later part, with a negative delay)."""
    monkeypatch.setattr(recorder_module, "EVIDENCE", 10)
    hex_ids = [format(0x70_0000_0000 + 7919 * n, "016X") for n in range(10)]
    async with db.acquire() as conn:
        await _deliveries(conn, *[(1, 33600000100 + n, mid, T0) for n, mid in enumerate(hex_ids)])
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc")], interval=10.0, hold_s=120.0)
    reused = "0000007000ABCDEF"
    recorder(Receipt(message_id=str(int(reused, 16)), stat="DELIVRD"), "smsc")
    row = recorder._rows[0]
    received_at = float(cast(float, row[7])) - 20  # received 20 s ago
    recorder._rows[0] = (*row[:7], received_at, *row[8:])
    for mid in hex_ids:
        recorder(Receipt(message_id=str(int(mid, 16)), stat="DELIVRD"), "smsc")
    later = ("smsc", 3, 33600000333, 1, time.time(), "75")  # this process's, submitted now
    recorder.sent.add(reused.lstrip("0"), later)
    await recorder.flush()  # settles 'decimal'; the receipt is held (its part unrecorded)
    assert recorder.ids.form("smsc") == "decimal" and recorder.held == 1
    async with db.acquire() as conn:  # another worker's part, submitted before the receipt
        await _deliveries(
            conn, (2, 33600000222, reused, datetime.fromtimestamp(received_at - 1, UTC))
        )
    await recorder.flush()
    async with db.acquire() as conn:
        stored = await conn.fetchrow(
            "SELECT match, broadcast_id, msisdn, delay_s FROM receipts WHERE message_id = $1",
            str(int(reused, 16)),
        )
        rolled = await conn.fetch(
            "SELECT broadcast_id, parts FROM receipt_rollup ORDER BY broadcast_id"
        )
    assert stored is not None
    assert (stored["broadcast_id"], stored["msisdn"]) == (2, 33600000222)
    assert stored["delay_s"] == pytest.approx(1.0, abs=0.01)
    assert [(r["broadcast_id"], r["parts"]) for r in rolled] == [(1, 10), (2, 1)]
    assert recorder.sent.take(reused.lstrip("0"), "smsc", True, time.time()) == later


async def test_receipts_buffered_while_the_form_is_settled_are_matched_in_memory(
    db: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Receipts still buffered when their SMSC's form is settled (held: their part's outcome
    not recorded yet; at national speed, those received while the settling batch is stored)
    are matched in memory where this process sent their part, as receipts received once it
    is settled are, not by the database (some 20,000 a run took that long way)."""
    monkeypatch.setattr(recorder_module, "EVIDENCE", 10)
    hex_ids = [format(0x50_0000_0000 + 7919 * n, "016X") for n in range(10)]
    async with db.acquire() as conn:
        await _deliveries(conn, *[(1, 33600000100 + n, mid, T0) for n, mid in enumerate(hex_ids)])
    recorder = ReceiptRecorder(db, [SmscConfig(name="smsc")], interval=10.0)
    now = datetime.now(UTC).timestamp()
    remembered = [format(0x60_0000_0000 + 7919 * n, "016X") for n in range(3)]
    for n, mid in enumerate(remembered):  # sent by this process, outcomes not recorded yet
        recorder.sent.add(mid.lstrip("0"), ("smsc", 5, 33600000500 + n, 1, now - 1, "75"))
    for mid in hex_ids + remembered:
        recorder(Receipt(message_id=str(int(mid, 16)), stat="DELIVRD"), "smsc")
    await recorder.flush()  # settles 'decimal': the three found no part, and were held
    assert recorder.ids.form("smsc") == "decimal"
    assert recorder.matched_in_memory == 3 and recorder.held == 3
    await recorder.flush()
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT match, msisdn, departement FROM receipts WHERE broadcast_id = 5 ORDER BY 2"
        )
    assert [tuple(r) for r in rows] == [("matched", 33600000500 + n, "75") for n in range(3)]
    assert recorder.held == 0 and recorder.recorded == 13
