"""Drill runs in the database: starting one, recording a missed one, and reporting on it.

A run is one row of `drill_runs`. Starting it creates an approved drill broadcast (test group
only, drill priority) that any worker sends. Reporting waits until the broadcast has finished
and either every accepted part has its receipt or the delivery window has passed (counted on
the scheduler's clock from when the finish was first seen); then the report is stored once, and
a failing one raises the alarm once (rows are locked with SKIP LOCKED: several schedulers, or a
scheduler and the CLI, never report or alarm the same run twice).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
import structlog

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.caller import Caller
from broadcaster.domain.states import FINAL
from broadcaster.drills.alarm import Alarm, announce, post_webhook
from broadcaster.drills.config import DrillSettings
from broadcaster.drills.report import DrillInfo, DrillReport, PartRow, Thresholds, build_report
from broadcaster.drills.schedules import DrillSpec
from broadcaster.errors import InputError, NotFoundError
from broadcaster.settings import Settings
from broadcaster.smpp.receipts import FINAL_STATS
from broadcaster.store import audit
from broadcaster.store import drills as store
from broadcaster.store.database import Conn

log = structlog.get_logger(__name__)

FINAL_RECEIPT_STATS = sorted(FINAL_STATS)
"""The receipt stats that end a part's story: the parameter of `drill_receipts_pending` and
`drill_report_rows` (an ENROUTE receipt is neither an outcome nor the end of the wait)."""


@dataclass(frozen=True)
class Started:
    run_id: int | None
    """None when that schedule's fire time had a run already."""
    broadcast_id: int | None
    """None when the drill could not be started (see `reason`)."""
    reason: str | None = None
    recipients: int = 0
    thresholds: Thresholds | None = None
    """What the drill is judged by (None when it did not start)."""


async def start_drill(
    conn: Conn,
    settings: Settings,
    drill: DrillSpec,
    *,
    now: datetime,
    caller: Caller,
    thresholds: Thresholds,
    webhook_url: str | None = None,
    schedule: asyncpg.Record | None = None,
    due_at: datetime | None = None,
    record_refusal: bool = False,
    smscs: Sequence[str] | None = None,
) -> Started:
    """Plan and store a drill broadcast and its run row. A drill that cannot be planned raises
    InputError (nothing stored), unless `record_refusal`: then a `not_started` run is recorded
    (a scheduled drill must never fail silently). `smscs`: the names of the SMSCs configured to
    send it, recorded on the run so that its report fails if one of them carried nothing."""
    trigger = "schedule" if due_at is not None else "manual"
    request = drill.request(caller.name)
    try:
        async with conn.transaction():  # a savepoint: a failed plan leaves nothing behind
            plan = await make_plan(conn, settings, request)
            if plan.recipients == 0:
                raise InputError(
                    "no test-group subscriber in the drill's areas "
                    f"({', '.join(drill.areas)}): nothing to send, nothing proven"
                )
            broadcast_id = await create_broadcast(conn, settings, request, plan)
            run_id = await store.insert_run(
                conn, schedule, trigger, due_at, now, "started", None, broadcast_id,
                thresholds.to_json(), webhook_url, smscs,
            )  # fmt: skip
            await audit.record(
                conn,
                caller,
                "drill_start",
                audit.subject_of("broadcast", broadcast_id),
                run_id=run_id,
                schedule=schedule["name"] if schedule else None,
                due_at=due_at,
                recipients=plan.recipients,
            )
    except InputError as exc:
        if not record_refusal:
            raise
        refused = await store.insert_run(
            conn, schedule, trigger, due_at, now, "not_started", str(exc), None,
            thresholds.to_json(), webhook_url,
        )  # fmt: skip
        log.error("drill_not_started", run_id=refused, reason=str(exc))
        return Started(refused, None, str(exc))
    log.info(
        "drill_started",
        broadcast_id=broadcast_id,
        run_id=run_id,
        trigger=trigger,
        schedule=schedule["name"] if schedule else None,
        due_at=due_at.isoformat() if due_at else None,
        late_s=round((now - due_at).total_seconds(), 1) if due_at else None,
        recipients=plan.recipients,
    )
    return Started(run_id, broadcast_id, None, plan.recipients, thresholds)


async def record_missed(
    conn: Conn, schedule: asyncpg.Record, due_at: datetime, now: datetime, reason: str
) -> int | None:
    """A `missed` run (with its alarm) for a fire time that will not be run; None if known."""
    return await _record_unrun(conn, schedule, due_at, now, reason, "missed")


async def record_not_started(
    conn: Conn, schedule: asyncpg.Record, due_at: datetime, now: datetime, reason: str
) -> int | None:
    """A `not_started` run (with its alarm) for a fire time whose drill failed unexpectedly (a
    broken templates catalogue...); None if that fire time has a run already."""
    return await _record_unrun(conn, schedule, due_at, now, reason, "not_started")


async def _record_unrun(
    conn: Conn,
    schedule: asyncpg.Record,
    due_at: datetime,
    now: datetime,
    reason: str,
    outcome: Literal["missed", "not_started"],
) -> int | None:
    thresholds = Thresholds.from_json(json.loads(schedule["thresholds"]))
    run_id = await store.insert_run(
        conn, schedule, "schedule", due_at, now, outcome, reason, None,
        thresholds.to_json(), schedule["webhook_url"],
    )  # fmt: skip
    if run_id is None:
        return None
    await store.set_run_alarm(conn, run_id, outcome, now, None)
    return run_id


