"""The mock SMSC's listener: an asyncio SMPP 3.4 server, strict with its clients, scriptable,
and fast.

One `MockSmsc` listens (127.0.0.1 by default); each TCP connection is a `session.Session`,
which keeps the protocol and asks the pure parts what to answer: `validation` (strict
submit_sm checks), `fastpath` (runs of common valid parts), `binding`, `flow` (window and TPS),
`faults` (one small class per misbehaviour of `MockConfig`), `receipts`. The server holds what
the sessions share: the scenario RNG, the `Record` of what was accepted, message ids, receipts
to schedule, counters, and waiters for tests.

With no scenario knob acting per PDU the fast path runs (`fastpath`); measured here
(loadtest/mock_capacity.py): 400k+ single parts/s on one core. Receipts keep it (scheduled by
the run, written from templates: `receipts`): 250k parts/s per core with every part receipted
and every receipt acknowledged (loadtest/mock_receipts.py).

Message ids are 16 upper-case hex digits from a per-server counter started at a random point:
unique per server, with leading zeros (ids are strings; a client that parses them as numbers
loses them).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, Final

import structlog

from broadcaster.mocksmsc.receipts import DueReceipt, ReceiptScheduler
from broadcaster.mocksmsc.record import Record
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.mocksmsc.session import BOUND, Session
from broadcaster.smpp.constants import command_name, status_name

log = structlog.get_logger("broadcaster.mocksmsc")

DEFAULT_CONFIG: Final = MockConfig()
_STOP_GRACE_S: Final = 2.0
"""How long stop() lets connections close after their unbind before it aborts them."""
CLOSED_BINDS_LISTED: Final = 1_000
"""Closed binds whose figures `/stats` lists, and binds `MockSmsc.binds` keeps: the most recent
(the totals count every one)."""


class MockSmsc:
    """An SMPP 3.4 SMSC for tests, demos, drills and load tests (see the module docstring).

    ::

        smsc = MockSmsc(MockConfig(tps=100, receipts=True, seed=1))
        port = await smsc.start()            # 127.0.0.1, a free port
        ...                                  # bind, submit
        await smsc.wait_for(lambda: smsc.record.parts_received >= 3)
        smsc.record.messages                 # {"33612345678": ["text", ...]}
        smsc.stats_json()
        await smsc.stop()

    Live counters, for tests: `submits` (submit_sm received), `statuses` (submit_sm_resp sent,
    by command_status, 0 included), `malformed` (by reason), `binds` (every bind made, open or
    closed, each with `.parts`), `bound()` (binds open now), `connections` (open sockets).
    """

    def __init__(self, config: MockConfig | None = DEFAULT_CONFIG) -> None:
        self.config = config if config is not None else DEFAULT_CONFIG
        config = self.config
        self.record = Record(keep=config.record)
        self.rng = random.Random(config.seed)
        self.host = ""
        self.port = 0
        self.connections: set[Session] = set()
        """Open connections, bound or not."""
        self.binds: deque[Session] = deque(maxlen=CLOSED_BINDS_LISTED)
        """The successful binds, in order, open or closed (`.parts`, `.mode`, `.name`): the last
        `CLOSED_BINDS_LISTED` (tests read them; a long-running mock must not keep them all)."""
        self.submits = 0
        """submit_sm received (whatever the answer; not those dropped by a fault scenario)."""
        self.statuses: Counter[int] = Counter()
        """submit_sm_resp sent, by command_status (0: accepted)."""
        self.malformed: Counter[str] = Counter()
        """PDUs that broke SMPP 3.4, by reason."""
        self.bind_attempts = 0
        self.binds_refused = 0
        self.disconnects = 0
        self.unbinds_sent = 0
        """SMSC-initiated unbinds (`unbind_after`)."""
        self.unbinds_answered = 0
        """unbind_resp received to those."""
        self.stalls = 0
        self.malformed_replies = 0
        self.last_message_id = self.rng.randrange(1 << 36)
        """The last message id given, as a number (`next_message_id`)."""
        self.first_submit = 0.0
        self.last_submit = 0.0
        """time.monotonic() of the first and the last submit_sm received."""
        self.receipts = ReceiptScheduler(config, self.rng, self.connections, self.notify_waiters)
        self.pending_receipts: dict[str, list[DueReceipt]] = self.receipts.pending
        """Receipts waiting for a receiver or transceiver bind of their system_id."""
        self._server: asyncio.Server | None = None
        self._stats_runner: Any = None
        self._closed_binds: deque[dict[str, Any]] = deque(maxlen=CLOSED_BINDS_LISTED)
        """The figures of the binds closed last (`Session.stats` at their close)."""
        self._closed_receipts: Counter[str] = Counter()
        """Receipts sent, acked and refused on every connection closed."""
        self._connection_count = 0
        self._started = time.monotonic()
        self._waiters: list[asyncio.Future[None]] = []

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port (a free one for port 0)."""
        if self._server is not None:
            raise RuntimeError("the mock SMSC is already started")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_session, host, port)
        self.host = host
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._started = time.monotonic()
        log.info("mock_smsc_listening", host=host, port=self.port, fast=self.config.fast)
        return self.port

    async def stop(self) -> None:
        """Stop listening, unbind and close every connection, stop the stats endpoint."""
        if self._server is not None:
            self._server.close()
        self.receipts.cancel()
        await _close_sessions(list(self.connections))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._stats_runner is not None:
            await self._stats_runner.cleanup()
            self._stats_runner = None
        self._notify()

    async def __aenter__(self) -> MockSmsc:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _new_session(self) -> Session:
        self._connection_count += 1
        return Session(self, self._connection_count)

    # -- waiting (tests) --------------------------------------------------------------------------

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Return once `predicate()` is true; it is checked after every read the server
        processes, delayed answer or receipt released, and connection closed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"mock SMSC: condition not met within {timeout} s")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                if not predicate():
                    raise TimeoutError(f"mock SMSC: condition not met within {timeout} s") from None

    def notify_waiters(self) -> None:
        """Something changed: `wait_for` callers check their predicate again."""
        if self._waiters:
            self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- introspection ----------------------------------------------------------------------------

    def bound(self) -> int:
        """Binds open now."""
        return sum(1 for s in self.connections if s.state == BOUND)

    bound_count = bound

    def next_message_id(self) -> str:
        """A new message id: 16 hex digits, leading zeros kept (ids are strings)."""
        self.last_message_id += 1
        return f"{self.last_message_id:016X}"

    @property
    def receipts_sent(self) -> int:
        return self._closed_receipts["sent"] + sum(s.receipts_sent for s in self.connections)

    @property
    def receipts_dropped(self) -> int:
        """Receipts due but never sent (`receipt_drop_rate`)."""
        return self.receipts.dropped

    def stats_json(self) -> dict[str, Any]:
        """Totals, per-bind figures, statuses, malformed PDUs by reason, receipts."""
        now = time.time()
        binds = [s.stats(now) for s in self.connections if s.bound_at is not None]
        binds = sorted([*self._closed_binds, *binds], key=lambda b: int(b["bind"]))
        parts = self.statuses.get(0, 0)
        active = self.last_submit - self.first_submit
        return {
            "parts": parts,
            "submits": self.submits,
            "parts_per_s": round(parts / active, 1) if active > 0 else None,
            "parts_recorded": self.record.parts_received,
            "messages_recorded": self.record.message_count,
            "incomplete_parts": self.record.incomplete(),
            "duplicate_parts": self.record.duplicate_parts,
            "statuses": {status_name(s): n for s, n in sorted(self.statuses.items())},
            "errors": {status_name(s): n for s, n in sorted(self.statuses.items()) if s},
            "malformed_total": sum(self.malformed.values()),
            "malformed": dict(sorted(self.malformed.items())),
            "malformed_by_reason": dict(sorted(self.malformed.items())),
            "malformed_replies": self.malformed_replies,
            "binds_now": self.bound(),
            "binds_refused": self.binds_refused,
            "connections_now": len(self.connections),
            "connections": self._connection_count,
            "disconnects": self.disconnects,
            "unbinds_sent": self.unbinds_sent,
            "unbinds_answered": self.unbinds_answered,
            "stalls": self.stalls,
            "receipts_sent": self.receipts_sent,
            "receipts": {
                "sent": self.receipts_sent,
                "acked": self._closed_receipts["acked"]
                + sum(s.receipts_acked for s in self.connections),
                "refused": self._closed_receipts["refused"]
                + sum(s.receipts_nacked for s in self.connections),
                "dropped": self.receipts.dropped,
                "scheduled": self.receipts.scheduled,
                "waiting_for_receiver": self.receipts.waiting,
            },
            "uptime_s": round(time.monotonic() - self._started, 3),
            "fast_path": self.config.fast,
            "recording": self.config.record,
            "binds": binds,
        }

    async def serve_stats(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """`GET /stats` (JSON of `stats_json`) over HTTP; returns the port. Stopped by stop()."""
        from aiohttp import web

        async def stats(request: web.Request) -> web.Response:
            return web.json_response(self.stats_json())

        app = web.Application()
        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        self._stats_runner = runner
        return int(runner.addresses[0][1])

    # -- called by sessions -----------------------------------------------------------------------

    def session_closed(self, session: Session) -> None:
        """A connection ended: its figures kept, the session itself let go (a mock that kept
        every one grew to 1.2 GB over 230,000 binds)."""
        self.connections.discard(session)
        self._closed_receipts.update(
            sent=session.receipts_sent,
            acked=session.receipts_acked,
            refused=session.receipts_nacked,
        )
        if session.bound_at is not None:
            self._closed_binds.append(session.stats(time.time()))
        self.notify_waiters()

    def malformed_seen(self, session: Session, reason: str, detail: str, command_id: int) -> None:
        """Count a PDU that broke SMPP 3.4; log the first ten of each reason, then every
        thousandth."""
        count = self.malformed[reason] = self.malformed[reason] + 1
        if count <= 10 or count % 1000 == 0:
            log.warning(
                "mock_smsc_malformed_pdu",
                bind=session.name,
                command=command_name(command_id),
                reason=reason,
                detail=detail,
                count=count,
            )


async def _close_sessions(sessions: list[Session]) -> None:
    """Unbind and close each session; abort those not closed within the grace period."""
    if not sessions:
        return
    for session in sessions:
        session.shutdown()
    _, pending = await asyncio.wait([s.closed for s in sessions], timeout=_STOP_GRACE_S)
    for session in sessions:
        if session.closed in pending and session.transport is not None:
            session.transport.abort()
    if pending:
        await asyncio.wait(pending, timeout=1.0)
