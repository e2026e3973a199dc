"""Live progress of a broadcast, pushed to the page as server-sent events.

One shared reader per watched broadcast (`Watch`), however many pages are open on it: once a
second it reads the broadcast's status (what the API's `getBroadcast` reads) on a database
connection of its own — never one of the API's pool, so a cancel or an approval does not queue
behind a crowd of viewers — and hands the latest reading to every open stream. It also re-reads
the tokens of the sessions watching (revoked, gone), every `RECHECK_S`. It stops when the last
page closes.

Each stream is authorised once when it opens (same permission as `getBroadcast`: 403/404 before
it starts), then sends one `progress` event per reading, its figures already formatted in the
visitor's language (the page's script only copies text into place), with this process's SMPP
pool health (what /readyz reports) while the broadcast sends. A stream ends when the broadcast
is final and its receipts have settled (`settled`), after `MAX_STREAM_S` (the browser
reconnects), when the server shuts down, or when the token that opened the session is revoked
or gone: an `ended` event tells the page, whose reload then lands on the sign-in page.

Once the stream has started, its status line and headers are sent: a failure then is logged
and ends the stream cleanly — the browser reconnects after `retry` — rather than reaching the
console's error pages, which would write a second HTTP response into the stream. A failure of
the shared reader (the database gone) is logged and retried: the streams keep their last
reading meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import structlog
from aiohttp import web

from broadcaster.commands import broadcasts, maps
from broadcaster.commands.context import Context
from broadcaster.commands.tokens import holder
from broadcaster.domain.states import FINAL
from broadcaster.http.context import SERVICES
from broadcaster.smpp.pool import SmppPool
from broadcaster.smpp.receipts import UNDELIVERED_STATS
from broadcaster.store.database import Conn, connect
from broadcaster.web import i18n
from broadcaster.web.auth import require_user
from broadcaster.web.render import duration, number
from broadcaster.web.security import add_headers
from broadcaster.web.state import CONSOLE, LANG, SESSION

log = structlog.get_logger(__name__)

INTERVAL_S: Final = 1.0
BUSY_FACTOR: Final = 4.0
"""The reader waits at least this many times what the last status read took: counting the
outcomes of a national broadcast is not free."""
MAX_STREAM_S: Final = 600.0
RECHECK_S: Final = 2.0
"""How often the reader re-reads the watching sessions' tokens (revoked, gone): a stream's
longest life after a revocation."""
RETRY_S: Final = 2.0
"""After a failed read (the database away), the reader tries again this much later."""
RATE_WINDOW: Final = 10
"""Samples (seconds) the rate is measured over."""
SETTLE_S: Final = 600.0
"""After its end, a broadcast's page stays live while receipts are awaited, at most this long
(receipts arrive minutes after the submission; a handset off for a day is not waited for)."""
SENDING: Final = frozenset({"running"})
MAX_OWN_CONNECTIONS: Final = 16
"""Readers with a connection of their own, at most (the database's connection limit is shared
with the pools); a reader beyond them takes a pool connection for each reading (a few ms a
second), as does every reader when the process knows no database address of its own."""


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


def settled(status: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether nothing more will change on the page: a final broadcast with no receipt awaited
    (or nobody bound to receive one, or `SETTLE_S` past its end)."""
    if status["state"] not in FINAL:
        return False
    if not status.get("receipts_awaited") or not status.get("receivers_bound"):
        return True
    finished = status.get("finished_at")
    if not finished:
        return True
    ended = datetime.fromisoformat(str(finished))
    return ((now or datetime.now(UTC)) - ended).total_seconds() > SETTLE_S


def accepted_parts(status: dict[str, Any]) -> int:
    return sum(int(s.get("accepted", 0)) for s in status.get("by_smsc", {}).values())


def _eta(
    status: dict[str, Any], rate: float | None, parts_per_second: float, left: int
) -> float | None:
    """Time left, only while this broadcast sends (a queued one has none to tell)."""
    state, recipients = status["state"], int(status["recipients"])
    if state in FINAL:
        return 0.0
    if state not in SENDING:
        return None
    if rate:
        return left / rate
    if parts_per_second > 0 and recipients:
        return int(status["parts"]) * left / recipients / parts_per_second
    return None


def waiting_text(status: dict[str, Any], lang: str) -> str | None:
    """What a broadcast that sends nothing waits for, in `lang` (None: it is not waiting)."""
    t = i18n.translator(lang)
    state = status["state"]
    if state == "pending_approval":
        return t("waits_approval")
    if state != "approved":
        return None
    if status.get("workers_alive") == 0:
        return t("waits_worker_none")
    ahead = [int(i) for i in status.get("waiting_behind") or []]
    if ahead:
        return t("waits_behind").format(
            position=number(len(ahead) + 1, lang),
            first=ahead[0],
            listed=", ".join(str(i) for i in ahead),
        )
    return t("waits_worker")