# -- reports ---------------------------------------------------------------------------------


async def load_report(
    conn: Conn, broadcast_id: int, thresholds: Thresholds | None = None
) -> DrillReport:
    """The report of drill broadcast `broadcast_id`, from its rows as they are now."""
    row = await store.drill_broadcast(conn, broadcast_id)
    if row is None:
        raise NotFoundError(f"there is no drill {broadcast_id}: see `broadcaster drill runs`")
    if row["kind"] != "drill":
        raise NotFoundError(
            f"broadcast {broadcast_id} is a {row['kind']} broadcast, not a drill: "
            f"see `broadcaster report {broadcast_id}`"
        )
    run = await store.run_of_broadcast(conn, broadcast_id)
    if thresholds is None:
        thresholds = Thresholds.from_json(json.loads(run["thresholds"]) if run else None)
    refusal = await store.engine_refusal(conn, broadcast_id)
    target = json.loads(row["target"])
    info = DrillInfo(
        drill_id=broadcast_id,
        state=row["state"],
        template=row["template"],
        planned_parts=row["parts"],
        recipients=row["recipients"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        schedule=run["schedule_name"] if run else None,
        areas=tuple(target.get("areas", ())),
        refusal=refusal,
        smscs=tuple(run["smscs"] or ()) if run else (),
    )
    rows = await store.report_rows(conn, broadcast_id, FINAL_RECEIPT_STATS)
    return build_report(info, [_part(r) for r in rows], thresholds)


def _part(r: asyncpg.Record) -> PartRow:
    return PartRow(
        msisdn=r["msisdn"],
        part=r["part"],
        departement=r["departement"],
        smsc=r["smsc"],
        status=r["status"],
        submitted_at=r["submitted_at"],
        answered_at=r["answered_at"],
        receipt_stat=r["stat"],
        receipt_at=r["received_at"],
    )


@dataclass(frozen=True)
class Reported:
    run_id: int
    report: DrillReport
    alarm: Alarm | None
    webhook_url: str | None


async def report_finished(
    db: asyncpg.Pool[asyncpg.Record],
    now: datetime,
    config: DrillSettings,
    *,
    run_id: int | None = None,
    force: bool = False,
) -> list[Reported]:
    """Report every started run that is ready (or just `run_id`; `force`: without waiting for
    the delivery window); raise the alarm of each failing one. Returns what was reported."""
    done: list[Reported] = []
    async with db.acquire() as conn, conn.transaction():
        for run in await store.unreported_runs(conn, run_id):
            if run["broadcast_state"] not in FINAL:
                continue
            thresholds = Thresholds.from_json(json.loads(run["thresholds"]))
            settle_from = run["settle_from"]
            if settle_from is None:
                settle_from = now
                await store.set_run_settle(conn, run["id"], now)
            window = timedelta(seconds=thresholds.delivery_within_s)
            if not force and now < settle_from + window:
                pending = await store.receipts_pending(
                    conn, run["broadcast_id"], FINAL_RECEIPT_STATS
                )
                if pending:
                    continue  # receipts may still come: wait, at most the delivery window
            report = await load_report(conn, run["broadcast_id"], thresholds)
            await store.set_run_report(conn, run["id"], report.verdict, report.to_json(), now)
            alarm = None
            webhook = run["webhook_url"] or config.webhook_url
            if not report.passed:
                alarm = Alarm(
                    reason="thresholds",
                    run_id=run["id"],
                    schedule=run["schedule_name"],
                    drill_id=run["broadcast_id"],
                    message="; ".join(c.message for c in report.failures),
                    details=report.to_json(),
                )
                await store.set_run_alarm(
                    conn, run["id"], "thresholds", now, "pending" if webhook else None
                )
            log.info(
                "drill_reported",
                run_id=run["id"],
                broadcast_id=run["broadcast_id"],
                verdict=report.verdict,
                delivered_ratio=round(report.total.delivered_ratio, 4),
            )
            done.append(Reported(run["id"], report, alarm, webhook))
    await sound([(r.alarm, r.webhook_url) for r in done if r.alarm], db, config)
    return done


async def sound(
    alarms: Sequence[tuple[Alarm, str | None]],
    db: asyncpg.Pool[asyncpg.Record],
    config: DrillSettings,
) -> None:
    """Log each alarm, then POST it to its webhook (after the rows are committed)."""
    for alarm, url in alarms:
        announce(alarm)
        if url is None:
            continue
        status = await post_webhook(
            url,
            alarm,
            policy=config.webhook_policy,
            timeout_s=config.webhook_timeout_s,
            retry_delays=config.webhook_retry_delays,
        )
        async with db.acquire() as conn:
            await store.set_run_webhook(conn, alarm.run_id, status)


async def list_runs(
    conn: Conn, limit: int = 20, schedule_id: int | None = None
) -> list[dict[str, Any]]:
    rows = await store.runs(conn, limit, schedule_id)
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
        for r in rows
    ]
