"""One SMPP bind as an `asyncio.Protocol`: windowed, paced, batched writes, never forgetting a part.

The session pulls parts from its pool's queue when it has window room and pacing tokens, encodes
them by splicing (see `codec.SubmitTemplate`) and writes them in one `transport.write` per pass.
Responses come back through `data_received`; a throttled part goes back to the front of the
queue, any other status is final and reported to the pool. When the connection ends, every part
still in flight is handed back to the pool, which re-queues it (a possible duplicate, counted).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog

from broadcaster.errors import BindError, SmppProtocolError
from broadcaster.settings import SmscConfig
from broadcaster.smpp import codec
from broadcaster.smpp.constants import RESPONSE_BIT, TRANSIENT_STATUSES, CommandId, Status
from broadcaster.smpp.pacing import Pacer
from broadcaster.smpp.receipts import parse_receipt
from broadcaster.text.encoding import decode_short_message

if TYPE_CHECKING:
    from broadcaster.smpp.pool import Part, SmppPool

log = structlog.get_logger(__name__)

_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_ENQUIRE_LINK = int(CommandId.ENQUIRE_LINK)
_ENQUIRE_LINK_RESP = int(CommandId.ENQUIRE_LINK_RESP)
_GENERIC_NACK = int(CommandId.GENERIC_NACK)
_UNBIND = int(CommandId.UNBIND)
_UNBIND_RESP = int(CommandId.UNBIND_RESP)
_BIND_COMMAND = {
    "transmitter": CommandId.BIND_TRANSMITTER,
    "transceiver": CommandId.BIND_TRANSCEIVER,
}
_MAX_SEQUENCE = 0x7FFFFFFF


class SessionState(enum.Enum):
    CONNECTING = "connecting"
    BINDING = "binding"
    BOUND = "bound"
    UNBINDING = "unbinding"
    CLOSED = "closed"


class SmppSession(asyncio.Protocol):
    """A single bind to one SMSC; created by the pool, which owns reconnection."""

    def __init__(self, pool: SmppPool, smsc: SmscConfig, name: str, pacer: Pacer) -> None:
        self.pool = pool
        self.smsc = smsc
        self.name = name
        self.pacer = pacer
        self.state = SessionState.CONNECTING
        self.inflight: dict[int, Part] = {}
        self.window = smsc.window
        self._transport: asyncio.Transport | None = None
        self._frames = codec.FrameBuffer()
        self._sequence = 0
        self._writable = True
        self._bound: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._control: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._pacing_timer: asyncio.TimerHandle | None = None
        self._last_received = time.monotonic()
        self.accepted_window: list[float] = []
        self.sent = 0

    # -- lifecycle ---------------------------------------------------------------------------

    async def wait_bound(self, timeout: float) -> None:
        """Wait for bind_resp; BindError if the SMSC refused or did not answer in time."""
        try:
            await asyncio.wait_for(asyncio.shield(self._bound), timeout)
        except TimeoutError:
            self.abort("bind_timeout")
            raise BindError(f"{self.name}: no bind_resp within {timeout:.0f} s") from None

    async def wait_closed(self) -> None:
        await asyncio.shield(self._closed)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self.state = SessionState.BINDING
        seq = self._next_sequence()
        bind = codec.encode_bind(
            _BIND_COMMAND[self.smsc.bind_mode],
            seq,
            system_id=self.smsc.system_id,
            password=self.smsc.password,
            system_type=self.smsc.system_type,
        )
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._control[seq] = fut
        fut.add_done_callback(self._on_bind_resp)
        transport.write(bind)

    def _on_bind_resp(self, fut: asyncio.Future[tuple[int, bytes]]) -> None:
        if fut.cancelled() or fut.exception() is not None:
            return
        status, _pdu = fut.result()
        if status != Status.ESME_ROK:
            if not self._bound.done():
                self._bound.set_exception(
                    BindError(f"{self.name}: bind refused with status 0x{status:08X}")
                )
            self.abort("bind_refused")
            return
        self.state = SessionState.BOUND
        if not self._bound.done():
            self._bound.set_result(None)
        log.info("bind_up", bind=self.name, smsc=self.smsc.name)
        self.pool.session_ready(self)

    def connection_lost(self, exc: Exception | None) -> None:
        previous = self.state
        self.state = SessionState.CLOSED
        if self._pacing_timer is not None:
            self._pacing_timer.cancel()
        for fut in self._control.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection lost"))
        self._control.clear()
        if not self._bound.done():
            self._bound.set_exception(
                BindError(f"{self.name}: connection closed before the bind completed")
            )
            self._bound.exception()  # mark retrieved: the pool reads it through wait_bound
        orphans = list(self.inflight.values())
        self.inflight.clear()
        if not self._closed.done():
            self._closed.set_result(None)
        self.pool.session_lost(self, orphans, previous == SessionState.UNBINDING, exc)

    def abort(self, reason: str) -> None:
        """Drop the connection now (stall, protocol violation); in-flight parts are re-queued."""
        log.warning("bind_abort", bind=self.name, reason=reason, inflight=len(self.inflight))
        if self._transport is not None:
            self._transport.abort()

    async def unbind(self, timeout: float = 2.0) -> None:
        """Polite shutdown: unbind, wait for unbind_resp (or not), close."""
        if self.state != SessionState.BOUND or self._transport is None:
            if self._transport is not None:
                self._transport.close()
            return
        self.state = SessionState.UNBINDING
        with contextlib.suppress(TimeoutError, ConnectionError):
            await asyncio.wait_for(self._request(_UNBIND, codec.encode_unbind), timeout)
        if self._transport is not None:
            self._transport.close()

    async def enquire_link(self, timeout: float) -> None:
        """Keep-alive probe; a missing answer means the link is dead and the bind is dropped."""
        try:
            await asyncio.wait_for(self._request(_ENQUIRE_LINK, codec.encode_enquire_link), timeout)
        except TimeoutError:
            self.abort("enquire_link_timeout")

    async def _request(self, command: int, encoder: Callable[[int], bytes]) -> tuple[int, bytes]:
        assert self._transport is not None
        seq = self._next_sequence()
        fut: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._control[seq] = fut
        self._transport.write(encoder(seq))
        return await fut

    def _next_sequence(self) -> int:
        self._sequence = self._sequence + 1 if self._sequence < _MAX_SEQUENCE else 1
        return self._sequence

    # -- flow control --------------------------------------------------------------------------

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self.pool.kick()

    @property
    def idle_capacity(self) -> int:
        """Window room if this session may send now (bound and writable), else 0."""
        if self.state is not SessionState.BOUND or not self._writable:
            return 0
        return self.window - len(self.inflight)

    def pump(self, now: float) -> int:
        """Send as many queued parts as window and pacing allow, in one write; returns the count."""
        room = self.idle_capacity
        if room <= 0:
            return 0
        allowed = self.pacer.available(now)
        if allowed <= 0:
            self._arm_pacing_timer(now)
            return 0
        take = min(room, allowed)
        queue = self.pool.queue
        if not queue:
            return 0
        chunks: list[bytes] = []
        inflight = self.inflight
        seq = self._sequence
        popleft = queue.popleft
        for _ in range(min(take, len(queue))):
            part = popleft()
            seq = seq + 1 if seq < _MAX_SEQUENCE else 1
            part.submitted_at = now
            inflight[seq] = part
            chunks.append(part.template.encode(seq, part.destination))
        self._sequence = seq
        count = len(chunks)
        self.pacer.take(count)
        self.sent += count
        assert self._transport is not None
        self._transport.write(b"".join(chunks))
        if take == allowed and queue:
            self._arm_pacing_timer(now)
        return count

    def _arm_pacing_timer(self, now: float) -> None:
        if self._pacing_timer is not None or not self.pacer.limited:
            return
        delay = max(self.pacer.delay_until_next(now), 0.001)
        self._pacing_timer = asyncio.get_running_loop().call_later(delay, self._pacing_tick)

    def _pacing_tick(self) -> None:
        self._pacing_timer = None
        self.pool.kick()

    def oldest_inflight_age(self, now: float) -> float:
        for part in self.inflight.values():
            return now - part.submitted_at
        return 0.0

    # -- receiving -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self._last_received = time.monotonic()
        try:
            pdus = self._frames.feed(data)
        except SmppProtocolError as exc:
            self._stream_corrupt(exc)
            return
        now = self._last_received
        responses = 0
        unpack = codec.HEADER_FIELDS.unpack_from
        for pdu in pdus:
            command_id, status, sequence = unpack(pdu, 4)
            if command_id == _SUBMIT_SM_RESP:
                self._on_submit_resp(pdu, status, sequence, now)
                responses += 1
            else:
                self._on_other(pdu, command_id, status, sequence)
        if self._frames.error is not None:
            self._stream_corrupt(self._frames.error)
        if responses:
            self.pool.kick()

    def _stream_corrupt(self, exc: SmppProtocolError) -> None:
        """A broken length field: the stream cannot be resynchronised; drop and reconnect."""
        self.pool.stats.malformed += 1
        log.error("smpp_stream_corrupt", bind=self.name, error=str(exc))
        self.abort("corrupt_stream")

    def _on_submit_resp(self, pdu: bytes, status: int, sequence: int, now: float) -> None:
        part = self.inflight.pop(sequence, None)
        if part is None:
            self.pool.stats.unexpected_responses += 1
            return
        if status in TRANSIENT_STATUSES:
            self.pacer.on_throttled(now, self.pool.observed_rate(self))
            self.pool.requeue_throttled(part)
            return
        message_id: str | None = None
        if status == 0:
            try:
                message_id = codec.decode_submit_sm_resp(pdu)[2]
            except SmppProtocolError:
                # Accepted, but the id is unreadable: record it as accepted without an id.
                self.pool.stats.malformed += 1
            self.pacer.on_accepted(now)
        self.pool.record(part, status, message_id, self, now)

    def _on_other(self, pdu: bytes, command_id: int, status: int, sequence: int) -> None:
        transport = self._transport
        assert transport is not None
        if command_id & RESPONSE_BIT:
            if command_id == _GENERIC_NACK and sequence in self.inflight:
                # The SMSC could not read our submit_sm: a final failure of that part.
                part = self.inflight.pop(sequence)
                self.pool.record(part, status or Status.ESME_RSYSERR, None, self, time.monotonic())
                return
            fut = self._control.pop(sequence, None)
            if fut is not None and not fut.done():
                fut.set_result((status, pdu))
            elif command_id != _ENQUIRE_LINK_RESP:
                self.pool.stats.unexpected_responses += 1
            return
        if command_id == _DELIVER_SM:
            transport.write(self._answer_deliver_sm(pdu, sequence))
        elif command_id == _ENQUIRE_LINK:
            transport.write(codec.encode_enquire_link_resp(sequence))
        elif command_id == _UNBIND:
            transport.write(codec.encode_unbind_resp(sequence))
            self.state = SessionState.UNBINDING
            transport.close()
        else:
            self.pool.stats.unknown_commands += 1
            log.warning("smpp_unknown_command", bind=self.name, command_id=f"0x{command_id:08X}")
            transport.write(codec.encode_generic_nack(sequence, Status.ESME_RINVCMDID))

    def _answer_deliver_sm(self, pdu: bytes, sequence: int) -> bytes:
        """Acknowledge a deliver_sm; hand a receipt to the pool; never drop the bind over it."""
        try:
            message = codec.decode_short_message_pdu(pdu)
        except SmppProtocolError as exc:
            self.pool.stats.malformed += 1
            log.warning("deliver_sm_malformed", bind=self.name, error=str(exc))
            return codec.encode_deliver_sm_resp(sequence, exc.command_status)
        if message.is_receipt:
            text = decode_short_message(message.user_data, message.data_coding)
            receipt = parse_receipt(text, message.tlvs)
            if receipt is None:
                self.pool.stats.unreadable_receipts += 1
                log.warning("receipt_unreadable", bind=self.name, text=text[:80])
            else:
                self.pool.receipt(receipt, self)
        return codec.encode_deliver_sm_resp(sequence, 0)
