"""Drill endpoints: schedules (create, list, show, enable, disable, remove, run now), recent drill
runs, and a drill's report — HTTP in, a command (`commands.drills`), JSON out."""

from __future__ import annotations

from datetime import timedelta

from aiohttp import web

from broadcaster.api.context import Call
from broadcaster.commands import broadcasts as broadcast_commands
from broadcaster.commands import drills
from broadcaster.drills.report import Thresholds
from broadcaster.drills.schedules import (
    DEFAULT_EXPIRES_IN,
    DEFAULT_GRACE,
    DrillOverrides,
    DrillSpec,
    ScheduleRequest,
)
from broadcaster.http.context import reply

RUNS_SHOWN = drills.RUNS_SHOWN


async def list_schedules(call: Call) -> web.StreamResponse:
    return reply({"schedules": await drills.list_schedules(call.ctx, call.caller)})


async def create_schedule(call: Call) -> web.StreamResponse:
    body = call.body
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
                seconds=body.get("expires_in_seconds", DEFAULT_EXPIRES_IN.total_seconds())
            ),
        ),
        thresholds=Thresholds.from_json(body.get("thresholds")),
        webhook_url=body.get("webhook_url"),
        grace=timedelta(seconds=body.get("grace_seconds", DEFAULT_GRACE.total_seconds())),
        enabled=body.get("enabled", True),
        created_by=call.caller.name,
    )
    schedule, warnings = await drills.create_schedule(call.ctx, call.caller, request)
    return reply(
        {"schedule": schedule, "warnings": warnings},
        status=201,
        headers={"Location": f"/v1/drill-schedules/{schedule['id']}"},
    )


async def get_schedule(call: Call) -> web.StreamResponse:
    schedule_id = call.path_id("drill_schedule_id")
    return reply(await drills.get_schedule(call.ctx, call.caller, schedule_id))


async def enable_schedule(call: Call) -> web.StreamResponse:
    schedule_id = call.path_id("drill_schedule_id")
    reason = call.body.get("reason")
    return reply(await drills.change_schedule(call.ctx, call.caller, schedule_id, "enable", reason))


async def disable_schedule(call: Call) -> web.StreamResponse:
    schedule_id = call.path_id("drill_schedule_id")
    reason = call.body.get("reason")
    return reply(
        await drills.change_schedule(call.ctx, call.caller, schedule_id, "disable", reason)
    )


async def remove_schedule(call: Call) -> web.StreamResponse:
    schedule_id = call.path_id("drill_schedule_id")
    removed = await drills.change_schedule(call.ctx, call.caller, schedule_id, "remove")
    return reply({"removed": True, "schedule": removed})


async def run_schedule(call: Call) -> web.StreamResponse:
    """A drill of this schedule now (its next scheduled one still happens)."""
    schedule_id = call.path_id("drill_schedule_id")
    started = await drills.start(call.ctx, call.caller, DrillOverrides(), schedule_id)
    assert started.broadcast_id is not None  # manual runs raise instead of recording refusals
    status = await broadcast_commands.status(call.ctx, call.caller, started.broadcast_id)
    return reply(
        {"run_id": started.run_id, "drill_id": started.broadcast_id, "broadcast": status},
        status=201,
        headers={"Location": f"/v1/drills/{started.broadcast_id}/report"},
    )


async def list_drills(call: Call) -> web.StreamResponse:
    limit = call.query.get("limit") or RUNS_SHOWN
    return reply({"runs": await drills.runs(call.ctx, call.caller, limit)})


async def report(call: Call) -> web.StreamResponse:
    drill_id = call.path_id("drill_id")
    built = await drills.report(call.ctx, call.caller, drill_id)
    return reply(built.to_json())
