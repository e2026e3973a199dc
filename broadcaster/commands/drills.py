"""Drill use cases for the CLI, the API and the console: schedules (create, list, show, enable,
disable, remove), a drill run now, the runs, a drill's report.

Schedules are checked exactly once (`drills.schedules.create_schedule`): a bad cron expression
or time zone, an unknown area, a template without the exercise marker are refused and nothing
is stored. Every change is audited, in its transaction. The scheduler fires schedules through
`drills.runs.start_drill` too, as the `scheduler` actor.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Literal

import structlog

from broadcaster.commands.access import authorize
from broadcaster.commands.context import Context
from broadcaster.domain.caller import Caller
from broadcaster.drills import schedules
from broadcaster.drills.alarm import resolve_checked
from broadcaster.drills.config import DrillSettings, WebhookRefusedError, mask_url
from broadcaster.drills.policy import grace_floor
from broadcaster.drills.report import DrillReport
from broadcaster.drills.runs import Started, list_runs, load_report, start_drill
from broadcaster.drills.schedules import DrillOverrides, ScheduleRequest
from broadcaster.store import audit
from broadcaster.store import drills as store_drills
from broadcaster.store.database import Conn

log = structlog.get_logger(__name__)

RUNS_SHOWN = 20
Change = Literal["enable", "disable", "remove"]
OPERATION_OF: dict[Change, str] = {
    "enable": "enableDrillSchedule",
    "disable": "disableDrillSchedule",
    "remove": "deleteDrillSchedule",
}


def _subject(schedule_id: int) -> str:
    return f"drill_schedule:{schedule_id}"


def shown(schedule: dict[str, Any], caller: Caller) -> dict[str, Any]:
    """A schedule as this caller may see it: its webhook URL (a secret) masked for admins,
    absent for everyone else."""
    out = dict(schedule)
    url = out.pop("webhook_url", None)
    if caller.can("webhooks"):
        out["webhook_url"] = mask_url(url)
    return out


async def check_webhook(conn: Conn, caller: Caller, url: str, subject: str | None) -> str:
    """A webhook someone sets: admins only (403, audited), to a destination the policy allows,
    its host resolved and every address checked (422 `webhook_refused`, audited with the URL
    masked; the sending checks again); the checked URL."""
    await authorize(conn, caller, "setDrillWebhook", subject)
    policy = DrillSettings.from_env().webhook_policy
    try:
        checked = policy.check_url(url)
        await resolve_checked(checked, policy)
        return checked
    except WebhookRefusedError as exc:
        await audit.record(
            conn, caller, "drill_webhook_refused", subject, url=mask_url(url), reason=str(exc)
        )
        raise


async def create_schedule(
    ctx: Context, caller: Caller, request: ScheduleRequest
) -> tuple[dict[str, Any], list[str]]:
    """Check and store a schedule; (it as people and scripts see it, warnings)."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "createDrillSchedule")
        if request.webhook_url:
            checked = await check_webhook(conn, caller, request.webhook_url, None)
            request = replace(request, webhook_url=checked)
        async with conn.transaction():
            row, warnings = await schedules.create_schedule(
                conn,
                ctx.settings,
                request,
                datetime.now(UTC),
                min_grace=grace_floor(DrillSettings.from_env().poll_s),
            )
            await audit.record(
                conn,
                caller,
                "drill_schedule_create",
                _subject(row["id"]),
                name=row["name"],
                cron=row["cron"],
                timezone=row["timezone"],
                areas=list(row["areas"]),
                template=row["template"],
                webhook=mask_url(row["webhook_url"]),
            )
    log.info("drill_schedule_created", schedule=row["name"], actor=caller.name)
    return shown(schedules.schedule_json(row), caller), warnings


async def list_schedules(ctx: Context, caller: Caller) -> list[dict[str, Any]]:
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "listDrillSchedules")
        return [shown(s, caller) for s in await schedules.list_schedules(conn)]


async def get_schedule(ctx: Context, caller: Caller, ref: int | str) -> dict[str, Any]:
    """A schedule (by id or name) with its latest runs."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getDrillSchedule")
        row = await schedules.find_schedule(conn, ref)
        runs = await list_runs(conn, RUNS_SHOWN, row["id"])
    return {**shown(schedules.schedule_json(row), caller), "runs": runs}


async def change_schedule(
    ctx: Context, caller: Caller, ref: int | str, change: Change, reason: str | None = None
) -> dict[str, Any]:
    """Enable, disable or remove a schedule (by id or name); the schedule as it is now."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, OPERATION_OF[change])
        async with conn.transaction():
            row = await schedules.find_schedule(conn, ref)
            if change == "remove":
                changed = await schedules.remove_schedule(conn, row["id"])
            else:
                changed = await schedules.set_enabled(
                    conn, row["id"], change == "enable", datetime.now(UTC)
                )
            assert changed is not None  # the row is locked by nobody else: it was just read
            await audit.record(
                conn,
                caller,
                f"drill_schedule_{change}",
                _subject(row["id"]),
                name=row["name"],
                cron=row["cron"],
                reason=reason,
            )
    return shown(schedules.schedule_json(changed), caller)


async def start(
    ctx: Context,
    caller: Caller,
    overrides: DrillOverrides,
    schedule_ref: int | str | None = None,
) -> Started:
    """A drill now: a schedule's (its next scheduled one still happens) with `overrides`, or
    one described entirely by `overrides`. The drill broadcast is approved at once: any worker
    sends it, on the drill priority."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "runDrillSchedule")
        if overrides.webhook_url:
            checked = await check_webhook(conn, caller, overrides.webhook_url, None)
            overrides = replace(overrides, webhook_url=checked)
        async with conn.transaction():
            schedule = None
            if schedule_ref is not None:
                schedule = await schedules.find_schedule(conn, schedule_ref)
            spec, thresholds, webhook = overrides.resolve(schedule)
            return await start_drill(
                conn,
                ctx.settings,
                spec,
                now=datetime.now(UTC),
                caller=caller,
                thresholds=thresholds,
                webhook_url=webhook,
                schedule=schedule,
                smscs=ctx.smscs,
            )


async def runs(
    ctx: Context, caller: Caller, limit: int = RUNS_SHOWN, schedule_ref: int | str | None = None
) -> list[dict[str, Any]]:
    """Drill runs, newest first (of one schedule, by id or name, if given)."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "listDrills")
        schedule_id = None
        if schedule_ref is not None:
            schedule_id = (await schedules.find_schedule(conn, schedule_ref))["id"]
        return await list_runs(conn, limit, schedule_id)


async def report(ctx: Context, caller: Caller, drill_id: int) -> DrillReport:
    """A drill's report, from its rows as they are now: pending (not failed) while its delivery
    window is open and only deliveries fall short, unless its run was judged already (`drill
    run --wait`, the scheduler: that verdict stands)."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getDrillReport", audit.subject_of("broadcast", drill_id))
        report = await load_report(conn, drill_id)
        run = await store_drills.run_of_broadcast(conn, drill_id)
        now = await conn.fetchval("SELECT now()")
    if run is not None and run["verdict"] is not None:
        return report
    return report.judged_at(now)
