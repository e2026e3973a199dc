"""The SMPP pool: binds to one or more SMSCs (sites), fed from one queue of message parts.

Callers `submit()` parts (never blocks), each with one pre-encoded template per SMSC (a part
written to SMSC number i is encoded with its `templates[i]`: each SMSC has its own sender
address and receipt request), a message's parts one after the other (`more=True` on all but
its last), and learn each part's final outcome through
`on_outcome(tag, status, message_id, smsc_name, submitted_at, answered_at, possible_duplicates)`,
exactly once per part: status 0 accepted, an SMPP status (vendor codes included) for a final
failure, `NO_RESPONSE` when the part got no answer `max_attempts` times, or `NOT_SENT` when its
`Lane` halted (or expired) before it could be written again. `possible_duplicates` counts the
copies of the part beyond one that the SMSC may have received (writes left unanswered by a lost
connection or a response timeout, plus the accepted one, minus one): 0 for almost every part,
1 for a part that "may have gone twice". They apply back-pressure with `wait_for_room()` and
wait for the end with `drain()`.

A caller that can stop (a broadcast's run: cancel, pause, expiry) has a `Lane` (`open_lane`),
which the pool finds from a part's tag (`lane_of`, asked only off the hot path): once the lane
is halted, or past its deadline, none of its parts is written again, whatever comes back (a
throttle, a timeout, a lost connection): each gets `NOT_SENT`. The earliest deadline is
checked on every pass before anything is written (one comparison), so nothing of a lane leaves
after its deadline, even if the caller's own timer fires late.

Once per event-loop pass (`kick`), the pool asks every bound session how many parts it may send
now (window room and pacing tokens), lets `policy.allocate` split the queue between them (by
site weight, `policy.SiteSplitter`) on message boundaries (`policy.whole_messages`: all the
parts of a message go through one SMSC, whose sender the phone joins them by) and hands each
session its share, which it writes in one `transport.write`. A slow, throttled, stalled or
dead bind simply has no room, so the others take the rest. Sessions report back through
`session.SessionOwner`, which the pool implements.

Nothing is forgotten: a throttled part goes back to be sent again (and is never given up
while its lane runs);
parts in flight on a lost connection or past their response timeout go back too (counted in
`stats.requeued_inflight`: the SMSC may have accepted them, so they are possible duplicates),
or, after `max_attempts` such losses, are reported failed with `NO_RESPONSE`. A part that goes
back goes to the front of the queue, unless it belongs to a multi-part message and the pool
has several SMSCs: then it is pinned to the SMSC that carried its message
(`affinity.SitePins`), whose binds send it before any fresh part; if that SMSC stays without a
bind for longer than its `response_timeout_s`, its pinned parts go to the others, and their
messages are counted in `stats.split_messages`.

Each configured bind is kept up by its own task: connect, bind, wait until the connection ends,
reconnect after a jittered backoff (`policy.reconnect_delay`), long when the SMSC refused the
credentials. A bind's pacer outlives its connections, so a reconnect resumes at the learnt rate.

A part unanswered after its SMSC's `response_timeout_s` is sent again elsewhere; a bind from
which nothing at all came back meanwhile, or that leaves a keep-alive unanswered as long, is
dropped and reconnected. A bind silent for a fraction of a second with parts in flight gets no
new parts until it answers (`policy.stall_after`).

For progress displays and metrics: `stats` (`PoolStats`, cumulative counters, plain ints) and
`health()` (per SMSC: up / degraded / down, accepted parts/s, and per bind its state, window
use, pacing rate, last error and when it retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Final

import structlog

from broadcaster.errors import BindError
from broadcaster.settings import SmscConfig
from broadcaster.smpp import policy
from broadcaster.smpp.affinity import SitePins
from broadcaster.smpp.codec import SubmitTemplate
from broadcaster.smpp.connection import ConnectionState, Event, Outcome
from broadcaster.smpp.pacing import Pacer
from broadcaster.smpp.receipts import Receipt
from broadcaster.smpp.session import SmppSession
from broadcaster.smpp.stats import BindHealth, BindState, PoolStats, SmscHealth, smsc_health

__all__ = [
    "NOT_SENT",
    "NO_RESPONSE",
    "Bind",
    "BindHealth",
    "BindState",
    "Lane",
    "LaneOf",
    "OutcomeHandler",
    "Part",
    "PoolStats",
    "ReceiptHandler",
    "SmppPool",
    "SmscHealth",
    "contracted_capacity",
]

log = structlog.get_logger(__name__)

NO_RESPONSE: Final = -1
"""Outcome status of a part that got no answer after `max_attempts` tries (a failure)."""
NOT_SENT: Final = -2
"""Outcome status of a part not written again because its lane halted or expired (after a
throttle, a timeout or a lost connection). Not a delivery outcome: nothing is known to have been
accepted, so a caller records nothing and a resumed run sends the part again."""
HOUSEKEEPING_INTERVAL: Final = 0.1
"""Seconds between checks of response timeouts, stalls and keep-alives."""
START_GRACE: Final = 0.5
"""Once one bind is up, `start` waits at most this long for the others' first attempts."""
RATE_INTERVAL: Final = 1.0
"""Seconds over which `health()` measures accepted parts/s."""

