"""The after-action report (issue 22) of a broadcast cancelled mid-send, against the mock SMSC's
record: who was not reached is listed (CSV, role-restricted and audited), the report's counts
match, and times are shown in the area's zone."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.afteraction.html import render_html
from broadcaster.afteraction.text import render_text
from broadcaster.commands import reports
from broadcaster.commands.context import Context
from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine.worker import Worker
from broadcaster.errors import ForbiddenError
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig
from broadcaster.planning import Plan
from broadcaster.settings import Settings
from broadcaster.store import broadcasts as store
from broadcaster.store.database import create_pool

ADMIN = Caller(name="cell", role="admin", interface="cli")
OPERATOR = Caller(name="op", role="operator", interface="cli")


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=2, max_size=8)
    async with pool.acquire() as conn:
        await seed_synthetic(conn, 20_000, seed=5)
    yield pool
    await pool.close()


async def _csv(ctx: Context, caller: Caller, broadcast_id: int) -> list[dict[str, str]]:
    text = "".join([line async for line in reports.not_reached_csv(ctx, caller, broadcast_id)])
    return list(csv.DictReader(io.StringIO(text)))


UNDELIVERED_PEOPLE = """
SELECT DISTINCT r.msisdn FROM receipts r
WHERE r.broadcast_id = $1 AND r.match = 'matched' AND r.stat <> 'DELIVRD'
  AND r.stat IN ('UNDELIV', 'EXPIRED', 'REJECTD', 'DELETED', 'UNKNOWN', 'ACCEPTD')
  AND NOT EXISTS (SELECT 1 FROM receipts ok WHERE ok.broadcast_id = $1 AND ok.msisdn = r.msisdn
                  AND ok.part = r.part AND ok.match = 'matched' AND ok.stat = 'DELIVRD')
  AND (SELECT count(DISTINCT d.part) FROM deliveries d
       WHERE d.broadcast_id = $1 AND d.msisdn = r.msisdn AND d.status = 0)
    = (SELECT max(d.parts) FROM deliveries d WHERE d.broadcast_id = $1 AND d.msisdn = r.msisdn)
