"""One SMPP bind as an `asyncio.Protocol`: the I/O around a sans-I/O `SmppConnection`.

The protocol lives in `connection.py`; the session only does what needs the event loop: it
feeds what it reads to the connection and writes what the connection returns, reads the clock,
arms a timer to wake its owner when pacing tokens are back, and resolves futures when the bind
is up (`bound`), the connection has ended (`closed`) and the SMSC answered our unbind.

Whoever feeds the session (the pool) implements `SessionOwner`, a narrow interface: the session
reports outcomes, throttled parts, receipts, protocol anomalies and the parts in flight when
the connection ends, and asks for a pump (`kick`). It never sees the owner's queue or counters,
so this module does not import the pool. Parts are handed to `send` by the owner, which asks
`room` first; the session writes them with one `transport.write`.

How a part ends (the connection sorts the answers, the owner records them):

- accepted (status 0), or any other status, vendor codes included, or a generic_nack naming
  it: a final outcome, `SessionOwner.answered`; the bind stays up;
- ESME_RTHROTTLED / ESME_RMSGQFUL: the pacer counts it (and slows down once throttles are
  more than noise, `pacing.py`) and `SessionOwner.throttled` takes the part back (never
  counted as an attempt; sent again unless its caller halted);
- still in flight when the connection ends: `SessionOwner.lost` gets it back.

A broken length field means the stream cannot be resynchronised: the session drops the
connection and its owner reconnects. The session itself never sleeps and starts no task.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Final, Generic, Protocol

import structlog

from broadcaster.errors import BindError
from broadcaster.settings import SmscConfig
from broadcaster.smpp import policy
from broadcaster.smpp.connection import (
    AlertNotified,
    BindAccepted,
    BindRefused,
    ConnectionState,
    DeliverSmMalformed,
    EnquireLinkAnswered,
    Event,
    GenericNack,
    Outcome,
    P,
    ReceiptUnreadable,
    SmppConnection,
    StreamCorrupt,
    UnbindAnswered,
    UnbindRequested,
    UnexpectedResponse,
    UnknownCommand,
)
from broadcaster.smpp.constants import command_name, status_name
from broadcaster.smpp.pacing import Pacer
from broadcaster.smpp.receipts import Receipt

log = structlog.get_logger(__name__)

PACING_WAKE: Final = 0.005
"""A bind out of tokens wakes up when this many seconds' worth of tokens are back."""


class SessionOwner(Protocol[P]):
    """What a session needs from whoever feeds it: the pool implements it."""

    def answered(self, session: SmppSession[P], outcomes: Sequence[Outcome[P]], now: float) -> None:
        """Final outcomes of parts, in the order they were answered (one read's worth)."""

    def throttled(self, session: SmppSession[P], part: P) -> None:
        """A part the SMSC asked us to send again later (the session's pacer has slowed)."""

    def receipts(self, session: SmppSession[P], receipts: Sequence[Receipt]) -> None:
        """Delivery receipts, already acknowledged (one read's worth, in order)."""

    def noted(self, event: Event) -> None:
        """A protocol anomaly to count (the session has logged it)."""

    def lost(self, session: SmppSession[P], orphans: list[P]) -> None:
        """The connection ended with these parts unanswered (oldest first)."""

    def kick(self) -> None:
        """The session may take parts again: pump soon."""


