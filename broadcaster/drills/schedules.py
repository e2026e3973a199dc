"""Drill schedules in the database: checked before they are stored, shown for people and scripts.

A schedule is refused (InputError, nothing stored) when its cron expression or time zone is
wrong, or when the drill it describes could not be planned today: unknown area, a template that
is not a drill template (no exercise marker), a missing variable. The CLI and the API both come
through `create_schedule`, so they cannot disagree on what is accepted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from broadcaster.commands.planning import make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.drills.config import check_webhook_url
from broadcaster.drills.cron import CronSpec, zone
from broadcaster.drills.policy import MIN_GRACE
from broadcaster.drills.report import Thresholds
from broadcaster.errors import ConflictError, InputError, NotFoundError
from broadcaster.settings import Settings
from broadcaster.store import drills as store
from broadcaster.store.database import Conn

NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
DEFAULT_GRACE = timedelta(hours=1)
DEFAULT_EXPIRES_IN = timedelta(hours=1)
MAX_GRACE = timedelta(days=1)
UPCOMING_SHOWN = 3


class DuplicateScheduleError(ConflictError):
    """A drill schedule with that name exists: pick another name or remove the old one."""

    code = "duplicate_name"


@dataclass(frozen=True)
class DrillSpec:
    """What a drill sends: areas, template, variables, expiry (a schedule's or a manual run's)."""

    areas: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    template: str = "drill"
    variables: Mapping[str, str] = field(default_factory=dict)
    expires_in: timedelta = DEFAULT_EXPIRES_IN

    def request(self, created_by: str) -> BroadcastRequest:
        """The broadcast request: a drill, to the test group only."""
        return BroadcastRequest(
            areas=self.areas,
            exclude=self.exclude,
            template=self.template,
            variables=dict(self.variables),
            kind="drill",
            test_group_only=True,
            expires_in=self.expires_in,
            created_by=created_by,
        )

    @classmethod
    def of_schedule(cls, row: asyncpg.Record | Mapping[str, Any]) -> DrillSpec:
        return cls(
            areas=tuple(row["areas"]),
            exclude=tuple(row["exclude"]),
            template=row["template"],
            variables=json.loads(row["variables"]),
            expires_in=timedelta(seconds=row["expires_in_s"]),
        )


@dataclass(frozen=True)
class DrillOverrides:
    """A drill run by hand: what the person asked for, over the settings of a schedule when one
    is named (flags given win; variables are merged)."""

    areas: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    template: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    expires_in: timedelta | None = None
    thresholds: Mapping[str, float] = field(default_factory=dict)
    """Threshold fields (as in `Thresholds.to_json`) that replace the schedule's."""
    webhook_url: str | None = None

    def resolve(
        self, schedule: asyncpg.Record | Mapping[str, Any] | None
    ) -> tuple[DrillSpec, Thresholds, str | None]:
        """(what to send, the thresholds to judge it by, where to post a failing report)."""
        base = DrillSpec.of_schedule(schedule) if schedule is not None else None
        thresholds = Thresholds.from_json(
            {**(json.loads(schedule["thresholds"]) if schedule else {}), **self.thresholds}
        )
        webhook = self.webhook_url or (schedule["webhook_url"] if schedule else None)
        return self._spec(base), thresholds, check_webhook_url(webhook) if webhook else None

    def _spec(self, base: DrillSpec | None) -> DrillSpec:
        if base is not None:
            return DrillSpec(
                areas=self.areas or base.areas,
                exclude=self.exclude or base.exclude,
                template=self.template or base.template,
                variables={**base.variables, **self.variables},
                expires_in=self.expires_in or base.expires_in,
            )
        if not self.areas:
            raise InputError("name the drill's areas: --area dep:75 (repeatable), or a schedule")
        return DrillSpec(
            areas=self.areas,
            exclude=self.exclude,
            template=self.template or "drill",
            variables=dict(self.variables),
            expires_in=self.expires_in or DEFAULT_EXPIRES_IN,
        )


@dataclass(frozen=True)
class ScheduleRequest:
    name: str
    cron: str
    timezone: str
    drill: DrillSpec
    thresholds: Thresholds = field(default_factory=Thresholds)
    webhook_url: str | None = None
    grace: timedelta = DEFAULT_GRACE
    enabled: bool = True
    created_by: str = "cli"


async def check_drill(conn: Conn, settings: Settings, drill: DrillSpec) -> list[str]:
    """Plan the drill now (nothing stored); its warnings. InputError if it cannot be planned."""
    if drill.expires_in < timedelta(minutes=1):
        raise InputError("a drill's expiry must be at least one minute")
    plan = await make_plan(conn, settings, drill.request("check"))  # refuses an empty target
    return list(plan.warnings)