def snapshot(
    status: dict[str, Any],
    rate: float | None,
    pool: SmppPool | None,
    lang: str,
    parts_per_second: float = 0.0,
) -> dict[str, Any]:
    """Everything the progress panel shows, formatted for `lang`. The SMSC figures and the
    rate are shown only while this broadcast sends: a queued one must not show another's."""
    t = i18n.translator(lang)
    state = status["state"]
    recipients = int(status["recipients"])
    recorded = int(status["recorded"])
    sending = state in SENDING
    eta = _eta(status, rate if sending else None, parts_per_second, max(0, recipients - recorded))
    receipts = status.get("receipts", {})
    delivered = sum(v["count"] for k, v in receipts.items() if k == "DELIVRD")
    undelivered = sum(v["count"] for k, v in receipts.items() if k in UNDELIVERED_STATS)
    health = smsc_health(pool) if sending else []
    awaited = int(status.get("receipts_awaited") or 0)
    return {
        "state": state,
        "state_label": t(f"state_{state}"),
        "final": state in FINAL,
        "settled": settled(status),
        "sending": sending,
        "waiting": waiting_text(status, lang) or "",
        "recipients": recipients,
        "recorded": recorded,
        "accepted": int(status["accepted"]),
        "failed": int(status["failed"]),
        "delivered": delivered,
        "undelivered": undelivered,
        "percent": round(100 * recorded / recipients, 1) if recipients else 100.0,
        "text": {
            "recipients": number(recipients, lang),
            "recorded": number(recorded, lang),
            "accepted": number(status["accepted"], lang),
            "accepted_parts": number(accepted_parts(status), lang),
            "failed": number(status["failed"], lang),
            "possibly_twice": number(status.get("possibly_sent_twice", 0), lang),
            "delivered": number(delivered, lang),
            "undelivered": number(undelivered, lang),
            "awaited": number(awaited, lang),
            "rate": f"{number(round(rate, 1), lang)} {t('per_second')}"
            if rate and sending
            else "–",
            "eta": duration(eta, lang) or "–",
        },
        "areas": status.get("areas") or {},
        "pool": pool is not None and sending,
        "smscs": [{**s, "accepted_per_s": number(s["accepted_per_s"], lang)} for s in health],
    }


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


# -- the shared reader ---------------------------------------------------------------------------

Opener = Callable[[], Awaitable["asyncpg.Connection[asyncpg.Record]"]]


@dataclass
class Reading:
    """One reading of a broadcast, shared by its viewers."""

    status: dict[str, Any]
    rate: float | None
    serial: int


@dataclass
class Watch:
    """One broadcast's shared reader and the pages watching it."""

    broadcast_id: int
    viewers: int = 0
    latest: Reading | None = None
    wanted: set[int] = field(default_factory=set)
    """The token ids of the sessions watching (their tokens are re-read)."""
    tokens: dict[int, str | None] = field(default_factory=dict)
    """Token id -> the creation time of the active token with that id (None: revoked or gone),
    as last read."""
    reads: int = 0
    task: asyncio.Task[None] | None = None
    _fresh: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, reading: Reading) -> None:
        self.latest = reading
        fresh, self._fresh = self._fresh, asyncio.Event()
        fresh.set()

    async def after(self, serial: int, timeout: float) -> Reading | None:
        """The first reading newer than `serial` (None after `timeout`)."""
        if self.latest is not None and self.latest.serial > serial:
            return self.latest
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._fresh.wait(), timeout)
        if self.latest is not None and self.latest.serial > serial:
            return self.latest
        return None


