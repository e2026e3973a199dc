"""One ESME connection to the mock SMSC: framing, bind state, the protocol, its own counters.

A `Session` is an `asyncio.Protocol` (not streams): a read is processed in one pass and
answered with one write. What to answer is asked of the pure parts: `fastpath` (runs of
common valid parts), `validation` (every other submit_sm), `binding` (binds), the scenario's
`Faults` (drops, objections, mangled or delayed answers), `flow.Answers` (answers not written
yet: the window), and the server's `ReceiptScheduler`.

Strictness: every PDU is checked; a malformed one is answered, counted by reason and logged,
and the server keeps serving every other bind:

- command_length below 16 or above 64 KiB: generic_nack ESME_RINVCMDLEN, then the connection
  is closed (the stream cannot be resynchronised);
- unknown command_id, or a request an ESME may not send: generic_nack ESME_RINVCMDID;
- a response nobody asked for: counted, not answered (never answer a response);
- bind_*: decoded strictly (`codec.decode_bind`); bad fields, credentials, mode or limits get a
  header-only bind_*_resp with the status (ESME_RINVSYSID, ESME_RINVPASWD, ESME_RBINDFAIL,
  ESME_RALYBND...);
- enquire_link / unbind with a body: generic_nack ESME_RINVCMDLEN;
- submit_sm: `validate_submit_sm`, answered with submit_sm_resp and the status of the first
  fault (see `Malformed` reasons there); outside a transmitter/transceiver bind:
  ESME_RINVBNDSTS.

Each submit_sm outside the fast path, in order: the scenario's drops (counted in submit_sm
received on the connection), validation, the scenario's objections (window, TPS, error rates),
the check against earlier parts of its concatenated message, then accepted (recorded, given an
id, receipt scheduled); its answer, whatever the status, may be mangled, then waits for the
latency (and counts as unanswered meanwhile).
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

import structlog

from broadcaster.errors import SmppProtocolError
from broadcaster.mocksmsc.binding import BindRequest, bind_refusal
from broadcaster.mocksmsc.fastpath import (
    MAX_SEQUENCE,
    TakenPart,
    answer_concatenated_parts,
    answer_single_parts,
)
from broadcaster.mocksmsc.faults import connection_faults
from broadcaster.mocksmsc.flow import Answers
from broadcaster.mocksmsc.hooks import Drop
from broadcaster.mocksmsc.receipts import (
    DueReceipt,
    ReceiptRun,
    ReceiptTemplates,
    as_written,
    encode_receipt,
)
from broadcaster.mocksmsc.timers import Timers
from broadcaster.mocksmsc.validation import Malformed, Part, validate_submit_sm
from broadcaster.smpp.codec import (
    MAX_PDU_LENGTH,
    BindPdu,
    decode_bind,
    encode_bind_resp,
    encode_enquire_link_resp,
    encode_generic_nack,
    encode_pdu,
    encode_submit_sm_resp,
    encode_unbind,
    encode_unbind_resp,
)
from broadcaster.smpp.constants import (
    RESPONSE_BIT,
    CommandId,
    Status,
    command_name,
    status_name,
)

if TYPE_CHECKING:
    from broadcaster.mocksmsc.server import MockSmsc

log = structlog.get_logger("broadcaster.mocksmsc")

SMSC_SYSTEM_ID: Final = "MOCKSMSC"
"""system_id the mock answers binds with."""

_unpack_header = struct.Struct("!IIII").unpack_from
_unpack_length = struct.Struct("!I").unpack_from

_SUBMIT_SM: Final = int(CommandId.SUBMIT_SM)
_DELIVER_SM_RESP: Final = int(CommandId.DELIVER_SM_RESP)
_ENQUIRE_LINK: Final = int(CommandId.ENQUIRE_LINK)
_ENQUIRE_LINK_RESP: Final = int(CommandId.ENQUIRE_LINK_RESP)
_UNBIND: Final = int(CommandId.UNBIND)
_UNBIND_RESP: Final = int(CommandId.UNBIND_RESP)
_DATA_SM_RESP: Final = int(CommandId.DATA_SM_RESP)
_GENERIC_NACK: Final = int(CommandId.GENERIC_NACK)
_BIND_MODES: Final[dict[int, str]] = {
    int(CommandId.BIND_TRANSMITTER): "transmitter",
    int(CommandId.BIND_RECEIVER): "receiver",
    int(CommandId.BIND_TRANSCEIVER): "transceiver",
}

_ROK: Final = int(Status.ESME_ROK)
_RINVCMDLEN: Final = int(Status.ESME_RINVCMDLEN)
_RINVCMDID: Final = int(Status.ESME_RINVCMDID)
_RINVBNDSTS: Final = int(Status.ESME_RINVBNDSTS)
_RINVESMCLASS: Final = int(Status.ESME_RINVESMCLASS)

OPEN, BOUND, UNBOUND = 0, 1, 2
"""A session's states: connected, bound, unbind answered."""
_CONTINUE, _STOP_CLOSE, _STOP_STALL = 0, 1, 2
"""After a PDU: read on, or stop reading and close, or stall."""