"""
"""A recount (row by row, as a reader would check it) of the recipients reached whose receipt
says a part was not delivered."""


async def _outage_to_974_and_13(
    db: asyncpg.Pool, db_dsn: str, chunk_size: int
) -> tuple[Context, Plan, int]:
    """An outage broadcast to La Réunion and the Bouches-du-Rhône, created (no second
    person needed here): the context, its plan and its id."""
    settings = Settings(database_url=db_dsn, chunk_size=chunk_size)
    request = BroadcastRequest(areas=["dep:974", "dep:13"], template="outage", variables={})
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    return Context(db=db, settings=settings), plan, broadcast_id


async def test_the_report_of_a_cancelled_broadcast_lists_who_was_not_reached(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, tmp_path: Path
) -> None:
    mock, smsc = await start_mock(
        MockConfig(seed=3, tps=800, errors={0x0B: 0.03}, receipts=True), tps=600
    )
    ctx, plan, broadcast_id = await _outage_to_974_and_13(db, db_dsn, chunk_size=200)
    run = asyncio.create_task(Worker(db, [smsc]).run(until_idle=True))
    while mock.submits < plan.parts // 3:
        await asyncio.sleep(0.01)
    async with db.acquire() as conn:
        assert await store.apply(conn, broadcast_id, "cancel")
    await asyncio.wait_for(run, 60)

    report = await reports.after_action(ctx, ADMIN, broadcast_id)
    missed = await _csv(ctx, ADMIN, broadcast_id)
    async with db.acquire() as conn:
        targeted = {
            r["msisdn"]
            for r in await conn.fetch(
                "SELECT msisdn FROM subscribers WHERE departement = ANY($1)", ["974", "13"]
            )
        }
        reached = {
            r["msisdn"]
            for r in await conn.fetch(
                "SELECT msisdn FROM deliveries WHERE broadcast_id = $1 AND status = 0"
                " GROUP BY msisdn HAVING count(DISTINCT part) = max(parts)",
                broadcast_id,
            )
        }
        exports = await conn.fetch(
            "SELECT actor, details FROM audit_log WHERE action = 'export_not_reached'"
        )
        undelivered = {r["msisdn"] for r in await conn.fetch(UNDELIVERED_PEOPLE, broadcast_id)}
    assert report["state"] == "cancelled"
    listed = {int(r["msisdn"].lstrip("+")) for r in missed}
    # Who was not reached, and who a receipt says did not get it: nobody else.
    assert listed == (targeted - reached) | undelivered
    # (how many depends on how soon the worker saw the cancel: on a loaded machine a second's
    # worth more were sent; "not sent" below shows the cancel left some unsent)
    totals = report["totals"]
    assert len(listed) == totals["not_reached"] + totals["undelivered"]
    # Cancelled: those never sent are said apart, as the list says them ("not sent").
    assert totals["not_sent"] == sum(1 for r in missed if r["why"] == "not sent") > 0
    assert totals["left_before_sent"] == 0
    assert f"({totals['not_sent']:,} never sent: stopped before their turn)" in render_text(report)
    # A mark never reached says so: not "-", read as not yet.
    marks = {e["event"]: e for e in report["timeline"]}
    assert marks["99% of parts accepted"]["at_local"] == "never (the broadcast is over)"
    assert totals["not_reached"] > 0 and totals["undelivered"] == len(undelivered)
    whys = {r["why"] for r in missed}
    assert "not sent" in whys and "ESME_RINVDSTADR" in whys
    assert {a["code"]: a["name"] for a in report["areas"]} == {
        "13": "Bouches-du-Rhône",
        "974": "La Réunion",
    }
    assert len(exports) == 1 and exports[0]["actor"] == "cell"
    assert json.loads(exports[0]["details"])["recipients"] == len(listed)

    # An operator may read the report, not export phone numbers: refused, audited, no file.
    with pytest.raises(ForbiddenError):
        await _csv(ctx, OPERATOR, broadcast_id)
    async with db.acquire() as conn:
        denied = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'denied' AND actor = 'op'"
        )
    assert denied == 1

    # Times for people in the zone of most of the recipients (13's metropolitan time, not
    # 974's: more people live in 13), UTC in JSON; the text and HTML render the same report.
    async with db.acquire() as conn:
        rows = await conn.fetch(
            "SELECT departement, count(*) AS n FROM subscribers WHERE departement = ANY($1) "
            "GROUP BY 1",
            ["974", "13"],
        )
    homes = {str(r["departement"]): int(r["n"]) for r in rows}
    assert homes["13"] > homes["974"]
    assert report["time_zone"] == "Europe/Paris"
    created, approval = report["timeline"][:2]
    # Created approved (no second person needed here): said so, not "approved -".
    assert approval["event"] == "approved when created (no second person required)"
    assert approval["at"] == created["at"] and approval["by"] == created["by"]
    assert created["at"].endswith("+00:00") and "(Europe/Paris)" in created["at_local"]
    assert "not reached" in render_text(report)
    page = render_html(report)
    assert "<svg" in page and "La Réunion" in page


async def test_the_reports_areas_and_languages_stay_as_sent_after_an_import(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    """The per-area and per-language tables count each recipient in the group their parts were
    sent in (migration 0024), not by today's home: an import that moves recipients to another
    département and language, and drops numbers from the index, changes neither (it moved
    them between rows, and the numbers dropped vanished from the counts)."""
    mix = {"DELIVRD": 0.8, "UNDELIV": 0.12, "EXPIRED": 0.08}
    mock, smsc = await start_mock(
        MockConfig(seed=4, errors={0x0B: 0.05}, receipts=True, receipt_mix=mix)
    )
    ctx, plan, broadcast_id = await _outage_to_974_and_13(db, db_dsn, chunk_size=500)
    async with db.acquire() as conn:
        early = await conn.execute(  # numbers that joined 974 after planning, before sending
            "INSERT INTO subscribers (msisdn, departement, commune, lang) SELECT msisdn + 1,"
            " departement, commune, lang FROM subscribers s WHERE departement = '974' AND NOT"
            " EXISTS (SELECT 1 FROM subscribers t WHERE t.msisdn = s.msisdn + 1) LIMIT 40"
        )
    await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 120)
    before = await reports.after_action(ctx, ADMIN, broadcast_id)
    # Not reached: those sent to without success (the numbers that joined were sent to, and
    # do not hide failures by outnumbering the planned recipients).
    assert early == "INSERT 0 40"
    totals = before["totals"]
    assert totals["recorded"] == plan.recipients + 40
    assert totals["not_reached"] == totals["recorded"] - totals["reached"] > 0
    # Parts accepted, then reported not delivered by their receipts: counted apart from the
    # SMSC's refusals, by stat, per area, language and SMSC, as the receipts say.
    async with db.acquire() as conn:
        undelivered = {
            r["stat"]: int(r["n"])
            for r in await conn.fetch(
                "SELECT stat, count(*) AS n FROM (SELECT DISTINCT ON (msisdn, part) stat"
                " FROM receipts WHERE broadcast_id = $1 AND match = 'matched'"
                " AND stat <> 'DELIVRD' ORDER BY msisdn, part, received_at) f GROUP BY stat",
                broadcast_id,
            )
        }
    assert set(undelivered) == {"UNDELIV", "EXPIRED"}
    assert totals["undelivered_by_stat"] == undelivered
    assert totals["parts_undelivered"] == sum(undelivered.values())
    for table in ("per_area", "per_language", "per_smsc"):
        rows = before[table]
        assert sum(r["parts_undelivered"] for r in rows) == totals["parts_undelivered"], table
    assert totals["parts_delivered"] + totals["parts_undelivered"] <= totals["parts_accepted"]
    assert f"not delivered {totals['parts_undelivered']:,} (receipts: " in render_text(before)
    assert "not delivered, by receipt" in render_html(before)
    missed_before = await _csv(ctx, ADMIN, broadcast_id)
    async with db.acquire() as conn:
        joined = await conn.execute(  # new numbers in 974's ranges, after the send
            "INSERT INTO subscribers (msisdn, departement, commune, lang) SELECT msisdn + 1,"
            " departement, commune, lang FROM subscribers s WHERE departement = '974' AND NOT"
            " EXISTS (SELECT 1 FROM subscribers t WHERE t.msisdn = s.msisdn + 1) LIMIT 30"
        )
        moved = await conn.execute(
            "UPDATE subscribers SET departement = '974', lang = 'en' WHERE msisdn IN ("
            " SELECT msisdn FROM subscribers WHERE departement = '13' ORDER BY msisdn LIMIT 200)"
        )
        dropped = await conn.execute(
            "DELETE FROM subscribers WHERE msisdn IN ("
            " SELECT msisdn FROM subscribers WHERE departement = '974' ORDER BY msisdn DESC"
            " LIMIT 150)"
        )
    after = await reports.after_action(ctx, ADMIN, broadcast_id)
    assert (joined, moved, dropped) == ("INSERT 0 30", "UPDATE 200", "DELETE 150")
    assert before["state"] == "completed"
    # Who was not reached is who the broadcast sent to without success, as sent: nobody who
    # joined since, nobody dropped from the list, each under the département sent to.
    missed_after = await _csv(ctx, ADMIN, broadcast_id)
    # Those reached that a receipt says did not get it are on the list too, saying so.
    async with db.acquire() as conn:
        people = {r["msisdn"] for r in await conn.fetch(UNDELIVERED_PEOPLE, broadcast_id)}
    by_receipt = {
        int(r["msisdn"].lstrip("+")): r["why"]
        for r in missed_before
        if r["why"].startswith("receipt")
    }
    assert set(by_receipt) == people and people
    assert set(by_receipt.values()) <= {
        "receipt UNDELIV: not delivered",
        "receipt EXPIRED: not delivered",
    }
    assert before["totals"]["undelivered"] == len(people)
    assert len(missed_before) == before["totals"]["not_reached"] + len(people)
    assert before["totals"]["not_reached"] > 0
    # The parts accepted add up: delivered, not delivered, awaiting a receipt.
    for row in (*before["per_area"], *before["per_smsc"], before["totals"]):
        assert row["parts_accepted"] == (
            row["parts_delivered"] + row["parts_undelivered"] + row["parts_awaiting_receipt"]
        ), row
    assert [(r["msisdn"], r["departement"]) for r in missed_after] == [
        (r["msisdn"], r["departement"]) for r in missed_before
    ]
    assert after["per_area"] == before["per_area"]
    assert after["per_language"] == before["per_language"]
    assert {a["key"] for a in after["per_area"]} == {"13", "974"}
    accepted = sum(a["parts_accepted"] for a in after["per_area"])
    assert accepted == mock.record.parts_received > 0  # (each counted once even when resent)
    assert sum(a["parts_failed"] for a in after["per_area"]) > 0
    # Everyone sent to: those planned and the 40 that joined before the send.
    assert sum(a["reached"] + a["not_reached"] for a in after["per_area"]) == plan.recipients + 40

    # Outcomes recorded without their group (before migration 0024, or by an older worker):
    # today's home, and '?' for a number no longer in the index; nothing lost from the totals.
    async with db.acquire() as conn:
        await conn.execute(
            "UPDATE deliveries SET group_no = NULL WHERE broadcast_id = $1 AND msisdn IN ("
            " SELECT msisdn FROM deliveries WHERE broadcast_id = $1 AND status = 0"
            " ORDER BY msisdn LIMIT 20)",
            broadcast_id,
        )
        await conn.execute(
            "UPDATE deliveries SET group_no = NULL WHERE broadcast_id = $1 AND msisdn IN ("
            " SELECT d.msisdn FROM deliveries d LEFT JOIN subscribers s USING (msisdn)"
            " WHERE d.broadcast_id = $1 AND s.msisdn IS NULL ORDER BY 1 LIMIT 5)",
            broadcast_id,
        )
    old = await reports.after_action(ctx, ADMIN, broadcast_id)
    keys = {a["key"]: a for a in old["per_area"]}
    assert set(keys) == {"13", "974", "?"} and keys["?"]["parts_accepted"] > 0
    for total in ("parts_accepted", "parts_failed", "parts_delivered", "reached"):
        assert old["totals"][total] == after["totals"][total], total

    # A part reported undelivered, then delivered after all: delivered, no longer undelivered.
    async with db.acquire() as conn:  # a part's later DELIVRD: delivered after all
        await conn.execute(
            "INSERT INTO receipts (smsc, message_id, stat, received_at, broadcast_id, msisdn,"
            " part, match) SELECT smsc, message_id, 'DELIVRD', received_at + interval '1 s',"
            " broadcast_id, msisdn, part, 'matched' FROM receipts WHERE broadcast_id = $1"
            " AND stat = 'UNDELIV' LIMIT 1",
            broadcast_id,
        )
    later = (await reports.after_action(ctx, ADMIN, broadcast_id))["totals"]
    assert later["undelivered_by_stat"] == {**undelivered, "UNDELIV": undelivered["UNDELIV"] - 1}


async def test_people_gone_before_their_turn_are_counted_apart_from_those_not_reached(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    """Planned, then gone from the index before their chunk was read (an import moved or
    dropped them): not sent to, so the list of those not reached cannot name them. The report
    counted them as not reached (5 with an empty list, exit 0); it counts them apart."""
    _mock, smsc = await start_mock(MockConfig(seed=6, receipts=True))
    ctx, plan, broadcast_id = await _outage_to_974_and_13(db, db_dsn, chunk_size=500)
    async with db.acquire() as conn:
        gone = await conn.execute(
            "DELETE FROM subscribers WHERE msisdn IN (SELECT msisdn FROM subscribers"
            " WHERE departement = '974' ORDER BY msisdn LIMIT 5)"
        )
    await asyncio.wait_for(Worker(db, [smsc]).run(until_idle=True), 120)
    report = await reports.after_action(ctx, ADMIN, broadcast_id)
    missed = await _csv(ctx, ADMIN, broadcast_id)
    totals = report["totals"]
    assert gone == "DELETE 5" and report["state"] == "completed"
    assert totals["recorded"] == plan.recipients - 5
    assert totals["left_before_sent"] == 5
    assert totals["not_reached"] == totals["recorded"] - totals["reached"]
    assert len(missed) == totals["not_reached"] + totals["undelivered"]
    (area_974,) = [a for a in report["per_area"] if a["key"] == "974"]
    assert area_974["left_before_sent"] == 5
    assert "5 planned were no longer as planned when their turn came" in render_text(report)
