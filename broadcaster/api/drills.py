"""Drill endpoints: schedules (create, list, show, enable, disable, remove, run now), recent drill
runs, and a drill's report.

Schedules are checked exactly as the CLI checks them (`drills.schedules.create_schedule`): a bad
cron expression or time zone, an unknown area, a template without the exercise marker are
refused with 422 and nothing is stored. Every change is audited, in its transaction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web

from broadcaster.api import audit
from broadcaster.api.context import Call, reply
from broadcaster.api.errors import conflict, not_found
from broadcaster.drills import schedules
from broadcaster.drills.config import DrillSettings
from broadcaster.drills.policy import grace_floor
from broadcaster.drills.report import Thresholds
from broadcaster.drills.runs import list_runs, load_report, start_drill
from broadcaster.drills.schedules import DrillSpec, DuplicateScheduleError, ScheduleRequest
from broadcaster.store import broadcasts as store
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

log = structlog.get_logger(__name__)

RUNS_SHOWN = 20


def _subject(schedule_id: int) -> str:
    return f"drill_schedule:{schedule_id}"


async def _load(conn: Conn, schedule_id: int) -> Any:
    row = await schedules.get_schedule(conn, schedule_id)
    if row is None:
        raise not_found(f"there is no drill schedule {schedule_id}: see GET /v1/drill-schedules")
    return row


async def list_schedules(call: Call) -> web.StreamResponse:
    async with call.services.db.acquire() as conn:
        return reply({"schedules": await schedules.list_schedules(conn)})


async def create_schedule(call: Call) -> web.StreamResponse:
    body = call.body
    caller = call.caller
    request = ScheduleRequest(
        name=body["name"],
        cron=body["cron"],
        timezone=body["timezone"],
        drill=DrillSpec(
            areas=tuple(body["areas"]),
            exclude=tuple(body.get("exclude", ())),
            template=body.get("template", "drill"),
            variables=dict(body.get("variables", {})),
            expires_in=timedelta(
                seconds=body.get("expires_in_seconds", schedules.DEFAULT_EXPIRES_IN.total_seconds())
            ),
        ),
        thresholds=Thresholds.from_json(body.get("thresholds")),
        webhook_url=body.get("webhook_url"),
        grace=timedelta(seconds=body.get("grace_seconds", schedules.DEFAULT_GRACE.total_seconds())),
        enabled=body.get("enabled", True),
        created_by=caller.name,
    )
    async with call.services.db.acquire() as conn:
        try:
            async with conn.transaction():
                row, warnings = await schedules.create_schedule(
                    conn,
                    call.services.settings,
                    request,
                    datetime.now(UTC),
                    min_grace=grace_floor(DrillSettings.from_env().poll_s),
                )
                await audit.record(
                    conn,
                    actor=caller.name,
                    action="drill_schedule_create",
                    subject=_subject(row["id"]),
                    request_id=call.request_id,
                    role=caller.role,
                    name=row["name"],
                    cron=row["cron"],
                    timezone=row["timezone"],
                    areas=list(row["areas"]),
                    template=row["template"],
                )
        except DuplicateScheduleError as exc:
            raise conflict(str(exc), code="duplicate_name") from None
    log.info("drill_schedule_created", schedule=row["name"], actor=caller.name)
    return reply(
        {"schedule": schedules.schedule_json(row), "warnings": warnings},
        status=201,
        headers={"Location": f"/v1/drill-schedules/{row['id']}"},
    )


async def get_schedule(call: Call) -> web.StreamResponse:
    schedule_id = call.path_id("drill_schedule_id")
    async with call.services.db.acquire() as conn:
        row = await _load(conn, schedule_id)
        runs = await list_runs(conn, RUNS_SHOWN, schedule_id)
    return reply({**schedules.schedule_json(row), "runs": runs})


async def enable_schedule(call: Call) -> web.StreamResponse:
    return await _set_enabled(call, True)


async def disable_schedule(call: Call) -> web.StreamResponse:
    return await _set_enabled(call, False)


async def _set_enabled(call: Call, enabled: bool) -> web.StreamResponse:
    schedule_id = call.path_id("drill_schedule_id")
    caller = call.caller
    async with call.services.db.acquire() as conn, conn.transaction():
        await _load(conn, schedule_id)
        row = await schedules.set_enabled(conn, schedule_id, enabled, datetime.now(UTC))
        if row is None:
            raise not_found(f"there is no drill schedule {schedule_id}")
        await audit.record(
            conn,
            actor=caller.name,
            action="drill_schedule_enable" if enabled else "drill_schedule_disable",
            subject=_subject(schedule_id),
            request_id=call.request_id,
            role=caller.role,
            reason=call.body.get("reason"),
        )
    return reply(schedules.schedule_json(row))


async def remove_schedule(call: Call) -> web.StreamResponse:
    schedule_id = call.path_id("drill_schedule_id")
    caller = call.caller
    async with call.services.db.acquire() as conn, conn.transaction():
        await _load(conn, schedule_id)
        row = await schedules.remove_schedule(conn, schedule_id)
        if row is None:
            raise not_found(f"there is no drill schedule {schedule_id}")
        await audit.record(
            conn,
            actor=caller.name,
            action="drill_schedule_remove",
            subject=_subject(schedule_id),
            request_id=call.request_id,
            role=caller.role,
            name=row["name"],
            cron=row["cron"],
        )
    return reply({"removed": True, "schedule": schedules.schedule_json(row)})


async def run_schedule(call: Call) -> web.StreamResponse:
    """A drill of this schedule now (its next scheduled one still happens)."""
    schedule_id = call.path_id("drill_schedule_id")
    caller = call.caller
    async with call.services.db.acquire() as conn:
        async with conn.transaction():
            row = await _load(conn, schedule_id)
            started = await start_drill(
                conn,
                call.services.settings,
                DrillSpec.of_schedule(row),
                now=datetime.now(UTC),
                actor=caller.name,
                thresholds=Thresholds.from_json(json.loads(row["thresholds"])),
                webhook_url=row["webhook_url"],
                schedule=row,
                request_id=call.request_id,
                smscs=_smsc_names(call),
            )
        assert started.broadcast_id is not None
        status = await store.progress(conn, started.broadcast_id)
    return reply(
        {"run_id": started.run_id, "drill_id": started.broadcast_id, "broadcast": status},
        status=201,
        headers={"Location": f"/v1/drills/{started.broadcast_id}/report"},
    )


def _smsc_names(call: Call) -> list[str]:
    """The SMSCs that will send a drill: this process's worker's, else the configured ones."""
    worker = call.services.worker
    return [s.name for s in (worker.smscs if worker is not None else call.services.settings.smscs)]


async def list_drills(call: Call) -> web.StreamResponse:
    limit = call.query.get("limit") or RUNS_SHOWN
    async with call.services.db.acquire() as conn:
        return reply({"runs": await list_runs(conn, limit)})


async def report(call: Call) -> web.StreamResponse:
    drill_id = call.path_id("drill_id")
    async with call.services.db.acquire() as conn:
        row = await conn.fetchrow(queries["drill_broadcast"], drill_id)
        if row is None or row["kind"] != "drill":
            raise not_found(f"there is no drill {drill_id}: see GET /v1/drills")
        built = await load_report(conn, drill_id)
    return reply(built.to_json())
