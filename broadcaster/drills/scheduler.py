"""The drill scheduler: `broadcaster serve` runs it beside its worker.

Each pass (`tick`) reads the injected clock once, then
1. fires every enabled schedule whose next fire time has come, following `policy.decide`: the
   latest fire time is run if it is within the schedule's grace period, the others are recorded
   as missed (with an alarm), and next_run_at moves past now — never a backlog of drills. Each
   schedule is fired in its own savepoint: one that fails unexpectedly (a broken templates
   catalogue...) gets a `not_started` run with an alarm, and the others still fire;
2. reports every started drill that is ready (see `runs.report_finished`), alarming on failures.

A pass that fails (the database went away...) is logged with its traceback and the next pass
retries: the loop ends only on `stop()`. `serve` exits if it ever ends otherwise.

The drills it starts are ordinary approved drill broadcasts: the worker of this process (or any
other) sends them, on the drill priority, so a live alert preempts them. Schedules are locked
while fired (SKIP LOCKED), so any number of `serve` processes may run a scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import structlog

from broadcaster.domain.caller import SCHEDULER
from broadcaster.drills.alarm import Alarm
from broadcaster.drills.clock import Clock, SystemClock
from broadcaster.drills.config import DrillSettings
from broadcaster.drills.cron import CronSpec
from broadcaster.drills.policy import Decision, decide, grace_floor
from broadcaster.drills.report import Thresholds
from broadcaster.drills.runs import (
    Reported,
    record_missed,
    record_not_started,
    report_finished,
    sound,
    start_drill,
)
from broadcaster.drills.schedules import DrillSpec
from broadcaster.errors import InputError
from broadcaster.settings import Settings
from broadcaster.store import drills as store
from broadcaster.store.database import Conn

log = structlog.get_logger(__name__)


@dataclass
class Tick:
    """What one pass did."""

    started: list[int] = field(default_factory=list)
    """Broadcast ids of the drills started."""
    missed: list[int] = field(default_factory=list)
    """Run ids recorded as missed."""
    not_started: list[int] = field(default_factory=list)
    reported: list[Reported] = field(default_factory=list)


class DrillScheduler:
    def __init__(
        self,
        db: asyncpg.Pool[asyncpg.Record],
        settings: Settings,
        *,
        clock: Clock | None = None,
        config: DrillSettings | None = None,
        smscs: Sequence[str] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock: Clock = clock or SystemClock()
        self.config = config or DrillSettings.from_env()
        self.smscs = tuple(s.name for s in settings.smscs) if smscs is None else tuple(smscs)
        """The SMSCs that send the drills (recorded on each run: each must carry parts)."""
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Pass after pass until `stop()`; a failing pass is logged, the next one retries."""
        log.info("drill_scheduler_started", poll_s=self.config.poll_s)
        while not self._stop.is_set():
            delay = self.config.poll_s
            try:
                await self.tick()
                delay = await self._until_next_due()
            except Exception as exc:  # whatever it is, drills must not stop silently: retry
                log.error(
                    "drill_scheduler_pass_failed",
                    action="drill_scheduler_pass_failed",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=delay,
                    exc_info=exc,
                )
            sleeper = asyncio.ensure_future(self.clock.sleep(delay))
            stopper = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, stopper):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        log.info("drill_scheduler_stopped")

    async def tick(self) -> Tick:
        """One pass at the clock's current time."""
        now = self.clock.now()
        result = Tick()
        alarms: list[tuple[Alarm, str | None]] = []
        async with self.db.acquire() as conn, conn.transaction():
            for schedule in await store.due_schedules(conn, now):
                alarms += await self._fire_one(conn, schedule, now, result)
        await sound(alarms, self.db, self.config)
        result.reported = await report_finished(self.db, now, self.config)
        return result

    async def _fire_one(
        self, conn: Conn, schedule: asyncpg.Record, now: datetime, result: Tick
    ) -> list[tuple[Alarm, str | None]]:
        """Fire one schedule in a savepoint; an unexpected error becomes a not_started run."""
        fired = Tick()
        try:
            async with conn.transaction():  # a savepoint: a failure undoes this schedule only
                alarms = await self._fire(conn, schedule, now, fired)
        except Exception as exc:
            return await self._not_started(conn, schedule, now, exc, result)
        result.started += fired.started
        result.missed += fired.missed
        result.not_started += fired.not_started
        return alarms

    async def _not_started(
        self, conn: Conn, schedule: asyncpg.Record, now: datetime, exc: Exception, result: Tick
    ) -> list[tuple[Alarm, str | None]]:
        """Record the due fire time as not started (with its alarm) and move the schedule past
        now; if even that fails, the schedule stays due and the next pass tries again."""
        name = schedule["name"]
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "drill_schedule_failed",
            action="drill_schedule_failed",
            schedule=name,
            error=error,
            exc_info=exc,
        )
        try:
            async with conn.transaction():
                decision = self._decide(schedule, now)
                due_at: datetime = schedule["next_run_at"]
                if decision is not None:
                    due_at = decision.run_at or (decision.missed or (due_at,))[-1]
                reason = f"unexpected error, see the scheduler's log: {error}"
                run_id = await record_not_started(conn, schedule, due_at, now, reason)
                if decision is not None:
                    await store.set_schedule_next(conn, schedule["id"], decision.next_run_at)
        except Exception as again:
            log.error(
                "drill_schedule_failed",
                action="drill_schedule_not_recorded",
                schedule=name,
                error=f"{type(again).__name__}: {again}",
                exc_info=again,
            )
            return []
        if run_id is None:  # that fire time has a run already: alarmed then
            return []
        result.not_started.append(run_id)
        message = (
            f"schedule {name}: the drill due {due_at.isoformat()} could not start: {error} "
            "(see the scheduler's log)"
        )
        webhook = schedule["webhook_url"] or self.config.webhook_url
        return [(Alarm("not_started", run_id, name, message), webhook)]

    def _decide(self, schedule: asyncpg.Record, now: datetime) -> Decision | None:
        return decide(
            CronSpec(schedule["cron"], schedule["timezone"]),
            schedule["next_run_at"],
            now,
            timedelta(seconds=schedule["grace_s"]),
            grace_floor(self.config.poll_s),
        )

    async def _fire(
        self, conn: Conn, schedule: asyncpg.Record, now: datetime, result: Tick
    ) -> list[tuple[Alarm, str | None]]:
        name = schedule["name"]
        webhook = schedule["webhook_url"] or self.config.webhook_url
        try:
            decision = self._decide(schedule, now)
        except InputError as exc:  # e.g. a time zone that left the tz database: stop it, loudly
            await store.set_schedule_enabled(conn, schedule["id"], False, now)
            run = await record_missed(conn, schedule, now, now, f"schedule disabled: {exc}")
            return [
                (Alarm("not_started", run or 0, name, f"schedule {name} disabled: {exc}"), webhook)
            ]
        if decision is None:
            return []
        alarms: list[tuple[Alarm, str | None]] = []
        if decision.missed:
            if decision.run_at is None:
                grace = max(timedelta(seconds=schedule["grace_s"]), grace_floor(self.config.poll_s))
                why = f"the grace period ({grace}) had passed"
            else:
                why = f"only the latest, due {decision.run_at.isoformat()}, is run: never a backlog"
            for due_at in decision.missed:
                reason = f"no scheduler was running at {due_at.isoformat()}; {why}"
                run_id = await record_missed(conn, schedule, due_at, now, reason)
                if run_id is not None:
                    result.missed.append(run_id)
            first, last = decision.missed[0], decision.missed[-1]
            log.warning(
                "drill_missed",
                schedule=name,
                missed=decision.missed_total,
                first=first.isoformat(),
                last=last.isoformat(),
                running_late=decision.run_at.isoformat() if decision.run_at else None,
            )
            message = (
                f"schedule {name}: {decision.missed_total} drill(s) missed "
                f"({first.isoformat()} to {last.isoformat()}); {why}"
            )
            last_run = result.missed[-1] if result.missed else 0
            alarms.append((Alarm("missed", last_run, name, message), webhook))
        if decision.run_at is not None:
            started = await start_drill(
                conn,
                self.settings,
                DrillSpec.of_schedule(schedule),
                now=now,
                caller=SCHEDULER,
                thresholds=Thresholds.from_json(json.loads(schedule["thresholds"])),
                webhook_url=schedule["webhook_url"],
                schedule=schedule,
                due_at=decision.run_at,
                record_refusal=True,
                smscs=self.smscs,
            )
            if started.broadcast_id is not None:
                result.started.append(started.broadcast_id)
            elif started.run_id is not None:
                result.not_started.append(started.run_id)
                await store.set_run_alarm(conn, started.run_id, "not_started", now, None)
                alarms.append(
                    (
                        Alarm(
                            "not_started",
                            started.run_id or 0,
                            name,
                            f"schedule {name}: the drill due {decision.run_at.isoformat()} "
                            f"could not start: {started.reason}",
                        ),
                        webhook,
                    )
                )
        await store.set_schedule_next(conn, schedule["id"], decision.next_run_at)
        return alarms

    async def _until_next_due(self) -> float:
        """Seconds until the next fire time, capped by the poll interval."""
        async with self.db.acquire() as conn:
            due = await store.next_due(conn)
        if due is None:
            return self.config.poll_s
        seconds = (due - self.clock.now()).total_seconds()
        return min(self.config.poll_s, max(0.05, seconds))