class Hub:
    """Every watched broadcast of this process: one reader each, started by the first page
    open on it and stopped with the last."""

    def __init__(self, ctx: Context, open_connection: Opener | None = None) -> None:
        self.ctx = ctx
        self.open_connection = open_connection or self._connect
        self.watches: dict[int, Watch] = {}
        self.own_connections = 0
        self.tasks: set[asyncio.Task[None]] = set()

    async def _connect(self) -> asyncpg.Connection[asyncpg.Record]:
        return await connect(self.ctx.dsn)

    @property
    def viewers(self) -> int:
        """Streams open now, all broadcasts together."""
        return sum(w.viewers for w in self.watches.values())

    @contextlib.asynccontextmanager
    async def watching(self, broadcast_id: int, token_id: int | None) -> AsyncIterator[Watch]:
        watch = self.watches.get(broadcast_id)
        if watch is None:
            watch = self.watches[broadcast_id] = Watch(broadcast_id)
        watch.viewers += 1
        if token_id is not None:
            watch.wanted.add(token_id)
        if watch.task is None or watch.task.done():
            watch.task = asyncio.create_task(self._read(watch), name=f"watch-{broadcast_id}")
            self.tasks.add(watch.task)
            watch.task.add_done_callback(self.tasks.discard)
        try:
            yield watch
        finally:
            watch.viewers -= 1
            if watch.viewers == 0:
                self.watches.pop(broadcast_id, None)
                watch.task.cancel()

    async def close(self) -> None:
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.watches.clear()

    async def _read(self, watch: Watch) -> None:
        """Read, publish, wait; on a failure, log, reconnect and go on (the viewers keep the
        last reading)."""
        meter = RateMeter()
        conn: asyncpg.Connection[asyncpg.Record] | None = None
        recheck_at = 0.0
        own = bool(self.ctx.dsn) and self.own_connections < MAX_OWN_CONNECTIONS
        self.own_connections += own
        try:
            while True:
                try:
                    started = time.monotonic()
                    recheck = started >= recheck_at
                    if not own:  # a pool connection for each reading
                        async with self.ctx.db.acquire() as shared:
                            status = await self._reading(shared, watch, recheck)
                    else:
                        if conn is None or conn.is_closed():
                            conn = await self.open_connection()
                        status = await self._reading(conn, watch, recheck)
                    if recheck:
                        recheck_at = started + RECHECK_S
                    took = time.monotonic() - started
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("console_reader_failed", broadcast_id=watch.broadcast_id)
                    await _closed(conn)
                    conn = None
                    await asyncio.sleep(RETRY_S)
                    continue
                watch.reads += 1
                rate = meter.add(time.monotonic(), int(status["recorded"]))
                serial = watch.latest.serial + 1 if watch.latest else 1
                watch.publish(Reading(status, rate, serial))
                if settled(status):
                    return  # nothing more will change: the streams end on this reading
                await asyncio.sleep(max(INTERVAL_S, BUSY_FACTOR * took))
        finally:
            self.own_connections -= own
            await _closed(conn)

    async def _reading(self, conn: Conn, watch: Watch, recheck: bool) -> dict[str, Any]:
        status: dict[str, Any] = await read_status(conn, watch.broadcast_id)
        if recheck:
            watch.tokens = await _tokens(conn, set(watch.wanted))
        return status


async def _closed(
    conn: asyncpg.Connection[asyncpg.Record] | None,
) -> None:
    if conn is not None:
        with contextlib.suppress(Exception):
            await conn.close()


async def read_status(conn: Conn, broadcast_id: int) -> Any:
    """The broadcast's status, as GET /v1/broadcasts/{id} reads it (the opener of each stream
    was authorised as `getBroadcast` is)."""
    status: dict[str, Any] = await broadcasts.watched(conn, broadcast_id)
    status["areas"] = await maps.watched_areas(conn, broadcast_id)  # the map's colours
    return status


async def _tokens(conn: Conn, wanted: set[int]) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for token_id in sorted(wanted):
        found = await holder(conn, token_id, "console")
        out[token_id] = found[1] if found is not None else None
    return out


HUB = web.AppKey("console_progress_hub", Hub)


async def stop_hub(app: web.Application) -> None:
    await app[HUB].close()


def still_signed_in(watch: Watch, token_id: int | None, token_created: str | None) -> bool:
    """Whether the token that opened this session is still active (the same row: not revoked,
    not deleted and reused), as the reader last read it (not read yet: yes, the request that
    opened the stream was checked)."""
    if token_id is None:
        return False
    if token_id not in watch.tokens:
        return True
    found = watch.tokens[token_id]
    return found is not None and found == token_created


# -- one page's stream ---------------------------------------------------------------------------


async def stream(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    services = request.app[SERVICES]
    closing = request.app[CONSOLE].closing
    lang = request[LANG]
    broadcast_id = int(request.match_info["broadcast_id"])
    await broadcasts.may_watch(services.commands, caller, broadcast_id)  # 403/404 first
    hub = request.app[HUB]
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    add_headers(response)
    await response.prepare(request)
    deadline = time.monotonic() + MAX_STREAM_S
    created = request[SESSION].token_created
    try:
        await response.write(b"retry: 3000\n\n")
        async with hub.watching(broadcast_id, caller.token_id) as watch:
            serial = 0
            while not closing.is_set() and time.monotonic() < deadline:
                reading = await _next(watch, serial, closing)
                if reading is None:
                    continue
                serial = reading.serial
                if not still_signed_in(watch, caller.token_id, created):
                    log.info("console_stream_ended", token_id=caller.token_id, reason="token")
                    await response.write(event("ended", {"reason": "session_ended"}))
                    break
                data = snapshot(
                    reading.status, reading.rate, pool_of(request), lang, services.parts_per_second
                )
                await response.write(event("progress", data))
                if data["settled"]:
                    break
    except ConnectionError:
        pass  # the page was closed
    except Exception:
        # Not re-raised: the response has begun, an error page cannot follow it.
        log.exception("console_stream_failed", path=request.path)
    return response


async def _next(watch: Watch, serial: int, closing: asyncio.Event) -> Reading | None:
    """The next reading, or None when the server starts closing (or a second passed)."""
    waiting = asyncio.ensure_future(watch.after(serial, INTERVAL_S))
    stopping = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not waiting.done():
        waiting.cancel()
        return None
    return waiting.result()