OutcomeHandler = Callable[[object, int, "str | None", str, float, float, int], None]
"""(tag, status, message_id, smsc name, submitted_at, answered_at, possible_duplicates); times
are time.time(); possible_duplicates: copies beyond one the SMSC may have received."""
ReceiptHandler = Callable[[Sequence[Receipt], str], None]
"""(receipts of one read, in order; smsc name)."""
LaneOf = Callable[[object], "Lane | None"]
"""A part's tag -> the lane it belongs to (None: it never stops)."""


def contracted_capacity(smscs: Sequence[SmscConfig]) -> float:
    """Contracted parts/s over all configured binds (0 when none or any SMSC is unlimited)."""
    smscs = [s for s in smscs if s.transmit_binds]
    if not smscs or any(s.tps == 0 for s in smscs):
        return 0.0
    return sum(s.tps * s.transmit_binds for s in smscs)


class Lane:
    """The parts of one caller that stop together (a broadcast's run): once `halted`, or from
    `deadline` on (time.monotonic()), none of them is written again. Made by `open_lane`."""

    __slots__ = ("deadline", "halted")

    def __init__(self, deadline: float = math.inf) -> None:
        self.deadline = deadline
        self.halted = False

    def halt(self) -> None:
        """Nothing of this lane is written from now on (the caller cancels what is queued and
        submits nothing more in it: the pool stops watching it)."""
        self.halted = True

    def closed(self, now: float) -> bool:
        """Halted, or past its deadline at `now` (time.monotonic())."""
        return self.halted or now >= self.deadline


class Part:
    """One submit_sm to send: a group's pre-encoded part (one template per SMSC), a
    destination, the caller's tag, and where its message ends."""

    __slots__ = (
        "attempts",
        "destination",
        "message",
        "retries",
        "submitted_at",
        "tag",
        "templates",
    )

    def __init__(
        self,
        templates: tuple[SubmitTemplate, ...],
        destination: bytes,
        tag: object,
        message: int = 0,
    ) -> None:
        self.templates = templates
        """One per SMSC, in the pool's `smscs` order."""
        self.destination = destination
        self.tag = tag
        self.message = message
        """0 for a single-part message; else the number of its multi-part message in the
        pool, negative on the part that ends it. One int says all the pool needs (`more`,
        which message, whether to pin it) and costs the hot path one attribute."""
        self.attempts = 0
        """Times this part was sent and got no answer (lost connection, response timeout)."""
        self.retries = 0
        """Times it was answered with a transient error (`SmscConfig.retry_statuses`) and
        sent again."""
        self.submitted_at = 0.0
        """time.monotonic() of the latest write."""

    @property
    def more(self) -> bool:
        """The next part queued belongs to the same message (so goes through the same SMSC)."""
        return self.message > 0


@dataclass(eq=False)
class Bind:
    """One configured bind: what outlives its connections (pacing, counters, backoff)."""

    name: str
    smsc: SmscConfig
    site: int
    pacer: Pacer
    mode: str = ""
    """Its bind mode: the SMSC's, or `receiver` for one of its `receivers`."""
    state: BindState = BindState.CONNECTING
    session: SmppSession[Part] | None = None
    failures: int = 0
    """Consecutive failed attempts (reset by a session that stays up)."""
    last_error: str | None = None
    retry_at: float | None = None
    accepted: int = 0
    failed: int = 0
    throttled: int = 0
    retried: int = 0
    timeouts: int = 0
    reconnects: int = 0
    empty_message_ids: int = 0
    accepted_rate: float = 0.0
    _rate_mark: int = 0

    def health(self, now: float) -> BindHealth:
        """This bind for a progress display."""
        smsc = self.smsc
        retry_at = self.retry_at
        return BindHealth(
            name=self.name,
            state=self.state.value,
            inflight=self.session.inflight if self.session is not None else 0,
            window=smsc.window,
            rate=round(self.pacer.rate, 1),
            ceiling=smsc.tps,
            accepted_per_s=round(self.accepted_rate, 1),
            accepted=self.accepted,
            failed=self.failed,
            throttled=self.throttled,
            timeouts=self.timeouts,
            reconnects=self.reconnects,
            retried=self.retried,
            empty_message_ids=self.empty_message_ids,
            mode=self.mode,
            last_error=self.last_error,
            retry_in=round(max(0.0, retry_at - now), 2) if retry_at is not None else None,
        )


