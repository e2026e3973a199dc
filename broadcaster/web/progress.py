"""Live progress of a broadcast, pushed to the page as server-sent events.

Once a second the stream reads the broadcast's status through the command the API's
`getBroadcast` calls (same permission, same derived counts) and this process's SMPP pool
health (what /readyz reports), and sends one `progress` event whose figures are already
formatted in the visitor's language: the page's script only copies text into place. The stream
ends when the broadcast reaches a final state, after `MAX_STREAM_S` (the browser reconnects),
when the server shuts down, or — checked every `RECHECK_S` — when the token that opened the
session is revoked or gone: an `ended` event tells the page, whose reload then lands on the
sign-in page (a stream never outlives its token by more than a few seconds).

Once the stream has started, its status line and headers are sent: a failure then (the database
gone, the token revoked) is logged and ends the stream cleanly — the browser reconnects after
`retry` — rather than reaching the console's error pages, which would write a second HTTP
response into the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from typing import Any, Final

import structlog
from aiohttp import web

from broadcaster.commands import broadcasts
from broadcaster.commands.context import Context
from broadcaster.commands.tokens import holder
from broadcaster.domain.caller import Caller
from broadcaster.domain.states import FINAL
from broadcaster.http.context import SERVICES
from broadcaster.smpp.pool import SmppPool
from broadcaster.web import i18n
from broadcaster.web.auth import require_user
from broadcaster.web.render import duration, number
from broadcaster.web.security import add_headers
from broadcaster.web.state import CONSOLE, LANG, SESSION

log = structlog.get_logger(__name__)

INTERVAL_S: Final = 1.0
BUSY_FACTOR: Final = 4.0
"""The stream waits at least this many times what the last status read took: counting the
outcomes of a national broadcast is not free, and every open page reads them."""
MAX_STREAM_S: Final = 600.0
RECHECK_S: Final = 2.0
"""How often a stream re-reads its token's row (revoked, gone): its longest life after a
revocation."""
RATE_WINDOW: Final = 10
"""Samples (seconds) the rate is measured over."""


class RateMeter:
    """Recipients handled per second over the last few samples (all workers: it reads the
    database's counts, not this process's pool)."""

    def __init__(self, window: int = RATE_WINDOW) -> None:
        self.samples: deque[tuple[float, int]] = deque(maxlen=window)

    def add(self, at: float, recorded: int) -> float | None:
        self.samples.append((at, recorded))
        (t0, n0), (t1, n1) = self.samples[0], self.samples[-1]
        if t1 - t0 < 0.5:
            return None
        return max(0.0, (n1 - n0) / (t1 - t0))


def pool_of(request: web.Request) -> SmppPool | None:
    worker = request.app[SERVICES].worker
    return worker.pool if worker is not None else None


def smsc_health(pool: SmppPool | None) -> list[dict[str, Any]]:
    if pool is None:
        return []
    return [
        {
            "name": s.name,
            "state": s.state,
            "binds_up": s.binds_up,
            "binds": len(s.binds),
            "accepted_per_s": s.accepted_per_s,
            "inflight": s.inflight,
            "throttled": s.throttled,
            "receivers_up": s.receivers_up,
            "empty_message_ids": s.empty_message_ids,
            "problems": s.problems,
        }
        for s in pool.health()
    ]


def snapshot(
    status: dict[str, Any],
    rate: float | None,
    pool: SmppPool | None,
    lang: str,
    parts_per_second: float = 0.0,
) -> dict[str, Any]:
    """Everything the progress panel shows, formatted for `lang`."""
    t = i18n.translator(lang)
    state = status["state"]
    recipients = int(status["recipients"])
    recorded = int(status["recorded"])
    left = max(0, recipients - recorded)
    if state in FINAL:
        eta = 0.0
    elif rate:
        eta = left / rate
    elif parts_per_second > 0 and recipients:
        eta = int(status["parts"]) * left / recipients / parts_per_second
    else:
        eta = None
    delivered = sum(v["count"] for k, v in status.get("receipts", {}).items() if k == "DELIVRD")
    health = smsc_health(pool)
    return {
        "state": state,
        "state_label": t(f"state_{state}"),
        "final": state in FINAL,
        "recipients": recipients,
        "recorded": recorded,
        "accepted": int(status["accepted"]),
        "failed": int(status["failed"]),
        "delivered": delivered,
        "percent": round(100 * recorded / recipients, 1) if recipients else 100.0,
        "text": {
            "recipients": number(recipients, lang),
            "recorded": number(recorded, lang),
            "accepted": number(status["accepted"], lang),
            "failed": number(status["failed"], lang),
            "possibly_twice": number(status.get("possibly_sent_twice", 0), lang),
            "delivered": number(delivered, lang),
            "rate": f"{number(round(rate, 1), lang)} {t('per_second')}" if rate else "–",
            "eta": duration(eta, lang) or "–",
        },
        "pool": pool is not None,
        "smscs": [{**s, "accepted_per_s": number(s["accepted_per_s"], lang)} for s in health],
    }


async def read_status(ctx: Context, caller: Caller, broadcast_id: int) -> dict[str, Any]:
    """The broadcast's status, as GET /v1/broadcasts/{id} reads it (same permission)."""
    return await broadcasts.status(ctx, caller, broadcast_id)


async def still_signed_in(request: web.Request, caller: Caller) -> bool:
    """Whether the token that opened this session is still active (the same row: not
    revoked, not deleted and reused), as the console checks it on each request."""
    if caller.token_id is None:
        return False
    async with request.app[SERVICES].db.acquire() as conn:
        found = await holder(conn, caller.token_id, "console")
    return found is not None and found[1] == request[SESSION].token_created


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def stream(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    services = request.app[SERVICES]
    closing = request.app[CONSOLE].closing
    lang = request[LANG]
    broadcast_id = int(request.match_info["broadcast_id"])
    ctx = services.commands
    status = await read_status(ctx, caller, broadcast_id)  # 403/404 before the stream opens
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    add_headers(response)
    await response.prepare(request)
    meter = RateMeter()
    deadline = time.monotonic() + MAX_STREAM_S
    recheck_at = time.monotonic() + RECHECK_S
    took = 0.0
    try:
        await response.write(b"retry: 3000\n\n")
        while True:
            rate = meter.add(time.monotonic(), int(status["recorded"]))
            data = snapshot(status, rate, pool_of(request), lang, services.parts_per_second)
            await response.write(event("progress", data))
            if data["final"] or closing.is_set() or time.monotonic() > deadline:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), max(INTERVAL_S, BUSY_FACTOR * took))
            if time.monotonic() >= recheck_at:
                if not await still_signed_in(request, caller):
                    log.info("console_stream_ended", token_id=caller.token_id, reason="token")
                    await response.write(event("ended", {"reason": "session_ended"}))
                    break
                recheck_at = time.monotonic() + RECHECK_S
            started = time.monotonic()
            status = await read_status(ctx, caller, broadcast_id)
            took = time.monotonic() - started
    except ConnectionError:
        pass  # the page was closed
    except Exception:
        # Not re-raised: the response has begun, an error page cannot follow it.
        log.exception("console_stream_failed", path=request.path)
    return response
