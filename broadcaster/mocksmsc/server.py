"""The mock SMSC: an asyncio SMPP 3.4 server that is strict, scriptable and fast.

Strict: every PDU is decoded with the project's codec and checked (lengths, C-strings, sm_length,
TLVs, destination digits, data_coding, UDH consistency); a malformed one gets generic_nack or the
right error status, is counted by reason, and the bind keeps serving. A broken command_length
closes that connection only (the stream cannot be resynchronised).

Enforcement, per bind:
- window: a submit_sm arriving while `window` submits on that bind are unanswered gets
  ESME_RMSGQFUL (with no latency, the submits of one read batch count as unanswered);
- TPS: a token bucket of rate `tps` and capacity `max(1, tps * tps_burst_s)`, full at bind time;
  a submit_sm that finds no token gets ESME_RTHROTTLED and consumes none. A client pacing at
  most `tps` parts/s with bursts under `tps * tps_burst_s` is never throttled.

Fast: one `transport.write` per read, precomputed structs, recording as raw bytes decoded only
when read. Without scenario knobs it answers well over 100k parts/s on one core.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import structlog

from broadcaster.errors import SmppProtocolError
from broadcaster.mocksmsc.record import Record
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.smpp import codec
from broadcaster.smpp.constants import RESPONSE_BIT, CommandId, Status, status_name
from broadcaster.smpp.receipts import format_receipt, receipt_tlvs

log = structlog.get_logger(__name__)

_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_ENQUIRE_LINK = int(CommandId.ENQUIRE_LINK)
_UNBIND = int(CommandId.UNBIND)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_GENERIC_NACK = int(CommandId.GENERIC_NACK)
_BINDS = {
    int(CommandId.BIND_TRANSMITTER): "transmitter",
    int(CommandId.BIND_RECEIVER): "receiver",
    int(CommandId.BIND_TRANSCEIVER): "transceiver",
}
_DATA_CODINGS = frozenset({0, 1, 3, 8})
_UDHI = 0x40


class TpsBucket:
    """The TPS enforcement described in the module docstring."""

    __slots__ = ("capacity", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst_s: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate * burst_s)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class BindStats:
    """Per-bind counters for `stats_json`."""

    __slots__ = ("first", "last", "mode", "name", "parts")

    def __init__(self, name: str, mode: str) -> None:
        self.name = name
        self.mode = mode
        self.parts = 0
        self.first = 0.0
        self.last = 0.0

    def as_json(self) -> dict[str, Any]:
        span = self.last - self.first
        return {
            "bind": self.name,
            "mode": self.mode,
            "parts": self.parts,
            "parts_per_s": round(self.parts / span, 1) if span > 0 else None,
        }


class MockSmsc:
    """Start with `await start()`, stop with `await stop()`; read `record` and `stats_json()`."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.config = config or MockConfig()
        self.record = Record()
        self.rng = random.Random(self.config.seed)
        self.connections: set[SmscConnection] = set()
        self.binds: list[BindStats] = []
        self.statuses: Counter[int] = Counter()
        self.malformed: Counter[str] = Counter()
        self.submits = 0
        self.receipts_sent = 0
        self.disconnects = 0
        self._ids = itertools.count(self.rng.randrange(1, 1 << 24))
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: SmscConnection(self), host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("mock_smsc_listening", host=host, port=self.port)
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for conn in list(self.connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        await asyncio.sleep(0)

    def next_message_id(self) -> str:
        """Ids are strings: hex with leading zeros, as some SMSCs issue them."""
        return f"{next(self._ids):010x}"

    def bound(self) -> int:
        return sum(1 for c in self.connections if c.mode is not None)

    def stats_json(self) -> dict[str, Any]:
        return {
            "submits": self.submits,
            "parts_recorded": self.record.parts_received,
            "binds": [b.as_json() for b in self.binds],
            "binds_now": self.bound(),
            "statuses": {status_name(k): v for k, v in sorted(self.statuses.items())},
            "malformed": dict(self.malformed),
            "malformed_total": sum(self.malformed.values()),
            "receipts_sent": self.receipts_sent,
            "disconnects": self.disconnects,
        }


class SmscConnection(asyncio.Protocol):
    """One client connection: bind, then submits, receipts, keep-alives, unbind."""

    def __init__(self, server: MockSmsc) -> None:
        self.server = server
        self.config = server.config
        self.frames = codec.FrameBuffer()
        self.transport: asyncio.Transport | None = None
        self.mode: str | None = None
        self.stats: BindStats | None = None
        self.bucket = (
            TpsBucket(self.config.tps, self.config.tps_burst_s) if self.config.tps else None
        )
        self.submits = 0
        self.batch = 0
        """Submits of the current read, answered when it ends."""
        self.delayed = 0
        """Replies waiting for their latency timer."""
        self.stalled = False
        self.fast = self.config.fast

    # -- connection ----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.mode = None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def _drop(self, reason: str) -> None:
        self.server.disconnects += 1
        log.info("mock_smsc_disconnect", reason=reason, submits=self.submits)
        self.close()

    # -- receiving -----------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.stalled:
            return
        try:
            pdus = self.frames.feed(data)
        except SmppProtocolError as exc:
            self._malformed("command_length", str(exc))
            self.close()
            return
        out: list[bytes] = []
        self.batch = 0
        for pdu in pdus:
            if self.stalled or self.transport is None or self.transport.is_closing():
                break
            command_id, _status, sequence = codec.HEADER_FIELDS.unpack_from(pdu, 4)
            if command_id == _SUBMIT_SM:
                self._on_submit(pdu, sequence, out)
            else:
                self._on_other(pdu, command_id, sequence, out)
        if out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(out))
        if self.frames.error is not None:
            self._malformed("command_length", str(self.frames.error))
            self.close()
        elif self.config.drain_delay_ms and self.transport is not None:
            self.transport.pause_reading()
            asyncio.get_running_loop().call_later(
                self.config.drain_delay_ms / 1000, self._resume_reading
            )

    def _resume_reading(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def _malformed(self, reason: str, detail: str) -> None:
        self.server.malformed[reason] += 1
        log.warning("mock_smsc_malformed_pdu", reason=reason, detail=detail)

    def _on_other(self, pdu: bytes, command_id: int, sequence: int, out: list[bytes]) -> None:
        if command_id in _BINDS:
            out.append(self._on_bind(pdu, command_id, sequence))
        elif command_id == _ENQUIRE_LINK:
            out.append(codec.encode_enquire_link_resp(sequence))
        elif command_id == _UNBIND:
            out.append(codec.encode_unbind_resp(sequence))
            self.mode = None
            assert self.transport is not None
            asyncio.get_running_loop().call_soon(self.transport.close)
        elif command_id in (_DELIVER_SM_RESP, _GENERIC_NACK):
            pass  # the client acknowledged (or refused) a receipt
        elif command_id & RESPONSE_BIT:
            self._malformed("unexpected_response", f"0x{command_id:08X}")
        else:
            self._malformed("unknown_command", f"0x{command_id:08X}")
            out.append(codec.encode_generic_nack(sequence, Status.ESME_RINVCMDID))

    def _on_bind(self, pdu: bytes, command_id: int, sequence: int) -> bytes:
        resp_id = command_id | RESPONSE_BIT
        try:
            bind = codec.decode_bind(pdu)
        except SmppProtocolError as exc:
            self._malformed("bind", str(exc))
            return codec.encode_pdu(resp_id, exc.command_status, sequence)
        config = self.config
        status = Status.ESME_ROK
        if self.mode is not None:
            status = Status.ESME_RALYBND
        elif config.refuse_binds:
            status = Status.ESME_RBINDFAIL
        elif config.system_id is not None and bind.system_id != config.system_id:
            status = Status.ESME_RINVSYSID
        elif config.password is not None and bind.password != config.password:
            status = Status.ESME_RINVPASWD
        elif config.max_binds and self.server.bound() >= config.max_binds:
            status = Status.ESME_RBINDFAIL
        if status != Status.ESME_ROK:
            log.info("mock_smsc_bind_refused", status=status_name(status), system_id=bind.system_id)
            return codec.encode_pdu(resp_id, status, sequence)
        self.mode = _BINDS[command_id]
        self.stats = BindStats(f"{bind.system_id}#{len(self.server.binds) + 1}", self.mode)
        self.server.binds.append(self.stats)
        return codec.encode_bind_resp(resp_id, sequence, 0, "mocksmsc")

    def _on_submit(self, pdu: bytes, sequence: int, out: list[bytes]) -> None:
        server = self.server
        config = self.config
        if self.mode is None or self.mode == "receiver":
            out.append(codec.encode_pdu(CommandId.SUBMIT_SM_RESP, Status.ESME_RINVBNDSTS, sequence))
            server.statuses[Status.ESME_RINVBNDSTS] += 1
            return
        try:
            sm = codec.decode_short_message_pdu(pdu)
            self._validate(sm)
        except SmppProtocolError as exc:
            self._malformed(status_name(exc.command_status), str(exc))
            server.statuses[exc.command_status] += 1
            out.append(codec.encode_pdu(CommandId.SUBMIT_SM_RESP, exc.command_status, sequence))
            return
        self.submits += 1
        server.submits += 1
        stats = self.stats
        assert stats is not None
        now = time.monotonic()
        if not stats.parts:
            stats.first = now
        stats.parts += 1
        stats.last = now
        if self.fast:
            message_id = server.next_message_id()
            if config.record:
                server.record.add(
                    sm.source_addr, sm.destination_addr, sm.esm_class, sm.data_coding, sm.user_data
                )
            server.statuses[0] += 1
            out.append(codec.encode_submit_sm_resp(sequence, 0, message_id))
            return
        self._scenario_submit(sm, sequence, out, now)

    def _validate(self, sm: codec.ShortMessagePdu) -> None:
        """What the codec's structural decoding does not check."""
        if not sm.destination_addr.isdigit():
            raise SmppProtocolError(
                f"destination {sm.destination_addr!r} is not digits", Status.ESME_RINVDSTADR
            )
        if sm.data_coding not in _DATA_CODINGS:
            raise SmppProtocolError(
                f"data_coding {sm.data_coding} is not supported", Status.ESME_RINVDCS
            )
        data = sm.user_data
        if not data:
            raise SmppProtocolError("no short_message nor message_payload", Status.ESME_RINVMSGLEN)
        if sm.esm_class & _UDHI:
            udhl = data[0]
            if udhl + 1 > len(data) or udhl < 5:
                raise SmppProtocolError("UDH length past the message", Status.ESME_RINVESMCLASS)
            ie, ie_len = data[1], data[2]
            if not ((ie == 0x00 and ie_len == 3) or (ie == 0x08 and ie_len == 4)):
                raise SmppProtocolError(
                    f"UDH has no concatenation element (IE 0x{ie:02X})", Status.ESME_RINVESMCLASS
                )
            total, seq = (data[4], data[5]) if ie == 0x00 else (data[5], data[6])
            if total < 1 or not 1 <= seq <= total:
                raise SmppProtocolError(
                    f"UDH part {seq} of {total} is impossible", Status.ESME_RINVESMCLASS
                )

    def _scenario_submit(
        self, sm: codec.ShortMessagePdu, sequence: int, out: list[bytes], now: float
    ) -> None:
        server = self.server
        config = self.config
        rng = server.rng
        if config.disconnect_after and self.submits > config.disconnect_after:
            self._drop("disconnect_after")
            return
        if config.disconnect_rate and rng.random() < config.disconnect_rate:
            self._drop("disconnect_rate")
            return
        if config.stall_after and self.submits > config.stall_after:
            self._stall()
            return
        if config.corrupt_stream_after and self.submits > config.corrupt_stream_after:
            assert self.transport is not None
            self.transport.write(b"".join(out) + b"\x00\x00\x00\x08garbage!")
            out.clear()
            self.close()
            return
        status = 0
        self.batch += 1
        if config.window and self.batch + self.delayed > config.window:
            status = Status.ESME_RMSGQFUL
        elif self.bucket is not None and not self.bucket.take(now):
            status = Status.ESME_RTHROTTLED
        elif config.errors:
            draw = rng.random()
            for code, rate in config.errors.items():
                if draw < rate:
                    status = code
                    break
                draw -= rate
        server.statuses[status] += 1
        if status:
            reply = codec.encode_pdu(CommandId.SUBMIT_SM_RESP, status, sequence)
            self._respond(reply, out)
            return
        message_id = server.next_message_id()
        if config.record:
            server.record.add(
                sm.source_addr, sm.destination_addr, sm.esm_class, sm.data_coding, sm.user_data
            )
        if config.malformed_reply_rate and rng.random() < config.malformed_reply_rate:
            # An id without its terminating NUL: readable header, unreadable body.
            reply = codec.encode_pdu(
                CommandId.SUBMIT_SM_RESP, 0, sequence, message_id.encode("ascii")
            )
        else:
            reply = codec.encode_submit_sm_resp(sequence, 0, message_id)
        self._respond(reply, out)
        if config.receipts and sm.registered_delivery & 0x01 and self.mode == "transceiver":
            self._schedule_receipt(sm, message_id)

    def _respond(self, reply: bytes, out: list[bytes]) -> None:
        config = self.config
        if not config.latency_ms and not config.latency_jitter_ms:
            out.append(reply)
            return
        delay = config.latency_ms + self.server.rng.uniform(0, config.latency_jitter_ms)
        self.delayed += 1
        asyncio.get_running_loop().call_later(max(0.0, delay) / 1000, self._late_reply, reply)

    def _late_reply(self, reply: bytes) -> None:
        self.delayed = max(0, self.delayed - 1)
        if self.transport is not None and not self.transport.is_closing() and not self.stalled:
            self.transport.write(reply)

    def _stall(self) -> None:
        """Stop reading and answering (a hung SMSC), for `stall_seconds` or for ever."""
        if self.stalled:
            return
        self.stalled = True
        log.info("mock_smsc_stall", submits=self.submits, seconds=self.config.stall_seconds)
        if self.transport is not None:
            self.transport.pause_reading()
        if self.config.stall_seconds:
            asyncio.get_running_loop().call_later(self.config.stall_seconds, self._unstall)

    def _unstall(self) -> None:
        self.stalled = False
        self.submits = 0
        self._resume_reading()

    def _schedule_receipt(self, sm: codec.ShortMessagePdu, message_id: str) -> None:
        config = self.config
        rng = self.server.rng
        draw = rng.random()
        stat = "DELIVRD"
        for name, rate in config.receipt_mix.items():
            if draw < rate:
                stat = name
                break
            draw -= rate
        malformed = config.malformed_receipt_rate and rng.random() < config.malformed_receipt_rate
        submitted = datetime.now(UTC)
        asyncio.get_running_loop().call_later(
            config.receipt_delay_ms / 1000,
            self._send_receipt,
            sm.destination_addr,
            sm.source_addr,
            message_id,
            stat,
            submitted,
            bool(malformed),
        )

    def _send_receipt(
        self,
        subscriber: str,
        sender: str,
        message_id: str,
        stat: str,
        submitted: datetime,
        malformed: bool,
    ) -> None:
        if self.transport is None or self.transport.is_closing() or self.mode is None:
            return
        if malformed:
            text, tlvs = "this is not a receipt", b""
        else:
            text = format_receipt(
                message_id=message_id,
                stat=stat,
                submit_date=submitted,
                done_date=datetime.now(UTC),
                err="000" if stat == "DELIVRD" else "001",
                seconds=self.config.receipt_12_digit_dates,
            )
            tlvs = receipt_tlvs(message_id, stat) if self.config.receipt_tlv else b""
        pdu = codec.encode_deliver_sm(
            next(_receipt_sequences),
            source_addr=subscriber,
            destination_addr=sender,
            esm_class=0x04,
            short_message=text.encode("ascii"),
            tlvs=tlvs,
        )
        self.transport.write(pdu)
        self.server.receipts_sent += 1


_receipt_sequences = itertools.count(1)
