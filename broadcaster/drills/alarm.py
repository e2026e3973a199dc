"""Drill alarms: a failed, missed or unstartable drill is said loudly, in three places.

1. a structlog event `drill_alarm` (level error) with a stable `reason`;
2. the run's row (`drill_runs.alarm`), which `/metrics` exposes as `broadcaster_drill_alarms`
   and `broadcaster_drill_failing` (see api/metrics.py);
3. an optional webhook: the JSON body POSTed to the schedule's URL (or the global one), retried
   twice; its result is recorded, a webhook that does not answer never stops the scheduler.
   Only a 2xx answer counts as sent. Redirects are not followed (a 302 would be replayed as a
   bodyless GET, and the alarm lost while reported sent): a 3xx is a failure naming its Location,
   so that the URL can be corrected.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import structlog

from broadcaster import __version__

log = structlog.get_logger(__name__)

Reason = Literal["thresholds", "missed", "not_started"]
EVENTS: dict[Reason, str] = {
    "thresholds": "drill_failed",
    "missed": "drill_missed",
    "not_started": "drill_not_started",
}


@dataclass(frozen=True)
class Alarm:
    reason: Reason
    run_id: int
    schedule: str | None
    message: str
    drill_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    """For a failed drill, its whole report (`DrillReport.to_json()`)."""

    def payload(self) -> dict[str, Any]:
        """The webhook body."""
        return {
            "event": EVENTS[self.reason],
            "reason": self.reason,
            "run_id": self.run_id,
            "schedule": self.schedule,
            "drill_id": self.drill_id,
            "message": self.message,
            "report": self.details or None,
        }


def announce(alarm: Alarm) -> None:
    """The log event (what log-based alerting keys on)."""
    log.error(
        "drill_alarm",
        action=EVENTS[alarm.reason],
        reason=alarm.reason,
        run_id=alarm.run_id,
        schedule=alarm.schedule,
        drill_id=alarm.drill_id,
        message=alarm.message,
    )


async def post_webhook(
    url: str,
    alarm: Alarm,
    *,
    timeout_s: float = 10.0,
    retry_delays: tuple[float, ...] = (1.0, 3.0),
) -> str:
    """POST the alarm as JSON; retry on failure; return what happened, for the run's row."""
    body = json.dumps(alarm.payload(), default=str).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"broadcaster/{__version__} drill-alarm",
    }
    outcome = ""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for attempt, delay in enumerate((0.0, *retry_delays), 1):
            if delay:
                await asyncio.sleep(delay)
            try:
                async with session.post(
                    url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    await response.read()
                    outcome = f"HTTP {response.status}"
                    if 200 <= response.status < 300:
                        log.info("drill_webhook_sent", url=url, status=response.status)
                        return f"sent ({outcome})"
                    if 300 <= response.status < 400:
                        where = response.headers.get("Location", "no Location header")[:200]
                        outcome += f" redirect to {where}, not followed: set the webhook to it"
                        log.warning(
                            "drill_webhook_failed", url=url, attempt=attempt, outcome=outcome
                        )
                        break  # the same URL would redirect again: no use retrying
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            log.warning("drill_webhook_failed", url=url, attempt=attempt, outcome=outcome)
    return f"failed ({outcome})"