Append = Callable[[bytes], None]
"""Adds octets to the answers of the read being processed (one write at its end)."""


class Session(asyncio.Protocol):
    """One ESME connection: framing, state, validation, scenarios; its own counters."""

    def __init__(self, smsc: MockSmsc, index: int) -> None:
        self.smsc = smsc
        self.config = smsc.config
        self.index = index
        self.name = f"#{index}"
        """system_id#index once bound (per-bind figures in stats)."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.closed: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.state = OPEN
        self.mode = ""
        self.system_id = ""
        self.can_submit = False
        self.can_receive = False
        self.connected_at = time.time()
        self.bound_at: float | None = None
        self.closed_at: float | None = None
        self.close_reason = ""
        self._buffer = b""
        self._pauses: set[str] = set()
        self._held = False
        self._closing = False
        # counters
        self.submits = 0
        self.accepted = 0
        self.statuses: Counter[int] = Counter()
        self.malformed: Counter[str] = Counter()
        self.first_submit = 0.0
        self.last_submit = 0.0
        self.enquire_links = 0
        self.receipts_sent = 0
        self.receipts_acked = 0
        self.receipts_nacked = 0
        self.unbinds_answered = 0
        """unbind_resp to our `unbind_after` unbinds."""
        # scenario state
        self.faults = connection_faults(self.config, smsc.rng, loop.time())
        delay = self.faults.answer_delay if self.faults.delays_answers else None
        self.answers = Answers(loop, delay, self._write_released)
        self._timers = Timers(loop)
        self._close_when_answered = False
        self._out_sequence = 0
        self._receipts_unacked: dict[int, object] = {}
        self._templates: ReceiptTemplates | None = None
        """The receipt templates of the current minute (second), kept across batches."""
        """Receipts sent, by sequence number: their message ids (a number from the fast path)."""

    @property
    def parts(self) -> int:
        """Parts accepted on this bind."""
        return self.accepted

    @property
    def receiving(self) -> bool:
        """Receipts may be sent here: bound as receiver or transceiver, and not closing."""
        return self.can_receive and not self._closing

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else ""
        self.smsc.connections.add(self)
        log.debug("mock_smsc_connected", bind=self.name, peer=self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.closed_at = time.time()
        if not self.close_reason:
            self.close_reason = "error" if exc else "peer_closed"
        self.answers.cancel()
        self._timers.cancel_all()
        self.smsc.session_closed(self)
        log.info(
            "mock_smsc_disconnected",
            bind=self.name,
            system_id=self.system_id,
            reason=self.close_reason,
            parts=self.accepted,
        )
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._pause("write")

    def resume_writing(self) -> None:
        self._resume("write")

    def data_received(self, data: bytes) -> None:
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        if self._closing:
            return
        if self._held:
            self._buffer = data
            return
        self._process(data)

    # -- one read -----------------------------------------------------------------------------

    def _process(self, data: bytes) -> None:
        """Every whole PDU of `data`: answers written once at the end, the rest kept."""
        out: list[bytes] = []
        self.answers.read_starts()
        pos, stop = self._read_pdus(data, out.append)
        transport = self.transport
        assert transport is not None
        if out and not transport.is_closing():
            transport.write(b"".join(out))
        self.answers.read_starts()
        if stop == _STOP_STALL:
            self._buffer = data[pos:]
            self._start_stall()
        elif stop == _STOP_CLOSE:
            self._close_after_read(transport)
        elif pos < len(data):
            self._buffer = data[pos:]
        pause = self.faults.read_pause()
        if pause and not self._closing:
            self._pause("drain")
            self._timers.later(pause, self._resume, "drain")
        self.smsc.notify_waiters()

    def _read_pdus(self, data: bytes, append: Append) -> tuple[int, int]:
        """Answer the whole PDUs of `data`; returns (where the unprocessed octets start, why
        reading stopped: _CONTINUE when for lack of a whole PDU)."""
        pos, end = 0, len(data)
        fast = self.config.fast and self.can_submit
        while end - pos >= 16:
            if fast:
                ran = self._fast_run(data, pos, append)
                if ran == pos and self._receipts_unacked:
                    ran = self._fast_receipt_answers(data, pos)
                if ran != pos:
                    pos = ran
                    continue
            length, command_id, status, sequence = _unpack_header(data, pos)
            if not 16 <= length <= MAX_PDU_LENGTH:
                return end, self._bad_length(length, command_id, sequence, append)
            if pos + length > end:
                break
            stop = self._dispatch(data[pos : pos + length], command_id, status, sequence, append)
            if stop:
                return pos, stop
            pos += length
        if end - pos >= 4:  # less than a header left: its length may be wrong already
            (length,) = _unpack_length(data, pos)
            if not 16 <= length <= MAX_PDU_LENGTH:
                return end, self._bad_length(length, 0, 0, append)
        return pos, _CONTINUE

    def _fast_run(self, data: bytes, pos: int, append: Append) -> int:
        """The run of common valid parts at `pos` (`fastpath`); returns where it stopped."""
        smsc = self.smsc
        record = smsc.record
        first = smsc.last_message_id
        keep = record.append_pdu if record.keep else None
        taken: list[TakenPart] | None = [] if self.config.receipts else None
        take = taken.append if taken is not None else None
        pos, last = answer_single_parts(data, pos, append, keep, first, take)
        singles = last - first
        pos, last = answer_concatenated_parts(data, pos, append, record.add_part, last, take)
        if last != first:
            smsc.last_message_id = last
            record.parts_received += singles  # add_part() counts the others
            self._submits_received(last - first)
            self.accepted += last - first
            smsc.statuses[_ROK] += last - first
            if taken:
                smsc.receipts.schedule_run(self, last, taken)
        return pos

    def _fast_receipt_answers(self, data: bytes, pos: int) -> int:
        """The run of deliver_sm_resp at `pos` that `_receipt_answered` would take without a
        remark (ESME_ROK, 16 or 17 octets, to a receipt sent); returns where it stopped."""
        unacked = self._receipts_unacked
        end = len(data)
        acked = 0
        while end - pos >= 16:
            length, command_id, status, sequence = _unpack_header(data, pos)
            if command_id != _DELIVER_SM_RESP or status or not 16 <= length <= 17:
                break
            if pos + length > end or unacked.pop(sequence, None) is None:
                break
            pos += length
            acked += 1
        self.receipts_acked += acked
        return pos

    def _bad_length(self, length: int, command_id: int, sequence: int, append: Append) -> int:
        """A command_length out of bounds: generic_nack, and close (no way to resynchronise)."""
        self._count_malformed("command_length_invalid", f"command_length {length}", command_id)
        self.answers.flush(append)  # answers due for accepted parts go out first
        append(encode_generic_nack(sequence if length >= 16 else 0, _RINVCMDLEN))
        self.close_reason = "command_length_invalid"
        return _STOP_CLOSE

    def _close_after_read(self, transport: asyncio.Transport) -> None:
        self._closing = True
        if self._close_when_answered and self.answers.delayed:
            self._pause("closing")  # closed by _write_released after the last answer
        else:
            transport.close()

    # -- one PDU ------------------------------------------------------------------------------

    def _dispatch(
        self, pdu: bytes, command_id: int, status: int, sequence: int, append: Append
    ) -> int:
        """One whole PDU outside the fast path; returns _CONTINUE or why to stop reading."""
        if self.state == UNBOUND:
            return _CONTINUE  # unbind answered: ignore what follows until the close
        if command_id & RESPONSE_BIT:
            self._response(command_id, status, sequence, len(pdu))
            return _CONTINUE
        self._check_request_header(command_id, status, sequence)
        if command_id == _SUBMIT_SM:
            return self._submit(pdu, sequence, append)
        mode = _BIND_MODES.get(command_id)
        if mode is not None:
            append(self._bind(pdu, command_id, mode, sequence))
            return _CONTINUE
        if command_id == _ENQUIRE_LINK:
            append(self._enquire_link(len(pdu), sequence))
            return _CONTINUE
        if command_id == _UNBIND:
            return self._unbind(len(pdu), sequence, append)
        self._count_malformed(
            "command_id_unsupported", f"command_id 0x{command_id:08X}", command_id
        )
        append(encode_generic_nack(sequence, _RINVCMDID))
        return _CONTINUE

    def _check_request_header(self, command_id: int, status: int, sequence: int) -> None:
        """Deviations that do not prevent an answer: counted, and the request is processed."""
        if status:
            self._count_malformed(
                "request_status_not_zero", f"command_status 0x{status:08X}", command_id
            )
        if not 0 < sequence <= MAX_SEQUENCE:
            self._count_malformed(
                "sequence_number_out_of_range", f"sequence_number {sequence}", command_id
            )

    def _enquire_link(self, length: int, sequence: int) -> bytes:
        if length != 16:
            self._count_malformed("enquire_link_with_body", "", _ENQUIRE_LINK)
            return encode_generic_nack(sequence, _RINVCMDLEN)
        self.enquire_links += 1
        return encode_enquire_link_resp(sequence)

    def _unbind(self, length: int, sequence: int, append: Append) -> int:
        if length != 16:
            self._count_malformed("unbind_with_body", "", _UNBIND)
            append(encode_generic_nack(sequence, _RINVCMDLEN))
            return _CONTINUE
        self.answers.flush(append)
        append(encode_unbind_resp(sequence))
        self.state = UNBOUND
        self.can_submit = self.can_receive = False
        self.close_reason = "unbind"
        log.info("mock_smsc_unbound", bind=self.name, system_id=self.system_id)
        return _STOP_CLOSE

    def _response(self, command_id: int, status: int, sequence: int, length: int) -> None:
        if command_id in (_DELIVER_SM_RESP, _DATA_SM_RESP):
            self._receipt_answered(status, sequence, length)
        elif command_id == _UNBIND_RESP:
            self.unbinds_answered += 1
            self.smsc.unbinds_answered += 1
        elif command_id == _GENERIC_NACK:
            self._count_malformed("generic_nack_received", status_name(status), command_id)
        elif command_id != _ENQUIRE_LINK_RESP:
            self._count_malformed("response_unexpected", command_name(command_id), command_id)

    def _receipt_answered(self, status: int, sequence: int, length: int) -> None:
        message_id = self._receipts_unacked.pop(sequence, None)
        if message_id is None:
            self._count_malformed(
                "deliver_sm_resp_unexpected", f"sequence {sequence}", _DELIVER_SM_RESP
            )
        elif status:
            self.receipts_nacked += 1
            log.info("mock_smsc_receipt_refused", bind=self.name, status=status_name(status))
        else:
            self.receipts_acked += 1
        if length not in (16, 17):
            self._count_malformed("deliver_sm_resp_length", f"{length} octets", _DELIVER_SM_RESP)

    # -- binds --------------------------------------------------------------------------------

    def _bind(self, pdu: bytes, command_id: int, mode: str, sequence: int) -> bytes:
        smsc = self.smsc
        resp = command_id | RESPONSE_BIT
        if self.state != OPEN:
            return encode_pdu(resp, int(Status.ESME_RALYBND), sequence)
        try:
            bind = decode_bind(pdu)
        except SmppProtocolError as exc:
            self._count_malformed("bind_malformed", str(exc), command_id)
            return encode_pdu(resp, exc.command_status, sequence)
        smsc.bind_attempts += 1
        request = BindRequest(bind, mode, smsc.bind_attempts, smsc.bound())
        refusal = bind_refusal(self.config, request)
        if refusal is not None:
            reason, status = refusal
            smsc.binds_refused += 1
            log.info(
                "mock_smsc_bind_refused",
                bind=self.name,
                system_id=bind.system_id,
                mode=mode,
                reason=reason,
                status=status_name(status),
            )
            return encode_pdu(resp, status, sequence)
        self._bound(bind, mode)
        version = 0x34 if bind.interface_version >= 0x34 else None
        return encode_bind_resp(resp, sequence, _ROK, SMSC_SYSTEM_ID, version)

    def _bound(self, bind: BindPdu, mode: str) -> None:
        self.state = BOUND
        self.mode = mode
        self.system_id = bind.system_id
        self.can_submit = mode != "receiver"
        self.can_receive = mode != "transmitter"
        self.bound_at = time.time()
        self.name = f"{bind.system_id}#{self.index}"
        self.smsc.binds.append(self)
        log.info("mock_smsc_bound", bind=self.name, system_id=bind.system_id, mode=mode)
        if self.can_receive:
            self._loop.call_soon(self.smsc.receipts.flush_pending, self)

    # -- submit_sm outside the fast path --------------------------------------------------------

    def _submit(self, pdu: bytes, sequence: int, append: Append) -> int:
        """A submit_sm outside the fast path: scenario faults, validation, flow control."""
        drop = self.faults.drop(self.submits + 1)
        if drop is not None:
            return self._drop(drop)
        self._submits_received(1)
        now = self._loop.time()
        checked = self._check(pdu)
        if isinstance(checked, Part):
            status = self.faults.status(now, self.answers.unanswered) or self._record(pdu, checked)
            message_id = "" if status else self._accept(checked)
        else:
            status, message_id = checked, ""
        if status:
            self.statuses[status] += 1
        self.smsc.statuses[status] += 1
        self._answer(sequence, status, message_id, append)
        return _CONTINUE

    def _drop(self, drop: Drop) -> int:
        """Stop reading instead of taking the submit_sm (not counted: it is taken again after
        a stall)."""
        if drop.stall:
            return _STOP_STALL
        self.close_reason = drop.reason
        self._close_when_answered = drop.after_answers  # the answers still delayed go first
        self.smsc.disconnects += 1
        return _STOP_CLOSE

    def _check(self, pdu: bytes) -> Part | int:
        """The valid part, or the status of its fault (counted)."""
        if not self.can_submit:
            self._count_malformed("submit_sm_not_bound_to_transmit", self.mode, _SUBMIT_SM)
            return _RINVBNDSTS
        try:
            return validate_submit_sm(pdu)
        except Malformed as exc:
            self._count_malformed(exc.reason, str(exc), _SUBMIT_SM)
            return exc.status

    def _record(self, pdu: bytes, part: Part) -> int:
        """Record a part the scenario took: 0, or the status of a contradiction with the parts
        of its concatenated message received before (counted, nothing recorded)."""
        record = self.smsc.record
        if part.concat is None:
            record.add_pdu(pdu)
            return _ROK
        ref, total, seq = part.concat
        key = (part.source, part.destination, ref)
        reason = record.add_part(key, total, seq, part.data_coding, part.user_data)
        if reason is None:
            return _ROK
        self._count_malformed(reason, f"{key!r}: part {seq} of {total}", _SUBMIT_SM)
        return _RINVESMCLASS

    def _accept(self, part: Part) -> str:
        """An accepted part: its message id (its receipt scheduled, if due)."""
        message_id = self.smsc.next_message_id()
        self.accepted += 1
        self.smsc.receipts.schedule(self, part, message_id)
        return message_id

    def _answer(self, sequence: int, status: int, message_id: str, append: Append) -> None:
        """The submit_sm_resp (or what the scenario sends instead), now or after the latency,
        then what the scenario sends after it."""
        config = self.config
        if config.empty_message_ids and not status:
            message_id = ""
        response = self.faults.reply(sequence, status, message_id)
        if response is None:
            response = encode_submit_sm_resp(sequence, status, message_id)
        else:
            self.smsc.malformed_replies += 1
        self.answers.add(response, append)
        extra = self.faults.after_answer(self.submits, self.name)
        if extra is not None:
            self.answers.add(extra, append, counts=0)
        if config.unbind_after and self.submits == config.unbind_after:
            # Ahead of the answers still delayed: the ESME must wait for them.
            self.smsc.unbinds_sent += 1
            log.info("mock_smsc_unbinding", bind=self.name, submits=self.submits)
            append(encode_unbind(self._next_sequence()))

    def _write_released(self, responses: list[bytes]) -> None:
        """Answers whose latency has elapsed (from `Answers`' timer)."""
        transport = self.transport
        if responses and transport is not None and not transport.is_closing():
            transport.write(b"".join(responses))
            if self._close_when_answered and not self.answers.delayed:
                transport.close()
        self.smsc.notify_waiters()

    def _submits_received(self, count: int) -> None:
        self.submits += count
        smsc = self.smsc
        smsc.submits += count
        now = time.monotonic()
        if not self.first_submit:
            self.first_submit = now
            smsc.first_submit = smsc.first_submit or now
        self.last_submit = smsc.last_submit = now

    # -- stalls and pauses ----------------------------------------------------------------------

    def _start_stall(self) -> None:
        self._held = True
        self._pause("stall")
        self.smsc.stalls += 1
        seconds = self.config.stall_seconds
        log.info("mock_smsc_stalled", bind=self.name, seconds=seconds or "for ever")
        if seconds:
            self._timers.later(seconds, self._end_stall)

    def _end_stall(self) -> None:
        self._held = False
        log.info("mock_smsc_stall_ended", bind=self.name)
        self._resume("stall")
        if self._buffer and not self._closing:
            data, self._buffer = self._buffer, b""
            self._process(data)

    def _pause(self, reason: str) -> None:
        if not self._pauses and self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()
        self._pauses.add(reason)

    def _resume(self, reason: str) -> None:
        if reason not in self._pauses:
            return
        self._pauses.discard(reason)
        if not self._pauses and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # -- receipts -------------------------------------------------------------------------------

    def send_receipts(self, receipts: Sequence[DueReceipt | ReceiptRun]) -> None:
        """deliver_sm for each receipt, in one write (dropped if the connection is closing)."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        config = self.config
        done = datetime.now(UTC).replace(tzinfo=None)
        out: list[bytes] = []
        templates = self._templates
        if templates is not None and templates.done != as_written(
            done, config.receipt_12_digit_dates
        ):
            templates = None
        unacked = self._receipts_unacked
        for receipt in receipts:
            if isinstance(receipt, ReceiptRun):
                templates = self._templates = templates or ReceiptTemplates(config, done)
                last = self._out_sequence
                templates.encode_run(receipt, last, out)
                for i, fast in enumerate(receipt.receipts):
                    unacked[(last + i) % MAX_SEQUENCE + 1] = fast[0]
                self._out_sequence = (last + len(receipt.receipts) - 1) % MAX_SEQUENCE + 1
                self.receipts_sent += len(receipt.receipts)
                continue
            sequence = self._next_sequence()
            out.append(
                encode_receipt(
                    receipt,
                    sequence,
                    done,
                    config.receipt_12_digit_dates,
                    config.receipt_tlv,
                    config.receipt_decimal_ids,
                    pdu=config.receipt_pdu,
                    with_text=config.receipt_text,
                )
            )
            self._receipts_unacked[sequence] = receipt.message_id
            self.receipts_sent += 1
        transport.write(b"".join(out))

    # -- bookkeeping ----------------------------------------------------------------------------

    def _next_sequence(self) -> int:
        self._out_sequence = self._out_sequence % MAX_SEQUENCE + 1
        return self._out_sequence

    def _count_malformed(self, reason: str, detail: str, command_id: int) -> None:
        self.malformed[reason] += 1
        self.smsc.malformed_seen(self, reason, detail, command_id)

    def shutdown(self) -> None:
        """Unbind (if bound) and close: the server is stopping."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.close_reason = self.close_reason or "server_stopped"
        if self.state == BOUND:
            transport.write(encode_unbind(self._next_sequence()))
        self._closing = True
        transport.close()

    def stats(self, now: float) -> dict[str, Any]:
        """This bind's figures (one entry of `MockSmsc.stats_json()["binds"]`)."""
        active = self.last_submit - self.first_submit
        return {
            "bind": self.index,
            "system_id": self.system_id,
            "mode": self.mode or None,
            "peer": self.peer,
            "open": self.closed_at is None,
            "close_reason": self.close_reason or None,
            "submits": self.submits,
            "parts": self.accepted,
            "parts_per_s": round(self.accepted / active, 1) if active > 0 else None,
            "errors": {status_name(s): n for s, n in sorted(self.statuses.items())},
            "malformed": sum(self.malformed.values()),
            "enquire_links": self.enquire_links,
            "receipts_sent": self.receipts_sent,
            "receipts_acked": self.receipts_acked,
            "receipts_unacked": len(self._receipts_unacked),
            "bound_s": round((self.closed_at or now) - self.bound_at, 3) if self.bound_at else None,
        }