async def create_schedule(
    conn: Conn,
    settings: Settings,
    request: ScheduleRequest,
    now: datetime,
    *,
    min_grace: timedelta = MIN_GRACE,
) -> tuple[asyncpg.Record, list[str]]:
    """Check and store a schedule; (its row, warnings). InputError: nothing was stored.
    `min_grace`: the least grace period accepted (`policy.grace_floor` of the poll interval)."""
    if not NAME.match(request.name):
        raise InputError(
            f"schedule name {request.name!r} is invalid: 1-64 lower-case letters, digits, - "
            "and _, starting with a letter (e.g. monthly-paris)"
        )
    spec = CronSpec.parse(request.cron, request.timezone, now)
    webhook = check_webhook_url(request.webhook_url) if request.webhook_url else None
    if not min_grace <= request.grace <= MAX_GRACE:
        raise InputError(
            f"the grace period must be between {_seconds(min_grace)} and 1 day, not "
            f"{_seconds(request.grace)}: the scheduler acts up to a poll interval after each fire "
            f"time, so a shorter grace would record on-time drills as missed (the floor is "
            f"{_seconds(MIN_GRACE)} or twice BROADCASTER_DRILL_POLL_S, whichever is longer)"
        )
    warnings = await check_drill(conn, settings, request.drill)
    drill = request.drill
    row = await store.insert_schedule(
        conn,
        request.name,
        spec.expression,
        spec.timezone,
        list(drill.areas),
        list(drill.exclude),
        drill.template,
        json.dumps(dict(drill.variables)),
        json.dumps(request.thresholds.to_json()),
        webhook,
        int(request.grace.total_seconds()),
        int(drill.expires_in.total_seconds()),
        request.enabled,
        spec.next_after(now),
        request.created_by,
    )
    if row is None:
        existing = await store.schedule_by_name(conn, request.name)
        raise DuplicateScheduleError(
            f"a drill schedule named {request.name!r} exists already"
            + (f" (id {existing['id']})" if existing else "")
            + ": pick another name, or remove it first"
        )
    return row, warnings


def _seconds(value: timedelta) -> str:
    return f"{value.total_seconds():g} s"


async def get_schedule(conn: Conn, ref: int | str) -> asyncpg.Record | None:
    """A schedule by id (digits) or by name."""
    if isinstance(ref, int) or ref.isdigit():
        value = int(ref)
        if not 1 <= value < 2**63:
            return None
        return await store.schedule_by_id(conn, value)
    return await store.schedule_by_name(conn, ref)


async def find_schedule(conn: Conn, ref: int | str) -> asyncpg.Record:
    """Like get_schedule, a NotFoundError naming the way to list them when there is none."""
    row = await get_schedule(conn, ref)
    if row is None:
        raise NotFoundError(
            f"there is no drill schedule {ref!r}: see `broadcaster drill schedule list` or "
            "GET /v1/drill-schedules"
        )
    return row


async def set_enabled(
    conn: Conn, schedule_id: int, enabled: bool, now: datetime
) -> asyncpg.Record | None:
    """Enable (next fire time counted from now: a disabled period is not missed) or disable."""
    row = await store.schedule_by_id(conn, schedule_id)
    if row is None:
        return None
    next_run = CronSpec(row["cron"], row["timezone"]).next_after(now)
    return await store.set_schedule_enabled(conn, schedule_id, enabled, next_run)


async def remove_schedule(conn: Conn, schedule_id: int) -> asyncpg.Record | None:
    """Delete it; its past runs stay (with the schedule's name)."""
    return await store.delete_schedule(conn, schedule_id)


def schedule_json(row: asyncpg.Record | Mapping[str, Any]) -> dict[str, Any]:
    """A schedule for people and scripts, with its next fire times in its own zone."""
    spec = CronSpec(row["cron"], row["timezone"])
    upcoming: list[str] = []
    if row["enabled"]:
        after = row["next_run_at"] - timedelta(microseconds=1)
        tz = zone(row["timezone"])
        upcoming = [t.astimezone(tz).isoformat() for t in spec.upcoming(after, UPCOMING_SHOWN)]
    return {
        "id": row["id"],
        "name": row["name"],
        "cron": row["cron"],
        "timezone": row["timezone"],
        "description": spec.explain(),
        "areas": list(row["areas"]),
        "exclude": list(row["exclude"]),
        "template": row["template"],
        "variables": json.loads(row["variables"]),
        "thresholds": Thresholds.from_json(json.loads(row["thresholds"])).to_json(),
        "webhook_url": row["webhook_url"],
        "grace_seconds": row["grace_s"],
        "expires_in_seconds": row["expires_in_s"],
        "enabled": row["enabled"],
        "next_run_at": row["next_run_at"].isoformat() if row["enabled"] else None,
        "upcoming": upcoming,
        "created_by": row["created_by"],
        "created_at": row["created_at"].isoformat(),
    }


async def list_schedules(conn: Conn) -> list[dict[str, Any]]:
    return [schedule_json(r) for r in await store.schedules(conn)]