class _BindFailure(BindError):
    """A connect or bind attempt failed; `refused` when retrying soon will not help."""

    def __init__(self, message: str, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class SmppPool:
    """Binds to every configured SMSC and sends parts through whichever bind has room."""

    def __init__(
        self,
        smscs: Sequence[SmscConfig],
        on_outcome: OutcomeHandler,
        on_receipts: ReceiptHandler | None = None,
        *,
        lane_of: LaneOf | None = None,
        on_lost: Callable[[str], None] | None = None,
        max_attempts: int = 3,
        housekeeping_interval: float = HOUSEKEEPING_INTERVAL,
        rng: random.Random | None = None,
    ) -> None:
        if not smscs:
            raise BindError("no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]]")
        names = [s.name for s in smscs]
        if len(set(names)) != len(names):
            raise BindError(f"SMSC names must be unique, got {names}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.smscs = tuple(smscs)
        self.on_outcome = on_outcome
        self.on_receipts = on_receipts
        self.lane_of = lane_of
        self.on_lost = on_lost
        """Told the SMSC's name when a connection to it ends (the receipt recorder forgets
        the ids it gave: a restarted SMSC may give them again)."""
        self.max_attempts = max_attempts
        self.queue: deque[Part] = deque()
        self.stats = PoolStats()
        if not any(s.transmit_binds for s in smscs):
            raise BindError(f"no SMSC can send: every bind of {names} is a receiver")
        self.binds: list[Bind] = [
            Bind(f"{smsc.name}#{i + 1}", smsc, site, Pacer(smsc.tps), smsc.bind_mode)
            for site, smsc in enumerate(self.smscs)
            for i in range(smsc.binds)
        ] + [
            Bind(f"{smsc.name}#r{i + 1}", smsc, site, Pacer(smsc.tps), "receiver")
            for site, smsc in enumerate(self.smscs)
            for i in range(smsc.receivers)
        ]
        self._splitter = policy.SiteSplitter([s.weight for s in self.smscs])
        self._site_count = len(self.smscs)
        self._pins: SitePins[Part] = SitePins(
            [s.response_timeout_s for s in self.smscs], time.monotonic()
        )
        """Parts of multi-part messages to send again through the site that carried them
        (only with several sites: with one, every part goes there anyway)."""
        self._pinning = self._site_count > 1
        self._message = 0
        """The multi-part message being submitted (0: none), numbered from 1."""
        self._messages = 0
        self._bound: list[SmppSession[Part]] = []
        """Sessions bound and not closing, in the order the pump visits them."""
        self._sessions: dict[SmppSession[Part], Bind] = {}
        """Every open connection, bound or not (closed by `close`), and its bind."""
        self._loop = asyncio.get_running_loop()
        self._rng = rng or random.Random()
        self._kick_scheduled = False
        self._turn = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._room_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._drained: asyncio.Future[None] | None = None
        self._outstanding = 0
        self._started = False
        self._closing = False
        self._stopping: asyncio.Future[None] = self._loop.create_future()
        """Resolved by `close`: every bind keeper returns at its next wait (not relying on
        cancellation alone, which `wait_for` can swallow in Python 3.11)."""
        self._tasks: set[asyncio.Task[None]] = set()
        self._housekeeping_interval = housekeeping_interval
        self._clock_offset = time.time() - time.monotonic()
        self._rate_mark_at = time.monotonic()
        self._lanes: list[Lane] = []
        """Lanes with a deadline, not yet expired (the pump expires them)."""
        self._next_deadline = math.inf
        """The earliest of their deadlines: one comparison per pass in the hot path."""

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Open every bind; BindError (saying why, per bind) unless at least one came up.

        Binds that failed keep retrying in the background with backoff.
        """
        if self._started:
            raise RuntimeError("the pool is already started")
        self._started = True
        first_attempts: list[asyncio.Future[BindError | None]] = []
        for bind in self.binds:
            first: asyncio.Future[BindError | None] = self._loop.create_future()
            first_attempts.append(first)
            self._spawn(self._keep_bound(bind, first))
        pending: set[asyncio.Future[BindError | None]] = set(first_attempts)
        while pending and not any(f.done() and f.result() is None for f in first_attempts):
            _done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            # One bind is up: sending can start. Give the others a moment, not their timeout
            # (an unreachable site must not delay a live alert); they join when they come up.
            await asyncio.wait(pending, timeout=START_GRACE)
        if not any(f.done() and f.result() is None for f in first_attempts):
            await self.close()
            reasons = list(dict.fromkeys(str(f.result()) for f in first_attempts))
            raise BindError("no bind to any SMSC came up: " + "; ".join(reasons))
        self._spawn(self._housekeeping())

    async def close(self, timeout: float = 5.0) -> None:
        """Stop sending, give parts in flight a moment to be answered, unbind every session.

        Parts still queued stay queued (`cancel()` returns their tags); parts still in flight
        when the connections end go back to the queue too, unrecorded (or `NOT_SENT` when
        their lane halted): their outcome is unknown, so a resumed broadcast sends them again
        rather than losing them.
        """
        if self._closing:
            return
        self._closing = True
        self._stopping.set_result(None)
        deadline = self._loop.time() + timeout
        if any(s.inflight for s in self._bound):
            self._drained = self._loop.create_future()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained, min(2.0, timeout / 2))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        sessions = list(self._sessions)
        left = max(0.1, deadline - self._loop.time())
        await asyncio.gather(
            *(s.unbind(timeout=min(1.0, left / 2)) for s in sessions), return_exceptions=True
        )
        for bind in self.binds:
            bind.state = BindState.CLOSED
        for _threshold, waiter in self._room_waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._room_waiters.clear()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("pool_task_failed", task=repr(task), error=repr(task.exception()))

    def _new_session(self, bind: Bind) -> SmppSession[Part]:
        session = SmppSession(
            self,
            name=bind.name,
            smsc=bind.smsc,
            site=bind.site,
            pacer=bind.pacer,
            bind_mode=bind.mode,
        )
        self._sessions[session] = bind
        return session

    async def _open(self, bind: Bind) -> SmppSession[Part]:
        """One attempt: connect and bind; `_BindFailure` saying why not."""
        smsc = bind.smsc
        timeout = smsc.response_timeout_s
        where = f"{smsc.host}:{smsc.port}"
        try:
            _transport, session = await asyncio.wait_for(
                self._loop.create_connection(lambda: self._new_session(bind), smsc.host, smsc.port),
                timeout,
            )
        except TimeoutError:
            raise _BindFailure(f"{bind.name}: cannot connect to {where}: timed out") from None
        except OSError as exc:
            raise _BindFailure(
                f"{bind.name}: cannot connect to {where}: {exc.strerror or exc}"
            ) from exc
        try:
            await asyncio.wait_for(asyncio.shield(session.bound), timeout)
        except TimeoutError:
            session.abort("no bind_resp")
            raise _BindFailure(
                f"{bind.name}: {where} did not answer the bind within {timeout:g} s"
            ) from None
        except BindError as exc:
            raise _BindFailure(str(exc), refused=session.refused) from None
        return session

    async def _keep_bound(self, bind: Bind, first: asyncio.Future[BindError | None]) -> None:
        """Keep one bind up for the pool's lifetime: connect, bind, watch, back off, repeat."""
        try:
            await self._bind_loop(bind, first)
        finally:
            if not first.done():
                first.set_result(BindError(f"{bind.name}: stopped before its first bind"))

    async def _bind_loop(self, bind: Bind, first: asyncio.Future[BindError | None]) -> None:
        while not self._closing:
            bind.state = BindState.CONNECTING
            try:
                session = await self._open(bind)
            except _BindFailure as exc:
                bind.failures += 1
                bind.last_error = str(exc)
                self.stats.bind_failures += 1
                if not first.done():
                    first.set_result(exc)
                delay = policy.reconnect_delay(bind.failures, refused=exc.refused, rng=self._rng)
                bind.state = BindState.REFUSED if exc.refused else BindState.BACKOFF
                bind.retry_at = time.monotonic() + delay
                report = log.error if exc.refused else log.warning
                report(
                    "bind_failed",
                    bind=bind.name,
                    error=str(exc),
                    attempt=bind.failures,
                    retry_in_s=round(delay, 2),
                )
                await self._pause(delay)
                continue
            if self._closing:
                return  # `close` unbinds it
            bind.state = BindState.BOUND
            bind.session = session
            bind.retry_at = None
            self._bound.append(session)
            if not first.done():
                first.set_result(None)
            log.info("bind_up", bind=bind.name, smsc=bind.smsc.name, after_failures=bind.failures)
            self.kick()
            await asyncio.wait(
                (session.closed, self._stopping), return_when=asyncio.FIRST_COMPLETED
            )
            if self._closing:
                return
            if session in self._bound:  # lost before this task resumed to register it
                self._bound.remove(session)
            bind.session = None
            lived = time.monotonic() - session.opened_at
            carried = session.answered > 0 or lived >= policy.STABLE_SESSION
            bind.failures = 0 if carried else bind.failures + 1
            bind.last_error = session.close_reason
            bind.reconnects += 1
            self.stats.reconnects += 1
            delay = policy.reconnect_delay(bind.failures, refused=False, rng=self._rng)
            bind.state = BindState.BACKOFF
            bind.retry_at = time.monotonic() + delay
            log.warning(
                "bind_lost",
                bind=bind.name,
                reason=session.close_reason,
                reconnect_in_s=round(delay, 2),
            )
            await self._pause(delay)

    async def _pause(self, delay: float) -> None:
        """Sleep `delay` seconds, or less if the pool closes meanwhile."""
        await asyncio.wait((self._stopping,), timeout=delay)

    # -- feeding -----------------------------------------------------------------------------

    def open_lane(self, expires_at: float | None = None) -> Lane:
        """A lane for parts that stop together; none of them is written at or after
        `expires_at` (time.time() seconds; None: no deadline) nor once it is halted."""
        if expires_at is None:
            return Lane()
        lane = Lane(expires_at - self._clock_offset)
        self._lanes.append(lane)
        self._next_deadline = min(self._next_deadline, lane.deadline)
        return lane

    def submit(
        self,
        templates: tuple[SubmitTemplate, ...],
        destination: bytes,
        tag: object,
        more: bool = False,
    ) -> None:
        """Queue one part; its outcome arrives through `on_outcome`. Never blocks.

        `templates` holds one template per SMSC, in `smscs` order (each with that SMSC's
        source address, TON/NPI and registered_delivery); `destination` comes from
        `codec.destination_bytes`. `more` says the next part submitted belongs to the same
        message: submit a message's parts one after the other, in one go (a message whose
        rest is not queued by the next loop pass is sent as if it ended there).
        """
        if len(templates) != self._site_count:
            raise ValueError(
                f"{len(templates)} templates for {self._site_count} SMSCs: give one per SMSC"
            )
        message = self._message
        if more or message:
            if not message:
                self._messages = message = self._messages + 1
            self._message = message if more else 0
            self.queue.append(Part(templates, destination, tag, message if more else -message))
        else:
            self.queue.append(Part(templates, destination, tag))
        self._outstanding += 1
        self.stats.submitted += 1
        if self._outstanding == 1:
            self._idle.clear()
        if not self._kick_scheduled:
            self._kick_scheduled = True
            self._loop.call_soon(self._pump_all)

    @property
    def backlog(self) -> int:
        """Parts queued (pinned to a site or not) and not yet written to any bind."""
        return len(self.queue) + self._pins.count

    @property
    def outstanding(self) -> int:
        """Parts submitted and without a final outcome yet (queued or in flight)."""
        return self._outstanding

    @property
    def inflight(self) -> int:
        """Parts written and not yet answered, over every bind."""
        return sum(s.inflight for s in self._bound)

    async def wait_for_room(self, max_backlog: int) -> None:
        """Back-pressure: return once fewer than `max_backlog` parts are queued (`backlog`)."""
        while self.backlog >= max_backlog and not self._closing:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._room_waiters.append((max_backlog, waiter))
            await waiter

    def _wake_room_waiters(self) -> None:
        backlog = self.backlog
        still: list[tuple[int, asyncio.Future[None]]] = []
        for threshold, waiter in self._room_waiters:
            if backlog < threshold:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                still.append((threshold, waiter))
        self._room_waiters = still

    async def drain(self) -> None:
        """Wait until every submitted part has a final outcome (or was cancelled)."""
        await self._idle.wait()

    def cancel(self, which: Callable[[object], bool] | None = None) -> list[object]:
        """Drop the queued (not yet written) parts whose tag `which` picks (every one when it
        is None); return their tags. In-flight ones finish. Several callers share a pool: each
        cancels its own."""
        if which is None:
            dropped = list(self.queue)
            self.queue.clear()
        else:
            dropped = [part for part in self.queue if which(part.tag)]
            if dropped:
                kept = [part for part in self.queue if not which(part.tag)]
                self.queue.clear()
                self.queue.extend(kept)
        pinned = self._pins.clear(None if which is None else lambda part: which(part.tag))
        tags = [part.tag for part in dropped]
        tags.extend(part.tag for part in pinned)
        self._outstanding -= len(tags)
        self.stats.cancelled += len(tags)
        if self._outstanding == 0:
            self._idle.set()
        self._wake_room_waiters()
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
        """Give each bound session the parts pinned to its site, then its share of the queue,
        as far as its room allows."""
        self._kick_scheduled = False
        queue = self.queue
        if self._closing or not (queue or self._pins.count):
            return
        now = time.monotonic()
        if now >= self._next_deadline:
            self._expire_lanes(now)  # before anything is written: never a part past its deadline
        takers, rooms = self._rooms(now)
        if takers:
            if self._pins.count:
                self._send_pinned(takers, rooms, now)
            if queue:
                self._send_queued(takers, rooms, now)
        if self._room_waiters:
            self._wake_room_waiters()

    def _send_queued(self, takers: list[SmppSession[Part]], rooms: list[int], now: float) -> None:
        """Split the queue between `takers` by site weight, in whole messages, and send."""
        queue = self.queue
        sites = [session.site for session in takers]
        shares = policy.allocate(len(queue), rooms, sites, self._splitter)
        shares = policy.whole_messages(
            queue,
            shares,
            [session.window_room for session in takers],
            [not session.inflight for session in takers],
        )
        popleft = queue.popleft
        sent = 0
        for session, share in zip(takers, shares, strict=True):
            if share:
                session.send([popleft() for _ in range(share)], now, bool(queue))
                sent += share
        self.stats.sent += sent

    def _send_pinned(self, takers: list[SmppSession[Part]], rooms: list[int], now: float) -> None:
        """Each session first sends the parts pinned to its site; `rooms` keeps what is left."""
        pins = self._pins
        sent = 0
        for i, session in enumerate(takers):
            parts = pins.take(session.site, rooms[i])
            if parts:
                session.send(parts, now, bool(pins.count or self.queue))
                rooms[i] -= len(parts)
                sent += len(parts)
        self.stats.sent += sent

    def _rooms(self, now: float) -> tuple[list[SmppSession[Part]], list[int]]:
        """The sessions that may send now and how much each, starting one further each pass
        (so that no bind of a site is always served first)."""
        bound = self._bound
        count = len(bound)
        if count > 1:
            self._turn = turn = (self._turn + 1) % count
            bound = bound[turn:] + bound[:turn]
        takers: list[SmppSession[Part]] = []
        rooms: list[int] = []
        for session in bound:
            room = session.room(now)
            if room:
                takers.append(session)
                rooms.append(room)
        return takers, rooms

    # -- what sessions report (`session.SessionOwner`) -----------------------------------------

    def answered(
        self, session: SmppSession[Part], outcomes: Sequence[Outcome[Part]], now: float
    ) -> None:
        """Final outcomes of parts answered in one read."""
        self._report(self._sessions[session], outcomes, now)

    def throttled(self, session: SmppSession[Part], part: Part) -> None:
        """A throttled part goes back to be sent again (`_requeue`): never given up while its
        lane runs; once it is halted or expired, the part is `NOT_SENT`."""
        self.stats.throttled += 1
        bind = self._sessions[session]
        bind.throttled += 1
        now = time.monotonic()
        if self._closed_lane(part, now):
            self._not_sent(bind, (part,), now)
        else:
            self._requeue(part, session.site)
        if self._closing:
            self._check_drained()

    def receipts(self, session: SmppSession[Part], receipts: Sequence[Receipt]) -> None:
        self.stats.receipts += len(receipts)
        if self.on_receipts is not None:
            try:
                self.on_receipts(receipts, session.smsc.name)
            except Exception:
                log.exception("on_receipts_failed", bind=session.name, receipts=len(receipts))

    def noted(self, event: Event) -> None:
        self.stats.count(event)

    def lost(self, session: SmppSession[Part], orphans: list[Part]) -> None:
        """A connection ended: forget the session, give back what it had in flight."""
        if self.on_lost is not None:
            try:
                self.on_lost(session.smsc.name)
            except Exception:
                log.exception("on_lost_failed", bind=session.name)
        bind = self._sessions.pop(session)
        if session in self._bound:
            self._bound.remove(session)
        if bind.session is session:
            bind.session = None
        if orphans:
            log.warning(
                "bind_lost_inflight", bind=session.name, parts=len(orphans), closing=self._closing
            )
            self._give_back(orphans, bind, time.monotonic())
        if self._closing:
            self._check_drained()

    # -- outcomes ------------------------------------------------------------------------------

    def _take_back(self, bind: Bind, part: Part, status: int, now: float) -> bool:
        """A part answered with a transient error of its SMSC (`retry_statuses`) goes back to
        be sent again, within the SMSC's `retry_limit` and unless its lane is closed or the
        pool closing; False: its error is final."""
        if part.retries >= bind.smsc.retry_limit or self._closing or self._closed_lane(part, now):
            return False
        part.retries += 1
        bind.retried += 1
        stats = self.stats
        stats.retried_by_status[status] = stats.retried_by_status.get(status, 0) + 1
        self._requeue(part, bind.site)
        self.kick()
        return True

    def _empty_message_id(self, bind: Bind) -> None:
        """An accepted part without a usable message_id: an SMSC fault, counted in health;
        logged once per bind (its receipts cannot be matched, each would say so again)."""
        bind.empty_message_ids += 1
        self.stats.empty_message_ids += 1
        if bind.empty_message_ids == 1:
            log.error(
                "smsc_empty_message_id",
                bind=bind.name,
                smsc=bind.smsc.name,
                hint="parts accepted without a message_id: their receipts cannot be matched",
            )

    def _report(self, bind: Bind, outcomes: Sequence[Outcome[Part]], now: float) -> None:
        """Final outcomes: counted, each reported once through `on_outcome` (a transient
        error within its retry limit is no outcome: the part goes back, `_take_back`)."""
        stats = self.stats
        on_outcome = self.on_outcome
        smsc = bind.smsc.name
        retryable = bind.smsc.retry_status_set
        offset = self._clock_offset
        answered_at = now + offset
        accepted = 0
        retried = 0
        for part, status, message_id in outcomes:
            # Copies the SMSC may hold: each unanswered write, and this one if accepted.
            duplicates = part.attempts - (status != 0)
            if status == 0:
                accepted += 1
                if not message_id:
                    self._empty_message_id(bind)
            else:
                if status in retryable and self._take_back(bind, part, status, now):
                    retried += 1
                    continue
                if duplicates < 0:
                    duplicates = 0
                if status != NOT_SENT:
                    bind.failed += 1
                    stats.failed += 1
                    stats.failed_by_status[status] = stats.failed_by_status.get(status, 0) + 1
            if duplicates:
                stats.possible_duplicates += duplicates
            try:
                on_outcome(
                    part.tag,
                    status,
                    message_id,
                    smsc,
                    part.submitted_at + offset,
                    answered_at,
                    duplicates,
                )
            except Exception:
                log.exception("on_outcome_failed", status=status)
        stats.accepted += accepted
        bind.accepted += accepted
        self._outstanding -= len(outcomes) - retried
        if not self._outstanding:
            self._idle.set()
        if self._closing:
            self._check_drained()

    def _give_back(self, parts: list[Part], bind: Bind, now: float) -> None:
        """Parts that got no answer: sent again (`_requeue`), failed after max_attempts, or
        `NOT_SENT` once their lane is halted or expired."""
        for part in reversed(parts):
            part.attempts += 1
            if part.attempts >= self.max_attempts and not self._closing:
                self._report(bind, ((part, NO_RESPONSE, None),), now)
            elif self._closed_lane(part, now):
                self._not_sent(bind, (part,), now)
            else:
                self.stats.requeued_inflight += 1
                self._requeue(part, bind.site)
        self.kick()

    def _closed_lane(self, part: Part, now: float) -> bool:
        """Whether `part` belongs to a lane halted or past its deadline."""
        if self.lane_of is None:
            return False
        lane = self.lane_of(part.tag)
        return lane is not None and lane.closed(now)

    def _not_sent(self, bind: Bind, parts: Sequence[Part], now: float) -> None:
        """Parts of a halted or expired lane, never written again: `NOT_SENT`."""
        self.stats.not_sent += len(parts)
        self._report(bind, [(part, NOT_SENT, None) for part in parts], now)

    def _expire_lanes(self, now: float) -> None:
        """Report the queued parts of the lanes past their deadline `NOT_SENT`.

        A lane stays watched (checked on every pass, its new parts dropped) until its owner
        halts it: until then the owner may still submit (its own expiry timer may fire after
        this pass); once halted, the owner submits nothing more and the lane is forgotten.
        """
        expired = [lane for lane in self._lanes if now >= lane.deadline]
        self._lanes = [lane for lane in self._lanes if not lane.halted]
        self._next_deadline = min((lane.deadline for lane in self._lanes), default=math.inf)
        lane_of = self.lane_of
        if lane_of is None:
            return
        closed = set(expired)
        dropped = [part for part in self.queue if lane_of(part.tag) in closed]
        if dropped:
            kept = [part for part in self.queue if lane_of(part.tag) not in closed]
            self.queue.clear()
            self.queue.extend(kept)
        dropped.extend(self._pins.clear(lambda part: lane_of(part.tag) in closed))
        if dropped:
            log.warning("lane_expired", parts_not_sent=len(dropped))
            self._not_sent(self.binds[0], dropped, now)
            self._wake_room_waiters()

    def _requeue(self, part: Part, site: int) -> None:
        """A part to send again: pinned to `site`, which carried the rest of its message, or,
        for a single-part message (or a pool of one site), to the front of the queue."""
        message = part.message
        if not message:
            self.queue.appendleft(part)
        elif self._pinning:
            self._pins.pin(site, part)
        else:
            part.message = -abs(message)  # sent on its own: it holds no other part to it
            self.queue.appendleft(part)

    def _release_pinned(self, now: float) -> None:
        """Parts pinned to a site that has stayed without a bind past its response timeout go
        to the front of the queue, for any site: their messages may arrive incomplete."""
        released = self._pins.release(now, {session.site for session in self._bound})
        for site, parts in released.items():
            messages = len({abs(part.message) for part in parts})
            self.stats.split_messages += messages
            for part in reversed(parts):
                part.message = -abs(part.message)  # sent on its own: it holds no other part
                self.queue.appendleft(part)
            smsc = self.smscs[site]
            log.warning(
                "pinned_parts_released",
                smsc=smsc.name,
                parts=len(parts),
                messages_maybe_incomplete=messages,
                unbound_for_s=round(self._pins.down_for(site, now), 2),
            )

    def _check_drained(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done() and not any(s.inflight for s in self._bound):
            drained.set_result(None)

    # -- housekeeping --------------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(self._housekeeping_interval)
            self.housekeeping(time.monotonic())

    def housekeeping(self, now: float) -> None:
        """Response timeouts, stalls and keep-alives; run every `housekeeping_interval`."""
        for session in list(self._bound):
            if session.state is ConnectionState.BOUND:
                self._watch(session, self._sessions[session], now)
        if now - self._rate_mark_at >= RATE_INTERVAL:
            self._measure_rates(now)
        if self._pinning:
            self._release_pinned(now)
        if self.queue or self._pins.count:
            self.kick()

    def _watch(self, session: SmppSession[Part], bind: Bind, now: float) -> None:
        """One bound session: drop it if dead, resend what it left unanswered, keep it alive."""
        if not self._check_responses(session, bind, now):
            return
        connection = session.connection
        timeout = bind.smsc.response_timeout_s
        if connection.enquire_sent_at is not None:
            if now - connection.enquire_sent_at > timeout:
                self.stats.stalls += 1
                session.abort(f"enquire_link unanswered for {timeout:g} s")
                return
        elif now - connection.last_received >= bind.smsc.enquire_link_s:
            session.enquire_link(now)
        bind.state = BindState.STALLED if connection.stalled(now) else BindState.BOUND

    def _check_responses(self, session: SmppSession[Part], bind: Bind, now: float) -> bool:
        """Parts unanswered past the response timeout: False if that dropped the session."""
        connection = session.connection
        timeout = bind.smsc.response_timeout_s
        oldest = connection.oldest_inflight_sent()
        if oldest is None or now - oldest <= timeout:
            return True
        if connection.last_received < oldest:
            # Nothing at all came back since that part was sent: the bind is dead.
            lost = session.inflight
            self.stats.timeouts += lost
            self.stats.stalls += 1
            bind.timeouts += lost
            session.abort(f"nothing received for {timeout:g} s, {lost} parts in flight")
            return False
        # The SMSC talks but left these parts unanswered: send them again elsewhere, and if it
        # has been silent lately, ask whether it is still there.
        expired = connection.expire(now, timeout)
        self.stats.timeouts += len(expired)
        bind.timeouts += len(expired)
        log.warning("parts_timed_out", bind=session.name, parts=len(expired))
        self._give_back(expired, bind, now)
        if connection.enquire_sent_at is None and connection.silent(now):
            session.enquire_link(now)
        return True

    def _measure_rates(self, now: float) -> None:
        """Accepted parts/s of each bind since the last measure, for `health()`."""
        elapsed = now - self._rate_mark_at
        self._rate_mark_at = now
        for bind in self.binds:
            bind.accepted_rate = (bind.accepted - bind._rate_mark) / elapsed
            bind._rate_mark = bind.accepted

    # -- health --------------------------------------------------------------------------------

    def health(self) -> tuple[SmscHealth, ...]:
        """Per-SMSC and per-bind state, for progress displays and `/health` endpoints."""
        now = time.monotonic()
        return tuple(
            smsc_health(smsc, [b.health(now) for b in self.binds if b.site == site])
            for site, smsc in enumerate(self.smscs)
        )
