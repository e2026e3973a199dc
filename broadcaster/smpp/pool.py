"""The SMPP pool: several binds to one or more SMSCs, fed from one queue of message parts.

Callers `submit()` parts (non-blocking) and are told each part's final outcome through
`on_outcome`; they apply back-pressure with `wait_for_room()`. Sessions pull from the shared
queue whenever they have window room and pacing tokens, so a slow or dead bind simply takes less
and the others take the rest. Throttled parts and parts in flight on a lost connection go back to
the front of the queue; nothing is dropped. The pool reconnects lost binds with jittered backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog

from broadcaster.errors import BindError
from broadcaster.settings import SmscConfig
from broadcaster.smpp.codec import SubmitTemplate
from broadcaster.smpp.pacing import Pacer
from broadcaster.smpp.receipts import Receipt
from broadcaster.smpp.session import SessionState, SmppSession

log = structlog.get_logger(__name__)

NO_RESPONSE = -1
"""Outcome status of a part that got no answer after every retry (recorded as failed)."""

OutcomeHandler = Callable[[object, int, "str | None", str, float, float], None]
"""(tag, status, message_id, smsc name, submitted_at, answered_at) — times are time.time()."""
ReceiptHandler = Callable[[Receipt, str], None]


def contracted_capacity(smscs: Sequence[SmscConfig]) -> float:
    """Contracted parts/s over all configured binds (0 when none or any SMSC is unlimited)."""
    if not smscs or any(s.tps == 0 for s in smscs):
        return 0.0
    return sum(s.tps * s.binds for s in smscs)


class Part:
    """One submit_sm to send: a group's pre-encoded part, a destination, and the caller's tag."""

    __slots__ = ("attempts", "destination", "submitted_at", "tag", "template")

    def __init__(self, template: SubmitTemplate, destination: bytes, tag: object) -> None:
        self.template = template
        self.destination = destination
        self.tag = tag
        self.attempts = 0
        self.submitted_at = 0.0


@dataclass
class PoolStats:
    """Counters for progress displays, metrics and reports."""

    submitted: int = 0
    accepted: int = 0
    failed: int = 0
    throttled: int = 0
    requeued_inflight: int = 0
    """Parts that were in flight on a lost connection and sent again: possible duplicates."""
    timeouts: int = 0
    reconnects: int = 0
    malformed: int = 0
    unexpected_responses: int = 0
    unknown_commands: int = 0
    unreadable_receipts: int = 0
    receipts: int = 0
    failed_by_status: dict[int, int] = field(default_factory=dict)


class SmppPool:
    """Binds to every configured SMSC and sends parts through whichever bind has room."""

    def __init__(
        self,
        smscs: Sequence[SmscConfig],
        on_outcome: OutcomeHandler,
        on_receipt: ReceiptHandler | None = None,
        *,
        max_attempts: int = 3,
        housekeeping_interval: float = 0.5,
    ) -> None:
        if not smscs:
            raise BindError("no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]]")
        self.smscs = tuple(smscs)
        self.on_outcome = on_outcome
        self.on_receipt = on_receipt
        self.max_attempts = max_attempts
        self.queue: deque[Part] = deque()
        self.sessions: list[SmppSession] = []
        self.stats = PoolStats()
        self._loop = asyncio.get_running_loop()
        self._kick_scheduled = False
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._outstanding = 0
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._housekeeping_interval = housekeeping_interval
        self._max_backlog = 0
        self._clock_offset = time.time() - time.monotonic()
        self._rate_marks: dict[str, tuple[float, int]] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self, bind_timeout: float = 10.0) -> None:
        """Open every bind; raise BindError unless at least one bind came up."""
        attempts = []
        for smsc in self.smscs:
            for i in range(smsc.binds):
                attempts.append(self._connect(smsc, f"{smsc.name}#{i + 1}", bind_timeout))
        results = await asyncio.gather(*attempts, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if len(errors) == len(results):
            raise BindError(f"no bind came up: {errors[0]}")
        for smsc_error in errors:
            log.warning("bind_failed_at_start", error=str(smsc_error))
        self._spawn(self._housekeeping())

    async def _connect(self, smsc: SmscConfig, name: str, timeout: float) -> SmppSession:
        pacer = Pacer(smsc.tps)
        try:
            _transport, session = await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: SmppSession(self, smsc, name, pacer), smsc.host, smsc.port
                ),
                timeout,
            )
        except (OSError, TimeoutError) as exc:
            self._schedule_reconnect(smsc, name, 1)
            raise BindError(f"{name}: cannot connect to {smsc.host}:{smsc.port}: {exc}") from exc
        self.sessions.append(session)
        try:
            await session.wait_bound(timeout)
        except BindError:
            self._schedule_reconnect(smsc, name, 1)
            raise
        return session

    async def close(self, timeout: float = 5.0) -> None:
        """Unbind every session. Parts still queued are left to the caller (see `cancel`)."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sessions = list(self.sessions)
        await asyncio.gather(*(s.unbind() for s in sessions), return_exceptions=True)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(s.wait_closed() for s in sessions)), timeout)

    def _spawn(self, coro: object) -> None:
        assert asyncio.iscoroutine(coro)
        task: asyncio.Task[None] = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- feeding -----------------------------------------------------------------------------

    def submit(self, template: SubmitTemplate, destination: bytes, tag: object) -> None:
        """Queue one part; its outcome arrives through `on_outcome`. Never blocks."""
        self.queue.append(Part(template, destination, tag))
        self._outstanding += 1
        self._idle.clear()
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self._loop.call_soon(self._pump_all)

    @property
    def backlog(self) -> int:
        """Parts queued and not yet written to any bind."""
        return len(self.queue)

    @property
    def outstanding(self) -> int:
        """Parts submitted and without a final outcome yet."""
        return self._outstanding

    async def wait_for_room(self, max_backlog: int) -> None:
        """Back-pressure: return once the queue has fewer than `max_backlog` parts."""
        while len(self.queue) >= max_backlog:
            self._max_backlog = max_backlog
            self._room.clear()
            await self._room.wait()

    async def drain(self) -> None:
        """Wait until every submitted part has a final outcome."""
        await self._idle.wait()

    def cancel(self) -> list[object]:
        """Drop every queued (not yet written) part; returns their tags. In-flight ones finish."""
        tags = [part.tag for part in self.queue]
        self._outstanding -= len(self.queue)
        self.queue.clear()
        if self._outstanding == 0:
            self._idle.set()
        self._room.set()
        return tags

    def capacity(self) -> float:
        return contracted_capacity(self.smscs)

    # -- scheduling ----------------------------------------------------------------------------

    def kick(self) -> None:
        """Ask for a pump at the end of this loop pass (coalesces many wake-ups into one)."""
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self._loop.call_soon(self._pump_all)

    def _pump_all(self) -> None:
        self._kick_scheduled = False
        if not self.queue:
            return
        now = time.monotonic()
        for session in self._sessions_by_room():
            sent = session.pump(now)
            self.stats.submitted += sent
            if not self.queue:
                break
        if len(self.queue) < self._max_backlog:
            self._room.set()

    def _sessions_by_room(self) -> list[SmppSession]:
        """Sessions that can send, the emptiest window first, weighted by SMSC weight."""
        ready = [s for s in self.sessions if s.idle_capacity > 0]
        ready.sort(key=lambda s: -s.idle_capacity * s.smsc.weight)
        return ready

    def session_ready(self, session: SmppSession) -> None:
        self.kick()

    def observed_rate(self, session: SmppSession) -> float:
        """Parts/s this session sent over the last measurement interval (for adaptive pacing)."""
        mark = self._rate_marks.get(session.name)
        if mark is None:
            return float(session.window)
        then, sent = mark
        elapsed = time.monotonic() - then
        return (session.sent - sent) / elapsed if elapsed > 0 else float(session.window)

    # -- outcomes ------------------------------------------------------------------------------

    def record(
        self, part: Part, status: int, message_id: str | None, session: SmppSession, now: float
    ) -> None:
        """A final outcome for one part."""
        if status == 0:
            self.stats.accepted += 1
        else:
            self.stats.failed += 1
            self.stats.failed_by_status[status] = self.stats.failed_by_status.get(status, 0) + 1
        offset = self._clock_offset
        self.on_outcome(
            part.tag,
            status,
            message_id,
            session.smsc.name,
            part.submitted_at + offset,
            now + offset,
        )
        self._outstanding -= 1
        if self._outstanding == 0:
            self._idle.set()

    def requeue_throttled(self, part: Part) -> None:
        self.stats.throttled += 1
        self.queue.appendleft(part)

    def receipt(self, receipt: Receipt, session: SmppSession) -> None:
        self.stats.receipts += 1
        if self.on_receipt is not None:
            self.on_receipt(receipt, session.smsc.name)

    def session_lost(
        self,
        session: SmppSession,
        orphans: list[Part],
        expected: bool,
        exc: Exception | None,
    ) -> None:
        """Re-queue what was in flight (possible duplicates) and reconnect unless closing."""
        if session in self.sessions:
            self.sessions.remove(session)
        now = time.monotonic()
        for part in reversed(orphans):
            part.attempts += 1
            if part.attempts >= self.max_attempts:
                self.record(part, NO_RESPONSE, None, session, now)
            else:
                self.stats.requeued_inflight += 1
                self.queue.appendleft(part)
        if orphans:
            log.warning("bind_lost_inflight_requeued", bind=session.name, parts=len(orphans))
        if not self._closing and not expected:
            log.warning("bind_lost", bind=session.name, error=str(exc) if exc else None)
            self._schedule_reconnect(session.smsc, session.name, 1)
        self.kick()

    def _schedule_reconnect(self, smsc: SmscConfig, name: str, attempt: int) -> None:
        if self._closing:
            return
        self._spawn(self._reconnect(smsc, name, attempt))

    async def _reconnect(self, smsc: SmscConfig, name: str, attempt: int) -> None:
        delay = min(30.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
        await asyncio.sleep(delay)
        if self._closing:
            return
        self.stats.reconnects += 1
        pacer = Pacer(smsc.tps)
        try:
            _transport, session = await asyncio.wait_for(
                self._loop.create_connection(
                    lambda: SmppSession(self, smsc, name, pacer), smsc.host, smsc.port
                ),
                smsc.response_timeout_s,
            )
            self.sessions.append(session)
            await session.wait_bound(smsc.response_timeout_s)
        except (OSError, TimeoutError, BindError) as exc:
            log.info("reconnect_failed", bind=name, attempt=attempt, error=str(exc))
            self._schedule_reconnect(smsc, name, attempt + 1)

    async def _housekeeping(self) -> None:
        """Response timeouts, keep-alives and rate marks, a few times per second."""
        last_enquire: dict[str, float] = {}
        while True:
            await asyncio.sleep(self._housekeeping_interval)
            now = time.monotonic()
            for session in list(self.sessions):
                self._rate_marks[session.name] = (now, session.sent)
                if session.state is not SessionState.BOUND:
                    continue
                if session.oldest_inflight_age(now) > session.smsc.response_timeout_s:
                    self.stats.timeouts += 1
                    session.abort("response_timeout")
                    continue
                last = last_enquire.setdefault(session.name, now)
                if now - last >= session.smsc.enquire_link_s:
                    last_enquire[session.name] = now
                    self._spawn(session.enquire_link(session.smsc.response_timeout_s))
