"""One SMPP bind as an `asyncio.Protocol`: windowed, paced, batched writes, never forgetting a part.

The pool decides how many queued parts a session takes in each pass (`room`, then `send`); the
session pops them, encodes them by splicing (`codec.SubmitTemplate`) and writes them in one
`transport.write`. Responses come back through `data_received`:

- accepted (status 0): reported to the pool with the message id, kept as the exact string;
- ESME_RTHROTTLED / ESME_RMSGQFUL: the pacer slows down, the part goes back to the front of the
  queue (never given up, never counted as an attempt);
- any other status, vendor codes included, or a generic_nack naming the part: a final failure
  of that part, reported with its status; the bind stays up.

Requests from the SMSC are answered: deliver_sm (receipts parsed tolerantly and handed to the
pool), enquire_link, unbind; anything else gets generic_nack. A broken length field means the
stream cannot be resynchronised: the connection is dropped and the pool reconnects.

When the connection ends, every part still in flight is handed back to the pool, which re-queues
it (a possible duplicate, counted) or records it as failed; the pool also expires parts that get
no response in time. The session itself never sleeps and starts no task.
"""

from __future__ import annotations

import asyncio
import enum
import time
from typing import TYPE_CHECKING, Final

import structlog

from broadcaster.errors import BindError, SmppProtocolError
from broadcaster.smpp import codec, policy
from broadcaster.smpp.constants import (
    RESPONSE_BIT,
    TRANSIENT_STATUSES,
    CommandId,
    Status,
    command_name,
    status_name,
)
from broadcaster.smpp.receipts import parse_receipt
from broadcaster.text.encoding import decode_short_message

if TYPE_CHECKING:
    from broadcaster.smpp.pool import Bind, Part, SmppPool

log = structlog.get_logger(__name__)

_SUBMIT_SM_RESP: Final = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM: Final = int(CommandId.DELIVER_SM)
_ENQUIRE_LINK: Final = int(CommandId.ENQUIRE_LINK)
_ENQUIRE_LINK_RESP: Final = int(CommandId.ENQUIRE_LINK_RESP)
_GENERIC_NACK: Final = int(CommandId.GENERIC_NACK)
_UNBIND: Final = int(CommandId.UNBIND)
_UNBIND_RESP: Final = int(CommandId.UNBIND_RESP)
_BIND_COMMAND: Final = {
    "transmitter": CommandId.BIND_TRANSMITTER,
    "transceiver": CommandId.BIND_TRANSCEIVER,
}
_BIND_RESP: Final = {
    "transmitter": int(CommandId.BIND_TRANSMITTER_RESP),
    "transceiver": int(CommandId.BIND_TRANSCEIVER_RESP),
}
_TRANSIENT: Final = frozenset(int(s) for s in TRANSIENT_STATUSES)
_HEADER_LENGTH: Final = codec.HEADER_LENGTH
_MESSAGE_ID_END: Final = codec.HEADER_LENGTH + codec.MESSAGE_ID_SIZE
_MAX_SEQUENCE: Final = 0x7FFFFFFF
PACING_WAKE: Final = 0.005
"""A bind out of tokens wakes up when this many seconds' worth of tokens are back."""
LATENCY_GAIN: Final = 0.1
"""Weight of the newest sample in the moving average of response latency."""


class SessionState(enum.Enum):
    CONNECTING = "connecting"
    BINDING = "binding"
    BOUND = "bound"
    UNBINDING = "unbinding"
    CLOSED = "closed"


