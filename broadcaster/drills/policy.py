"""What to do with a schedule whose fire time has come (pure): run, record as missed, or both.

The policy for fire times that passed while no scheduler was running (a `serve` restart, an
outage of the host):
- the most recent one is run if it is at most `grace` old (a drill 20 minutes late still proves
  the chain);
- every other one, and the most recent one when older than `grace`, is recorded as *missed*,
  with a log event, a metric and an alarm: never skipped silently;
- a backlog is never run: at most one drill per schedule comes out of a decision, and only the
  MAX_MISSED_RECORDED most recent missed fire times get a row (the log says how many there were);
- the grace period is never below `grace_floor(poll_s)`: a scheduler always acts a little after
  the fire time (up to one poll interval, plus the pass itself), and a grace of 0 would record
  every on-time drill as missed. Schedules are refused below it; older rows are raised to it here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from broadcaster.drills.cron import CronSpec

MAX_SCAN = 10_000
"""Fire times looked at past the due one; beyond, the count of missed ones is a lower bound."""
MAX_MISSED_RECORDED = 10
MIN_GRACE = timedelta(seconds=60)


def grace_floor(poll_s: float) -> timedelta:
    """The least grace period a scheduler polling every `poll_s` seconds can honour."""
    return max(MIN_GRACE, timedelta(seconds=2 * poll_s))


@dataclass(frozen=True)
class Decision:
    run_at: datetime | None
    """The fire time to run a drill for now (None: none)."""
    missed: tuple[datetime, ...]
    """Missed fire times to record, most recent last (at most MAX_MISSED_RECORDED)."""
    missed_total: int
    """How many fire times were missed in all (at least; see MAX_SCAN)."""
    next_run_at: datetime
    """The schedule's next fire time, strictly after now."""


def decide(
    spec: CronSpec,
    due: datetime,
    now: datetime,
    grace: timedelta,
    floor: timedelta = MIN_GRACE,
) -> Decision | None:
    """The decision for a schedule due at `due`, seen at `now`; None if it is not due yet.
    `grace` is raised to `floor` (see `grace_floor`)."""
    if due > now:
        return None
    grace = max(grace, floor)
    fires = [due]
    while len(fires) <= MAX_SCAN:
        following = spec.next_after(fires[-1])
        if following > now:
            break
        fires.append(following)
    latest = fires[-1]
    if now - latest <= grace:
        run_at: datetime | None = latest
        missed = fires[:-1]
    else:
        run_at = None
        missed = fires
    return Decision(
        run_at=run_at,
        missed=tuple(missed[-MAX_MISSED_RECORDED:]),
        missed_total=len(missed),
        next_run_at=spec.next_after(now),
    )
