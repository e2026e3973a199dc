"""Drill alarms: a failed, missed or unstartable drill is said loudly, in three places.

1. a structlog event `drill_alarm` (level error) with a stable `reason`;
2. the run's row (`drill_runs.alarm`), which `/metrics` exposes as `broadcaster_drill_alarms`
   and `broadcaster_drill_failing` (see api/metrics.py);
3. an optional webhook: the JSON body POSTed to the schedule's URL (or the global one), retried
   twice; its result is recorded, a webhook that does not answer never stops the scheduler.
   Only a 2xx answer counts as sent. Redirects are not followed (a 302 would be replayed as a
   bodyless GET, and the alarm lost while reported sent): a 3xx is a failure, its Location in
   the log, so that the URL can be corrected. The destination is checked first
   (`config.WebhookPolicy`: the host resolved, every address checked, the connection made to
   those addresses); the recorded result is generic, the details are in the log only.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult

from broadcaster import __version__
from broadcaster.drills.config import REFUSED, WebhookPolicy, WebhookRefusedError, mask_url

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


class _PinnedResolver(AbstractResolver):
    """Answers with the addresses already checked: the connection goes where the policy
    looked, not wherever a second DNS answer (rebinding) would point."""

    def __init__(self, addresses: list[tuple[int, str]]) -> None:
        self.addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=fam,
                proto=socket.IPPROTO_TCP,
                flags=socket.AI_NUMERICHOST,
            )
            for fam, address in self.addresses
        ]

    async def close(self) -> None:
        return None


async def resolve_checked(url: str, policy: WebhookPolicy) -> list[tuple[int, str]]:
    """Every address of the URL's host, each checked by the policy (WebhookRefusedError)."""
    policy.check_url(url)
    parts = urlsplit(url)
    host = (parts.hostname or "").strip("[]")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (OSError, UnicodeError, ValueError) as exc:  # UnicodeError: a label too long
        log.warning("drill_webhook_unresolved", host=host[:100], detail=str(exc))
        raise WebhookRefusedError(f"webhook {REFUSED}: the host does not resolve") from None
    found = sorted({(int(info[0]), str(info[4][0])) for info in infos})
    policy.check_addresses(url, [address for _family, address in found])
    return found


async def post_webhook(
    url: str,
    alarm: Alarm,
    *,
    policy: WebhookPolicy | None = None,
    timeout_s: float = 10.0,
    retry_delays: tuple[float, ...] = (1.0, 3.0),
) -> str:
    """POST the alarm as JSON to a destination the policy allows (checked on each attempt,
    connected to the checked addresses); retry on failure; return what happened, for the run's
    row, in generic words (`failed (refused by policy)`, `failed (HTTP 500)`, `failed (no
    answer)`): the details, which could map the network, go to the log only."""
    body = json.dumps(alarm.payload(), default=str).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"broadcaster/{__version__} drill-alarm",
    }
    policy = policy or WebhookPolicy()
    where = mask_url(url)
    outcome = ""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    for attempt, delay in enumerate((0.0, *retry_delays), 1):
        if delay:
            await asyncio.sleep(delay)
        try:
            addresses = await resolve_checked(url, policy)
        except WebhookRefusedError as exc:
            log.warning("drill_webhook_refused", url=where, detail=str(exc))
            return f"failed ({REFUSED})"
        connector = aiohttp.TCPConnector(resolver=_PinnedResolver(addresses), use_dns_cache=False)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout, connector=connector) as session,
                session.post(url, data=body, headers=headers, allow_redirects=False) as response,
            ):
                await response.read()
                outcome = f"HTTP {response.status}"
                if 200 <= response.status < 300:
                    log.info("drill_webhook_sent", url=where, status=response.status)
                    return f"sent ({outcome})"
                if 300 <= response.status < 400:
                    location = response.headers.get("Location", "no Location header")[:200]
                    log.warning(
                        "drill_webhook_failed",
                        url=where,
                        attempt=attempt,
                        outcome=outcome,
                        detail=f"redirect to {location}, not followed: set the webhook to it",
                    )
                    return f"failed ({outcome}, redirect not followed)"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            outcome = "no answer"
            log.warning(
                "drill_webhook_failed",
                url=where,
                attempt=attempt,
                outcome=outcome,
                detail=f"{type(exc).__name__}: {exc}",
            )
            continue
        log.warning("drill_webhook_failed", url=where, attempt=attempt, outcome=outcome)
    return f"failed ({outcome})"