class SmppSession(asyncio.Protocol):
    """A single connection of one bind; created by the pool, which owns reconnection."""

    def __init__(self, pool: SmppPool, bind: Bind) -> None:
        self.pool = pool
        self.bind = bind
        self.smsc = bind.smsc
        self.name = bind.name
        self.site = bind.site
        self.pacer = bind.pacer
        self.window = bind.smsc.window
        self.state = SessionState.CONNECTING
        self.inflight: dict[int, Part] = {}
        """Parts written and not answered, by sequence number, oldest first."""
        self.sent = 0
        loop = asyncio.get_running_loop()
        self.bound: asyncio.Future[None] = loop.create_future()
        """Resolved by a successful bind_resp; BindError if refused or the connection ends."""
        self.closed: asyncio.Future[None] = loop.create_future()
        """Resolved when the connection has ended (for any reason)."""
        self.refused = False
        """True when the SMSC refused the bind for a reason a quick retry will not fix."""
        self.close_reason: str | None = None
        self.opened_at = time.monotonic()
        self.last_received = self.opened_at
        self.waiting_since = self.opened_at
        """Time of the last response, or of the first part sent into an empty window."""
        self.latency = 0.0
        """Moving average of submit_sm response latency, seconds."""
        self.stall_after = policy.STALL_MIN
        self.enquire_sent_at: float | None = None
        self._transport: asyncio.Transport | None = None
        self._frames = codec.FrameBuffer()
        self._sequence = 0
        self._writable = True
        self._bind_sequence = 0
        self._unbind_sequence = 0
        self._unbound: asyncio.Future[None] | None = None
        self._pacing_timer: asyncio.TimerHandle | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.state = SessionState.BINDING
        self._bind_sequence = self._next_sequence()
        smsc = self.smsc
        transport.write(
            codec.encode_bind(
                _BIND_COMMAND[smsc.bind_mode],
                self._bind_sequence,
                system_id=smsc.system_id,
                password=smsc.password,
                system_type=smsc.system_type,
            )
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = SessionState.CLOSED
        if self._pacing_timer is not None:
            self._pacing_timer.cancel()
            self._pacing_timer = None
        if self.close_reason is None:
            self.close_reason = f"connection lost: {exc}" if exc else "connection closed"
        if not self.bound.done():
            self.bound.set_exception(
                BindError(f"{self.name}: the SMSC closed the connection before answering the bind")
            )
            self.bound.exception()  # retrieved: the pool reads it, or gives up on it
        if self._unbound is not None and not self._unbound.done():
            self._unbound.set_result(None)
        orphans = list(self.inflight.values())
        self.inflight.clear()
        self.pool.session_lost(self, orphans)
        if not self.closed.done():
            self.closed.set_result(None)

    def abort(self, reason: str) -> None:
        """Drop the connection now (stall, protocol violation): in-flight parts go back."""
        if self.close_reason is None:
            self.close_reason = reason
        if self.state is not SessionState.CLOSED:
            log.warning("bind_abort", bind=self.name, reason=reason, inflight=len(self.inflight))
        if self._transport is not None:
            self._transport.abort()

    async def unbind(self, timeout: float = 1.0) -> None:
        """Polite shutdown: unbind, wait for unbind_resp (or not), close; abort if stuck."""
        transport = self._transport
        if transport is None or self.state is SessionState.CLOSED:
            return
        if self.state is SessionState.BOUND:
            self.state = SessionState.UNBINDING
            self.close_reason = "unbound"
            self._unbind_sequence = self._next_sequence()
            self._unbound = asyncio.get_running_loop().create_future()
            transport.write(codec.encode_unbind(self._unbind_sequence))
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

    def _next_sequence(self) -> int:
        self._sequence = self._sequence + 1 if self._sequence < _MAX_SEQUENCE else 1
        return self._sequence

    # -- flow control --------------------------------------------------------------------------

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self.pool.kick()

    def silent(self, now: float) -> bool:
        """True when no submit_sm_resp came back for longer than the stall threshold."""
        return now - self.waiting_since > self.stall_after

    def stalled(self, now: float) -> bool:
        """True when the SMSC seems not to answer: parts in flight and nothing back for too
        long, or a keep-alive unanswered for as long. Such a bind gets no new parts."""
        if self.inflight and now - self.waiting_since > self.stall_after:
            return True
        sent = self.enquire_sent_at
        return sent is not None and now - sent > self.stall_after

    def room(self, now: float) -> int:
        """Parts this session may send now: window room and pacing tokens (0 if not ready)."""
        if self.state is not SessionState.BOUND or not self._writable:
            return 0
        inflight = len(self.inflight)
        room = self.window - inflight
        if room <= 0:
            return 0
        if inflight and now - self.waiting_since > self.stall_after:
            return 0  # silent with parts in flight: send nothing more until it answers
        if self.enquire_sent_at is not None and now - self.enquire_sent_at > self.stall_after:
            return 0  # a keep-alive unanswered: the same
        tokens = self.pacer.available(now)
        if tokens <= 0:
            self._arm_pacing_timer(now)
            return 0
        return room if room < tokens else tokens

    def send(self, count: int, now: float) -> None:
        """Pop `count` parts from the pool's queue (the pool checked `room`); one write."""
        queue = self.pool.queue
        inflight = self.inflight
        if not inflight:
            self.waiting_since = now
        popleft = queue.popleft
        seq = self._sequence
        chunks: list[bytes] = []
        append = chunks.append
        for _ in range(count):
            part = popleft()
            seq = seq + 1 if seq < _MAX_SEQUENCE else 1
            part.submitted_at = now
            inflight[seq] = part
            append(part.template.encode(seq, part.destination))
        self._sequence = seq
        self.sent += count
        pacer = self.pacer
        pacer.take(count, now)
        assert self._transport is not None
        self._transport.write(b"".join(chunks))
        if queue and pacer.exhausted:
            self._arm_pacing_timer(now)

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
        self.pool.kick()

    def expire(self, now: float, timeout: float) -> list[Part]:
        """Remove and return the parts in flight for longer than `timeout` (oldest first)."""
        expired: list[Part] = []
        inflight = self.inflight
        for sequence, part in list(inflight.items()):
            if now - part.submitted_at <= timeout:
                break
            del inflight[sequence]
            expired.append(part)
        return expired

    def oldest_inflight_sent(self) -> float | None:
        """When the oldest part in flight was written (None: nothing in flight)."""
        for part in self.inflight.values():
            return part.submitted_at
        return None

    def enquire_link(self, now: float) -> None:
        """Send a keep-alive; the pool drops the bind if it is not answered in time."""
        if self._transport is None or self.state is not SessionState.BOUND:
            return
        self.enquire_sent_at = now
        self._transport.write(codec.encode_enquire_link(self._next_sequence()))

    # -- receiving -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        self.last_received = now
        try:
            pdus = self._frames.feed(data)
        except SmppProtocolError as exc:
            self._stream_corrupt(exc)
            return
        pool = self.pool
        record = pool.record
        inflight = self.inflight
        unpack = codec.HEADER_FIELDS.unpack_from
        transient = _TRANSIENT
        accepted = 0
        answered = 0
        latest: Part | None = None
        for pdu in pdus:
            command_id, status, sequence = unpack(pdu, 4)
            if command_id != _SUBMIT_SM_RESP:
                self._on_other(pdu, command_id, status, sequence, now)
                continue
            part = inflight.pop(sequence, None)
            if part is None:
                pool.stats.unexpected_responses += 1  # answered after its timeout, or bogus
                continue
            answered += 1
            latest = part
            if status == 0:
                # message_id: a C-string right after the header (what decode_submit_sm_resp
                # reads, inlined: this runs once per part).
                nul = pdu.find(b"\0", _HEADER_LENGTH, _MESSAGE_ID_END)
                if nul > 0:
                    message_id: str | None = pdu[_HEADER_LENGTH:nul].decode("latin-1")
                else:
                    message_id = None  # accepted, but the id is unreadable: keep it accepted
                    pool.stats.malformed += 1
                accepted += 1
                record(part, 0, message_id, self, now)
            elif status in transient:
                self._throttled(part, status, now)
            else:
                record(part, status, None, self, now)
        if answered:
            self.waiting_since = now
            assert latest is not None
            sample = now - latest.submitted_at
            latency = self.latency
            self.latency = latency + LATENCY_GAIN * (sample - latency) if latency else sample
            self.stall_after = min(policy.stall_after(self.latency), self.smsc.response_timeout_s)
            if accepted:
                self.pacer.on_accepted(now, accepted)
            pool.kick()
        if self._frames.error is not None:
            self._stream_corrupt(self._frames.error)

    def _throttled(self, part: Part, status: int, now: float) -> None:
        if self.pacer.on_throttled(now, part.submitted_at):
            log.info(
                "bind_slowed_down",
                bind=self.name,
                status=status_name(status),
                rate=round(self.pacer.rate, 1),
                capacity_estimate=round(self.pacer.capacity, 1),
            )
        self.pool.requeue_throttled(part, self)

    def _stream_corrupt(self, exc: SmppProtocolError) -> None:
        """A broken length field: the stream cannot be resynchronised; drop and reconnect."""
        self.pool.stats.malformed += 1
        log.error("smpp_stream_corrupt", bind=self.name, error=str(exc))
        self.abort(f"corrupt stream: {exc}")

    def _on_other(
        self, pdu: bytes, command_id: int, status: int, sequence: int, now: float
    ) -> None:
        transport = self._transport
        assert transport is not None
        stats = self.pool.stats
        if command_id & RESPONSE_BIT:
            if sequence == self._bind_sequence and self.state is SessionState.BINDING:
                self._on_bind_resp(command_id, status)
            elif command_id == _ENQUIRE_LINK_RESP:
                self.enquire_sent_at = None
                self.pool.kick()  # it answers: it may take parts again
            elif command_id == _GENERIC_NACK:
                self._on_generic_nack(status, sequence, now)
            elif command_id == _UNBIND_RESP and sequence == self._unbind_sequence:
                if self._unbound is not None and not self._unbound.done():
                    self._unbound.set_result(None)
            else:
                stats.unexpected_responses += 1
                log.warning(
                    "smpp_unexpected_response",
                    bind=self.name,
                    command=command_name(command_id),
                    sequence=sequence,
                )
            return
        if command_id == _DELIVER_SM:
            transport.write(self._answer_deliver_sm(pdu, sequence))
        elif command_id == _ENQUIRE_LINK:
            transport.write(codec.encode_enquire_link_resp(sequence))
        elif command_id == _UNBIND:
            transport.write(codec.encode_unbind_resp(sequence))
            log.warning("smsc_unbound_us", bind=self.name, inflight=len(self.inflight))
            self.state = SessionState.UNBINDING
            self.close_reason = "unbound by the SMSC"
            transport.close()
        else:
            stats.unknown_commands += 1
            log.warning("smpp_unknown_command", bind=self.name, command_id=f"0x{command_id:08X}")
            transport.write(codec.encode_generic_nack(sequence, Status.ESME_RINVCMDID))

    def _on_bind_resp(self, command_id: int, status: int) -> None:
        if command_id != _BIND_RESP[self.smsc.bind_mode] and status == 0:
            status = Status.ESME_RINVCMDID  # a generic_nack or some other answer to our bind
        if status != 0:
            self.refused, why = policy.bind_refusal(status)
            error = BindError(
                f"{self.name}: {self.smsc.host}:{self.smsc.port} refused the "
                f"{self.smsc.bind_mode} bind of system_id {self.smsc.system_id!r}: {why}"
            )
            self.close_reason = str(error)
            if not self.bound.done():
                self.bound.set_exception(error)
            self.abort("bind refused")
            return
        self.state = SessionState.BOUND
        self.waiting_since = time.monotonic()
        if not self.bound.done():
            self.bound.set_result(None)

    def _on_generic_nack(self, status: int, sequence: int, now: float) -> None:
        """The SMSC could not read one of our PDUs: if it was a part, that part's outcome."""
        self.pool.stats.generic_nacks += 1
        part = self.inflight.pop(sequence, None)
        if part is None:
            log.warning(
                "smpp_generic_nack", bind=self.name, status=status_name(status), sequence=sequence
            )
            return
        self.waiting_since = now
        if status in _TRANSIENT:
            self._throttled(part, status, now)
        else:
            self.pool.record(part, status or Status.ESME_RUNKNOWNERR, None, self, now)
        self.pool.kick()

    def _answer_deliver_sm(self, pdu: bytes, sequence: int) -> bytes:
        """Acknowledge a deliver_sm; hand a receipt to the pool; never drop the bind over it."""
        stats = self.pool.stats
        try:
            message = codec.decode_short_message_pdu(pdu)
        except SmppProtocolError as exc:
            stats.malformed += 1
            log.warning("deliver_sm_malformed", bind=self.name, error=str(exc))
            return codec.encode_deliver_sm_resp(sequence, exc.command_status)
        if not message.is_receipt:
            stats.mo_messages += 1  # a subscriber's reply: acknowledged, not our business
            return codec.encode_deliver_sm_resp(sequence, 0)
        text = decode_short_message(message.user_data, message.data_coding)
        receipt = parse_receipt(text, message.tlvs)
        if receipt is None:
            stats.unreadable_receipts += 1
            log.warning("receipt_unreadable", bind=self.name, text=text[:80])
        else:
            self.pool.receipt(receipt, self)
        return codec.encode_deliver_sm_resp(sequence, 0)