class SmppSession(asyncio.Protocol, Generic[P]):
    """A single connection of one bind; created by its owner, which owns reconnection."""

    def __init__(
        self,
        owner: SessionOwner[P],
        *,
        name: str,
        smsc: SmscConfig,
        site: int,
        pacer: Pacer,
        bind_mode: str = "",
    ) -> None:
        self.owner = owner
        self.name = name
        self.smsc = smsc
        self.site = site
        """The number of its SMSC in the pool: which of a part's templates it writes."""
        self.pacer = pacer
        self.opened_at = time.monotonic()
        self.connection: SmppConnection[P] = SmppConnection(
            system_id=smsc.system_id,
            password=smsc.password,
            system_type=smsc.system_type,
            bind_mode=bind_mode or smsc.bind_mode,
            window=smsc.window,
            response_timeout=smsc.response_timeout_s,
            template_index=site,
            now=self.opened_at,
        )
        self.sent = 0
        """submit_sm PDUs written on this connection."""
        self.answered = 0
        """submit_sm answered on this connection (any status): it carried traffic, so losing
        it is not a failed attempt (the pool reconnects at once)."""
        loop = asyncio.get_running_loop()
        self.bound: asyncio.Future[None] = loop.create_future()
        """Resolved by a successful bind_resp; BindError if refused or the connection ends."""
        self.closed: asyncio.Future[None] = loop.create_future()
        """Resolved when the connection has ended (for any reason)."""
        self.refused = False
        """True when the SMSC refused the bind for a reason a quick retry will not fix."""
        self.close_reason: str | None = None
        self._transport: asyncio.Transport | None = None
        self._writable = True
        self._lost = False
        self._unbound: asyncio.Future[None] | None = None
        self._pacing_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        """Armed when the SMSC unbound us with parts in flight: close when it fires."""

    @property
    def state(self) -> ConnectionState:
        return self.connection.state

    @property
    def inflight(self) -> int:
        """Parts written on this connection and not answered yet."""
        return len(self.connection.inflight)

    # -- lifecycle ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.write(self.connection.bind())

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        if self._pacing_timer is not None:
            self._pacing_timer.cancel()
            self._pacing_timer = None
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        if self.close_reason is None:
            self.close_reason = f"connection lost: {exc}" if exc else "connection closed"
        if not self.bound.done():
            self.bound.set_exception(
                BindError(f"{self.name}: the SMSC closed the connection before answering the bind")
            )
            self.bound.exception()  # retrieved: the pool reads it, or gives up on it
        _resolve(self._unbound)
        self.owner.lost(self, self.connection.connection_lost())
        _resolve(self.closed)

    def abort(self, reason: str) -> None:
        """Drop the connection now (stall, protocol violation): in-flight parts go back."""
        if self.close_reason is None:
            self.close_reason = reason
        if not self._lost:
            log.warning("bind_abort", bind=self.name, reason=reason, inflight=self.inflight)
        if self._transport is not None:
            self._transport.abort()

    async def unbind(self, timeout: float = 1.0) -> None:
        """Polite shutdown: unbind, wait for unbind_resp (or not), close; abort if stuck."""
        transport = self._transport
        if transport is None or self.state is ConnectionState.CLOSED:
            return
        if self.state is ConnectionState.BOUND:
            self.close_reason = "unbound"
            self._unbound = asyncio.get_running_loop().create_future()
            transport.write(self.connection.unbind())
            try:
                await asyncio.wait_for(asyncio.shield(self._unbound), timeout)
            except TimeoutError:
                log.info("unbind_unanswered", bind=self.name, timeout=timeout)
        elif self.close_reason is None:
            self.close_reason = "closed before the bind completed"
        transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        except TimeoutError:
            transport.abort()  # the peer does not read: do not wait for a flush that never ends
            await asyncio.shield(self.closed)

    # -- sending -------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self.owner.kick()

    @property
    def window_room(self) -> int:
        """Parts the window admits beyond those in flight: the SMSC refuses any more."""
        connection = self.connection
        return connection.window - len(connection.inflight)

    def room(self, now: float) -> int:
        """Parts this session may send now: window room and pacing tokens (0 if not ready)."""
        if not self._writable:
            return 0
        room = self.connection.room(now)
        if room <= 0:
            return 0
        tokens = self.pacer.available(now)
        if tokens <= 0:
            self._arm_pacing_timer(now)
            return 0
        return room if room < tokens else tokens

    def send(self, parts: Sequence[P], now: float, more_waiting: bool) -> None:
        """Write `parts` (the owner checked `room`) in one write; `more_waiting` says parts
        are still queued, so a bind out of tokens must wake its owner when they are back."""
        assert self._transport is not None
        count = len(parts)
        data = self.connection.submit(parts, now)
        self.sent += count
        pacer = self.pacer
        pacer.take(count, now)
        self._transport.write(data)
        if more_waiting and pacer.exhausted:
            self._arm_pacing_timer(now)

    def enquire_link(self, now: float) -> None:
        """Send a keep-alive; the owner drops the bind if it is not answered in time."""
        if self._transport is None or self.state is not ConnectionState.BOUND:
            return
        self._transport.write(self.connection.enquire_link(now))

    def _arm_pacing_timer(self, now: float) -> None:
        if self._pacing_timer is not None:
            return
        pacer = self.pacer
        delay = pacer.delay_until(now, max(1, int(pacer.rate * PACING_WAKE)))
        self._pacing_timer = asyncio.get_running_loop().call_later(
            max(delay, 0.0005), self._pacing_tick
        )

    def _pacing_tick(self) -> None:
        self._pacing_timer = None
        self.owner.kick()

    # -- receiving -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        received = self.connection.receive_data(data, now)
        if received.replies:
            assert self._transport is not None
            self._transport.write(received.to_send)
        owner = self.owner
        if received.outcomes:
            owner.answered(self, received.outcomes, now)
        for part, status in received.throttled:
            self._throttled(part, status, now)
        if received.accepted:
            self.pacer.on_accepted(now, received.accepted)
        if received.receipts:
            owner.receipts(self, received.receipts)
        for event in received.events:
            self._on_event(event)
        answered = received.answered
        if answered:
            self.answered += answered
            owner.kick()
        if self._drain_timer is not None and not self.connection.inflight:
            self._close_unbound()

    def _throttled(self, part: P, status: int, now: float) -> None:
        if self.pacer.on_throttled(now, part.submitted_at):
            log.info(
                "bind_slowed_down",
                bind=self.name,
                status=status_name(status),
                rate=round(self.pacer.rate, 1),
                capacity_estimate=round(self.pacer.capacity, 1),
            )
        self.owner.throttled(self, part)

    def _on_event(self, event: Event) -> None:
        """What the peer did beyond answering parts and sending receipts."""
        match event:
            case BindAccepted():
                _resolve(self.bound)
            case BindRefused(status=status):
                self._bind_refused(status)
            case EnquireLinkAnswered():
                self.owner.kick()  # it answers: it may take parts again
            case UnbindAnswered():
                _resolve(self._unbound)
            case UnbindRequested():
                self._unbound_by_smsc()
            case StreamCorrupt(error=error):
                self.owner.noted(event)
                log.error("smpp_stream_corrupt", bind=self.name, error=error)
                self.abort(f"corrupt stream: {error}")
            case _:
                _log_anomaly(self.name, event)
                self.owner.noted(event)

    def _bind_refused(self, status: int) -> None:
        self.refused, why = policy.bind_refusal(status)
        smsc = self.smsc
        error = BindError(
            f"{self.name}: {smsc.host}:{smsc.port} refused the "
            f"{self.connection.bind_mode} bind of system_id {smsc.system_id!r}: {why}"
        )
        self.close_reason = str(error)
        if not self.bound.done():
            self.bound.set_exception(error)
        self.abort("bind refused")

    def _unbound_by_smsc(self) -> None:
        """The SMSC unbound us (unbind_resp already written, no part sent any more): wait for
        the answers to the parts in flight, up to the response timeout, then close cleanly;
        only what stayed unanswered goes back to the owner (`lost`: a possible duplicate)."""
        log.warning("smsc_unbound_us", bind=self.name, inflight=self.inflight)
        self.close_reason = "unbound by the SMSC"
        if not self.connection.inflight:
            self._close_unbound()
        elif self._drain_timer is None:
            self._drain_timer = asyncio.get_running_loop().call_later(
                self.smsc.response_timeout_s, self._close_unbound
            )

    def _close_unbound(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        if self._transport is not None and not self._lost:
            self._transport.close()


def _resolve(future: asyncio.Future[None] | None) -> None:
    """Resolve a future of the session's, if there is one and nobody did yet."""
    if future is not None and not future.done():
        future.set_result(None)


def _log_anomaly(bind: str, event: Event) -> None:
    """Log what deserves a line; the rest (late responses, MO messages...) is only counted."""
    match event:
        case UnexpectedResponse(command_id=command_id, sequence=sequence):
            log.warning(
                "smpp_unexpected_response",
                bind=bind,
                command=command_name(command_id),
                sequence=sequence,
            )
        case UnknownCommand(command_id=command_id):
            log.warning("smpp_unknown_command", bind=bind, command_id=f"0x{command_id:08X}")
        case GenericNack(status=status, sequence=sequence, named_part=False):
            log.warning(
                "smpp_generic_nack", bind=bind, status=status_name(status), sequence=sequence
            )
        case DeliverSmMalformed(error=error):
            log.warning("deliver_sm_malformed", bind=bind, error=error)
        case ReceiptUnreadable(text=text):
            log.warning("receipt_unreadable", bind=bind, text=text[:80])
        case AlertNotified(source=source):
            log.info("smpp_alert_notification", bind=bind, source=source)
