"""The mock SMSC: an asyncio SMPP 3.4 server, strict with its clients, scriptable, and fast.

One `MockSmsc` listens (127.0.0.1 by default); each TCP connection is a `_Session`
(`asyncio.Protocol`, not streams: a read is processed in one pass and answered with one write).

Strictness
    Every PDU is checked; a malformed one is answered, counted by reason and logged, and the
    server keeps serving every other bind:

    - command_length below 16 or above 64 KiB: generic_nack ESME_RINVCMDLEN, then the
      connection is closed (the stream cannot be resynchronised);
    - unknown command_id, or a request an ESME may not send: generic_nack ESME_RINVCMDID;
    - a response nobody asked for: counted, not answered (never answer a response);
    - bind_*: decoded strictly (`codec.decode_bind`); bad fields, credentials, mode or limits
      get a header-only bind_*_resp with the status (ESME_RINVSYSID, ESME_RINVPASWD,
      ESME_RBINDFAIL, ESME_RALYBND...);
    - enquire_link / unbind with a body: generic_nack ESME_RINVCMDLEN;
    - submit_sm: `validate_submit_sm`, answered with submit_sm_resp and the status of the first
      fault (see `Malformed` reasons there); outside a transmitter/transceiver bind:
      ESME_RINVBNDSTS.

Flow control (per bind; what a client must pace under)
    Window: a submit_sm arriving while `window` submit_sm of this bind are still unanswered gets
    ESME_RMSGQFUL. Unanswered means its submit_sm_resp has not been written yet: with a response
    latency, until the latency has elapsed; without latency, answers are written once per read,
    so the count is the submit_sm received earlier in the same read. The server never counts
    more than the client has outstanding, so a client that keeps to its window never sees it.

    TPS: `TokenBucket` (rate = tps * throttle_above parts/s, depth max(1, rate * tps_burst_s)
    parts, starts full, refilled continuously at each read's arrival time). Each submit_sm that
    passed validation and the window takes one token; without a whole token it is answered
    ESME_RTHROTTLED and takes nothing. A client pacing at or under `rate` with bursts under the
    depth (0.1 s of the rate by default) is never throttled.

    Each submit_sm, in order: disconnect_after / stall_after / disconnect_rate (counted in
    submit_sm received on the connection), validation, window, TPS, the error-rate draw, the
    check against earlier parts of its concatenated message, then accepted (recorded, given an
    id, receipt scheduled); its answer, whatever the status, then waits for the latency (and
    counts as unanswered meanwhile) and may be mangled by malformed_reply_rate.

Scenarios (`MockConfig`): latency, per-status error rates (vendor codes too), disconnects,
stalls, slow drain, refused binds, malformed replies, corrupt stream, delivery receipts with a
stat mix. With none of them the fast path runs: a common valid submit_sm (a single part, or a
part of a concatenated message with the usual 6-octet UDH) is checked by one compiled regex
(`FAST_SUBMIT_SM`, `FAST_CONCATENATED_PART`) plus an octet or two, answered from a packed
header and a hex counter, and recorded as its raw octets, decoded only when `record.messages`
is read; anything else takes the strict path (`validate_submit_sm`), which gives the reason.
Measured here (loadtest/mock_capacity.py): 500k+ single parts/s on one core.

Message ids are 16 upper-case hex digits from a per-server counter started at a random point:
unique per server, with leading zeros (ids are strings; a client that parses them as numbers
loses them).
"""

from __future__ import annotations

import asyncio
import heapq
import random
import re
import struct
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import structlog

from broadcaster.errors import SmppProtocolError
from broadcaster.mocksmsc.record import Record
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.smpp.codec import (
    MAX_PDU_LENGTH,
    decode_bind,
    decode_short_message_pdu,
    encode_bind_resp,
    encode_deliver_sm,
    encode_enquire_link_resp,
    encode_generic_nack,
    encode_pdu,
    encode_submit_sm_resp,
    encode_unbind,
    encode_unbind_resp,
)
from broadcaster.smpp.constants import (
    RESPONSE_BIT,
    TAG_MESSAGE_PAYLOAD,
    TAG_SAR_MSG_REF_NUM,
    TAG_SAR_SEGMENT_SEQNUM,
    TAG_SAR_TOTAL_SEGMENTS,
    CommandId,
    Status,
    command_name,
    status_name,
)
from broadcaster.smpp.receipts import format_receipt, receipt_tlvs
from broadcaster.text.encoding import decode_short_message

log = structlog.get_logger("broadcaster.mocksmsc")

SMSC_SYSTEM_ID: Final = "MOCKSMSC"
"""system_id the mock answers binds with."""

_HEADER: Final = struct.Struct("!IIII")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_unpack_length = struct.Struct("!I").unpack_from

_SUBMIT_SM: Final = int(CommandId.SUBMIT_SM)
_SUBMIT_SM_RESP: Final = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM: Final = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP: Final = int(CommandId.DELIVER_SM_RESP)
_ENQUIRE_LINK: Final = int(CommandId.ENQUIRE_LINK)
_ENQUIRE_LINK_RESP: Final = int(CommandId.ENQUIRE_LINK_RESP)
_UNBIND: Final = int(CommandId.UNBIND)
_UNBIND_RESP: Final = int(CommandId.UNBIND_RESP)
_GENERIC_NACK: Final = int(CommandId.GENERIC_NACK)
_BIND_MODES: Final[dict[int, str]] = {
    int(CommandId.BIND_TRANSMITTER): "transmitter",
    int(CommandId.BIND_RECEIVER): "receiver",
    int(CommandId.BIND_TRANSCEIVER): "transceiver",
}
_MESSAGE_ID_WIDTH: Final = 16
_OK_RESP_LENGTH: Final = 16 + _MESSAGE_ID_WIDTH + 1
_MAX_SEQUENCE: Final = 0x7FFFFFFF

_ROK: Final = int(Status.ESME_ROK)
_RINVCMDLEN: Final = int(Status.ESME_RINVCMDLEN)
_RINVCMDID: Final = int(Status.ESME_RINVCMDID)
_RINVBNDSTS: Final = int(Status.ESME_RINVBNDSTS)
_RMSGQFUL: Final = int(Status.ESME_RMSGQFUL)
_RTHROTTLED: Final = int(Status.ESME_RTHROTTLED)
_RINVESMCLASS: Final = int(Status.ESME_RINVESMCLASS)

# -- submit_sm validation ---------------------------------------------------------------------

_TON: Final = rb"[\x00-\x06]"
_NPI: Final = rb"[\x00\x01\x03\x04\x06\x08-\x0a\x0e\x12]"
_SMPP_TIME: Final = rb"(?:[0-9]{13}[0-4][0-9][-+R])?\x00"
_DATA_CODINGS: Final = rb"[\x00-\x0a\x0d\x0e\xc0-\xff]"
SUBMIT_SM_FIELDS: Final = re.compile(
    rb"[\x01-\x7f]{0,5}\x00"  # service_type
    + _TON
    + _NPI
    + rb"([\x01-\x7f]{0,20})\x00"  # source_addr (group 1)
    + _TON
    + _NPI
    + rb"([0-9]{1,20})\x00"  # destination_addr (group 2): an MSISDN, digits only
    + rb"..[\x00-\x03]"  # esm_class, protocol_id, priority_flag
    + _SMPP_TIME  # schedule_delivery_time
    + _SMPP_TIME  # validity_period
    + rb".[\x00\x01]"  # registered_delivery, replace_if_present_flag
    + _DATA_CODINGS
    + rb"\x00.",  # sm_default_msg_id (no canned messages here), sm_length
    re.DOTALL,
)
"""The mandatory fields of a valid submit_sm body, from service_type to sm_length; match()
with pos = PDU start + 16 and endpos = PDU end. Its end is where short_message starts."""

_SEVEN_BIT_CODINGS: Final = frozenset(
    [0, 1, *range(0xC0, 0xE0), *range(0xF0, 0xF4), *range(0xF8, 0xFC)]
)
"""data_coding values whose short_message holds GSM septets, one per octet (limit 160)."""
_UCS2_CODINGS: Final = frozenset([8, *range(0xE0, 0xF0)])
_VALID_REGISTERED_DELIVERY: Final = bytes(
    1 if (rd & 3) != 3 and not rd & 0xE0 else 0 for rd in range(256)
)
_SMS_BITS: Final = 140 * 8

FAST_SUBMIT_SM: Final = re.compile(
    rb"[\x01-\x7f]{0,5}\x00"  # service_type
    + _TON
    + _NPI
    + rb"[\x01-\x7f]{0,20}\x00"  # source_addr
    + _TON
    + _NPI
    + rb"([0-9]{1,20})\x00"  # destination_addr (group 1)
    + rb"[\x00-\x03\x80-\x83]"  # esm_class: no UDHI, default message type
    + rb".[\x00-\x03]"  # protocol_id, priority_flag
    + _SMPP_TIME
    + _SMPP_TIME
    + b"["
    + b"".join(b"\\x%02x" % rd for rd in range(256) if _VALID_REGISTERED_DELIVERY[rd])
    + b"]"  # registered_delivery
    + rb"[\x00\x01]"  # replace_if_present_flag
    # data_coding, sm_default_msg_id, sm_length, short_message: GSM septets (< 0x80), 1..160,
    # or UCS-2 code units, 1..70 (group 2 or 3); no TLV after it (fullmatch to the PDU end).
    + rb"(?:\x00\x00.([\x00-\x7f]{1,160})|\x08\x00.((?:..){1,70}))",
    re.DOTALL,
)
"""The common valid submit_sm, in one C call: fullmatch() from PDU start + 16 to its end, then
check that sm_length (the octet before the short_message group) spans exactly to the end.
Whatever it accepts, `validate_submit_sm` accepts too (tests prove it); the rest goes there."""

FAST_CONCATENATED_PART: Final = re.compile(
    rb"[\x01-\x7f]{0,5}\x00"  # service_type
    + _TON
    + _NPI
    + rb"([\x01-\x7f]{0,20})\x00"  # source_addr (group 1)
    + _TON
    + _NPI
    + rb"([0-9]{1,20})\x00"  # destination_addr (group 2)
    + rb"[\x40-\x43\xc0-\xc3]"  # esm_class: UDHI, default message type
    + rb".[\x00-\x03]"  # protocol_id, priority_flag
    + _SMPP_TIME
    + _SMPP_TIME
    + b"["
    + b"".join(b"\\x%02x" % rd for rd in range(256) if _VALID_REGISTERED_DELIVERY[rd])
    + b"]"  # registered_delivery
    + rb"[\x00\x01]"  # replace_if_present_flag
    # A 6-octet UDH holding only an 8-bit-reference concatenation (ref, total, seq: group 3 or
    # 5), then 1..153 GSM septets or 1..67 UCS-2 code units (group 4 or 6), to the PDU end.
    + rb"(?:\x00\x00.\x05\x00\x03(...)([\x00-\x7f]{1,153})"
    + rb"|\x08\x00.\x05\x00\x03(...)((?:..){1,67}))",
    re.DOTALL,
)
"""The common part of a concatenated message (as the project and most clients split them), in
one C call; the server then checks the sequence and the parts received before."""


def fast_accepts(pdu: bytes) -> bool:
    """The fast path's test of one whole PDU, before the checks against parts received
    earlier (`_Session._process` inlines it)."""
    length, command_id, status, sequence = _unpack_header(pdu)
    if command_id != _SUBMIT_SM or status or not 0 < sequence <= _MAX_SEQUENCE:
        return False
    m = FAST_SUBMIT_SM.fullmatch(pdu, 16, length)
    if m is not None:
        start = m.start(m.lastindex or 0)
        return bool(pdu[start - 1] == length - start)
    m = FAST_CONCATENATED_PART.fullmatch(pdu, 16, length)
    if m is None:
        return False
    ie = m.start(m.lastindex or 0) - 3
    return bool(pdu[ie - 4] == length - ie + 3 and 1 <= pdu[ie + 2] <= pdu[ie + 1])


class Malformed(Exception):
    """A submit_sm that breaks SMPP 3.4: `status` to answer with, `reason` to count and log."""

    def __init__(self, status: int, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.status = status
        self.reason = reason


class Part(NamedTuple):
    """A valid submit_sm, as much of it as the mock uses."""

    source: bytes
    destination: bytes
    esm_class: int
    registered_delivery: int
    data_coding: int
    user_data: bytes
    """short_message (or message_payload) without its UDH."""
    concat: tuple[int, int, int] | None
    """(reference, total, seq) from the UDH or the sar_* TLVs; None for a single part."""


# (name, kind, max size with NUL, status) of the mandatory fields, for diagnosis.
_FIELDS: Final[tuple[tuple[str, str, int, int], ...]] = (
    ("service_type", "cstring", 6, int(Status.ESME_RINVSERTYP)),
    ("source_addr_ton", "ton", 1, int(Status.ESME_RINVSRCTON)),
    ("source_addr_npi", "npi", 1, int(Status.ESME_RINVSRCNPI)),
    ("source_addr", "cstring", 21, int(Status.ESME_RINVSRCADR)),
    ("dest_addr_ton", "ton", 1, int(Status.ESME_RINVDSTTON)),
    ("dest_addr_npi", "npi", 1, int(Status.ESME_RINVDSTNPI)),
    ("destination_addr", "address", 21, int(Status.ESME_RINVDSTADR)),
    ("esm_class", "octet", 1, _RINVESMCLASS),
    ("protocol_id", "octet", 1, 0),
    ("priority_flag", "priority", 1, int(Status.ESME_RINVPRTFLG)),
    ("schedule_delivery_time", "time", 17, int(Status.ESME_RINVSCHED)),
    ("validity_period", "time", 17, int(Status.ESME_RINVEXPIRY)),
    ("registered_delivery", "octet", 1, 0),
    ("replace_if_present_flag", "flag", 1, int(Status.ESME_RINVREPFLAG)),
    ("data_coding", "data_coding", 1, int(Status.ESME_RINVDCS)),
    ("sm_default_msg_id", "zero", 1, int(Status.ESME_RINVDFTMSGID)),
)
_OCTET_OK: Final[dict[str, re.Pattern[bytes]]] = {
    "ton": re.compile(_TON),
    "npi": re.compile(_NPI),
    "priority": re.compile(rb"[\x00-\x03]"),
    "flag": re.compile(rb"[\x00\x01]"),
    "data_coding": re.compile(_DATA_CODINGS),
    "zero": re.compile(rb"\x00"),
    "octet": re.compile(rb".", re.DOTALL),
}
_TIME: Final = re.compile(rb"[0-9]{13}[0-4][0-9][-+R]")


def _diagnose_fields(pdu: bytes) -> Malformed:
    """Why `SUBMIT_SM_FIELDS` does not match: the first faulty mandatory field, walked in order."""
    pos, end = 16, len(pdu)
    for name, kind, size, status in _FIELDS:
        if pos >= end:
            return Malformed(_RINVCMDLEN, "mandatory_fields_truncated", f"PDU ends before {name}")
        if kind in ("cstring", "address", "time"):
            nul = pdu.find(0, pos, pos + size)
            if nul < 0:
                if pdu.find(0, pos) < 0:
                    return Malformed(_RINVCMDLEN, f"{name}_unterminated")
                return Malformed(status, f"{name}_too_long", f"{name} exceeds {size - 1} octets")
            value = pdu[pos:nul]
            if not value.isascii():
                return Malformed(status, f"{name}_not_ascii")
            if kind == "address" and not value:
                return Malformed(status, f"{name}_empty")
            if kind == "address" and not value.isdigit():
                return Malformed(status, f"{name}_not_digits", f"{name} {value!r}")
            if kind == "time" and value and not _TIME.fullmatch(value):
                return Malformed(status, f"{name}_not_smpp_time", f"{name} {value!r}")
            pos = nul + 1
        else:
            if not _OCTET_OK[kind].fullmatch(pdu, pos, pos + 1):
                return Malformed(status, f"{name}_invalid", f"{name} 0x{pdu[pos]:02X}")
            pos += 1
    if pos >= end:
        return Malformed(_RINVCMDLEN, "mandatory_fields_truncated", "PDU ends before sm_length")
    return Malformed(int(Status.ESME_RSYSERR), "mandatory_fields_unreadable")


def _parse_udh(data: bytes) -> tuple[int, tuple[int, int, int] | None]:
    """(octets of the UDH including its length octet, concatenation (ref, total, seq) or None)."""
    if not data:
        raise Malformed(_RINVESMCLASS, "udh_missing", "UDHI set but short_message is empty")
    udh_end = 1 + data[0]
    if udh_end > len(data) or data[0] < 2:
        raise Malformed(_RINVESMCLASS, "udh_length_invalid", f"UDHL {data[0]} of {len(data)}")
    concat: tuple[int, int, int] | None = None
    pos = 1
    while pos < udh_end:
        if udh_end - pos < 2:
            raise Malformed(_RINVESMCLASS, "udh_element_truncated")
        iei, iel = data[pos], data[pos + 1]
        pos += 2
        if pos + iel > udh_end:
            raise Malformed(_RINVESMCLASS, "udh_element_past_end", f"IE 0x{iei:02X} len {iel}")
        if iei in (0x00, 0x08):
            if concat is not None:
                raise Malformed(_RINVESMCLASS, "udh_concatenation_repeated")
            if iel != (3 if iei == 0x00 else 4):
                raise Malformed(_RINVESMCLASS, "udh_concatenation_length", f"IE length {iel}")
            if iei == 0x00:
                concat = (data[pos], data[pos + 1], data[pos + 2])
            else:
                concat = ((data[pos] << 8) | data[pos + 1], data[pos + 2], data[pos + 3])
        pos += iel
    if concat is not None and not 1 <= concat[2] <= concat[1]:
        raise Malformed(
            _RINVESMCLASS, "udh_sequence_out_of_range", f"part {concat[2]} of {concat[1]}"
        )
    return udh_end, concat


def validate_submit_sm(pdu: bytes) -> Part:
    """A whole submit_sm PDU checked field by field; raises `Malformed` at the first fault.

    Beyond framing (command_length, C-strings NUL-terminated within their SMPP maxima, ASCII,
    sm_length within the PDU, TLV framing): TON/NPI, priority and replace flags, SMPP times,
    registered_delivery reserved bits, esm_class message type, data_coding not reserved,
    short_message and message_payload not both set, sar_* TLVs all or none (and equal to
    the UDH's concatenation when both are present),
    the UDH well formed, the user data fitting its coding (GSM septets < 0x80, UCS-2 even
    length) and one SMS (160 septets or 140 octets with the UDH) unless in message_payload.
    """
    end = len(pdu)
    if end < 16 or _unpack_header(pdu)[0] != end:
        raise Malformed(_RINVCMDLEN, "command_length_mismatch")
    m = SUBMIT_SM_FIELDS.match(pdu, 16)
    if m is None:
        raise _diagnose_fields(pdu)
    start = m.end()
    sm_end = start + pdu[start - 1]
    if sm_end > end:
        raise Malformed(
            int(Status.ESME_RINVMSGLEN),
            "sm_length_past_end",
            f"sm_length {pdu[start - 1]} with {end - start} octets left",
        )
    if pdu[start - 1] > 254:
        raise Malformed(int(Status.ESME_RINVMSGLEN), "sm_length_over_254")
    esm_class = pdu[m.end(2) + 1]
    if esm_class & 0x3C not in (0x00, 0x08, 0x10):
        raise Malformed(_RINVESMCLASS, "esm_class_message_type", f"esm_class 0x{esm_class:02X}")
    registered_delivery = pdu[start - 5]
    if not _VALID_REGISTERED_DELIVERY[registered_delivery]:
        raise Malformed(
            int(Status.ESME_RINVREGDLVFLG),
            "registered_delivery_reserved",
            f"registered_delivery 0x{registered_delivery:02X}",
        )
    data_coding = pdu[start - 3]
    data = pdu[start:sm_end]
    in_payload = False
    sar: tuple[int, int, int] | None = None
    if sm_end < end:
        try:
            tlvs = decode_short_message_pdu(pdu).tlvs
        except SmppProtocolError as exc:
            raise Malformed(exc.command_status, "tlv_stream", str(exc)) from None
        payload = tlvs.get(TAG_MESSAGE_PAYLOAD)
        if payload is not None:
            if data:
                raise Malformed(int(Status.ESME_RINVMSGLEN), "short_message_and_message_payload")
            data, in_payload = payload, True
        sar_values = [
            tlvs.get(t)
            for t in (TAG_SAR_MSG_REF_NUM, TAG_SAR_TOTAL_SEGMENTS, TAG_SAR_SEGMENT_SEQNUM)
        ]
        present = [v for v in sar_values if v is not None]
        if present:
            if len(present) != 3:
                raise Malformed(int(Status.ESME_RMISSINGOPTPARAM), "sar_incomplete")
            ref, total, seq = (int.from_bytes(v, "big") for v in present)
            if not 1 <= seq <= total:
                raise Malformed(int(Status.ESME_RINVOPTPARAMVAL), "sar_sequence_out_of_range")
            sar = (ref, total, seq)
    udh_octets = 0
    concat = sar
    if esm_class & 0x40:
        udh_octets, concat = _parse_udh(data)
        if sar is not None and concat != sar:  # both (aiosmpplib sends both): they must agree
            raise Malformed(_RINVESMCLASS, "udh_and_sar_disagree", f"UDH {concat}, SAR {sar}")
    user_data = data[udh_octets:]
    if not user_data:
        raise Malformed(int(Status.ESME_RINVMSGLEN), "empty_message")
    if data_coding in _SEVEN_BIT_CODINGS:
        if not user_data.isascii():
            raise Malformed(int(Status.ESME_RINVDCS), "gsm_septet_over_0x7f")
        limit = (_SMS_BITS - udh_octets * 8) // 7
    else:
        if data_coding in _UCS2_CODINGS and len(user_data) % 2:
            raise Malformed(int(Status.ESME_RINVDCS), "ucs2_odd_length")
        limit = 140 - udh_octets
    if not in_payload and len(user_data) > limit:
        raise Malformed(
            int(Status.ESME_RINVMSGLEN),
            "user_data_over_one_sms",
            f"{len(user_data)} > {limit} {'septets' if limit > 140 - udh_octets else 'octets'}",
        )
    return Part(
        m.group(1),
        m.group(2),
        esm_class,
        registered_delivery,
        data_coding,
        user_data,
        concat,
    )


# -- flow control -----------------------------------------------------------------------------


_WHOLE_TOKEN: Final = 1.0 - 1e-9
"""A token, give or take float rounding (a client pacing exactly at the rate must pass)."""


class TokenBucket:
    """Per-bind TPS enforcement, in parts.

    `rate` tokens per second flow into a bucket holding at most `capacity` (starts full);
    `take(now)` first adds `(now - last) * rate` (capped), then takes one token if a whole one
    is there. `now` is the arrival time of the read that carried the part.
    """

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.last) * self.rate
        self.tokens = tokens if tokens < self.capacity else self.capacity
        self.last = now
        if self.tokens >= _WHOLE_TOKEN:
            self.tokens -= 1.0
            return True
        return False


# -- receipts ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _DueReceipt:
    system_id: str
    origin: _Session
    message_id: str
    source: str
    """The receipt's source_addr: the handset (the part's destination)."""
    destination: str
    """The receipt's destination_addr: the part's source_addr."""
    stat: str
    submitted: datetime
    text: str
    malformed: bool


_RECEIPT_ERR: Final = {"DELIVRD": "000", "UNDELIV": "001", "REJECTD": "002"}
_RECEIPT_TEXT_SAFE: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#%&'()*+,-./:;<=>?"
)
"""Characters with the same code in ASCII and GSM 03.38 (receipt text is sent as data_coding 0)."""


def _receipt_text(part: Part) -> str:
    text = decode_short_message(part.user_data, part.data_coding)[:20]
    return "".join(c if c in _RECEIPT_TEXT_SAFE else "." for c in text)


# -- sessions ---------------------------------------------------------------------------------

_OPEN, _BOUND, _UNBOUND = 0, 1, 2
_CONTINUE, _STOP_CLOSE, _STOP_STALL = 0, 1, 2


class _Session(asyncio.Protocol):
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
        self.state = _OPEN
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
        # scenario state
        self._bucket: TokenBucket | None = None
        self._unanswered = 0
        self._delayed: list[tuple[float, int, bytes, int]] = []
        self._delayed_seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._other_timers: set[asyncio.TimerHandle] = set()
        self._stalled_once = False
        self._close_when_answered = False
        self._out_sequence = 0
        self._receipts_unacked: dict[int, str] = {}
        self._latency = bool(self.config.latency_ms or self.config.latency_jitter_ms)

    @property
    def parts(self) -> int:
        """Parts accepted on this bind."""
        return self.accepted

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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for timer in self._other_timers:
            timer.cancel()
        self._other_timers.clear()
        self.smsc._session_closed(self)
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

    # -- processing ---------------------------------------------------------------------------

    def _process(self, data: bytes) -> None:
        """Every whole PDU of `data`: answers written once at the end, the rest kept."""
        smsc = self.smsc
        out: list[bytes] = []
        append = out.append
        pos = 0
        end = len(data)
        fast = self.config.fast and self.can_submit
        record = smsc.record
        keep = record.keep
        add = record.append_pdu
        fullmatch = FAST_SUBMIT_SM.fullmatch
        concatenated = FAST_CONCATENATED_PART.fullmatch
        add_part = record.add_part
        pack = _pack_header
        unpack = _unpack_header
        next_id = smsc._next_message_id
        fast_accepted = fast_single = 0
        if not self._latency:
            self._unanswered = 0
        stop = _CONTINUE
        while end - pos >= 16:
            length, command_id, status, sequence = unpack(data, pos)
            nxt = pos + length
            if (
                command_id == _SUBMIT_SM
                and fast
                and nxt <= end
                and not status
                and 0 < sequence <= _MAX_SEQUENCE
            ):
                m = fullmatch(data, pos + 16, nxt)
                if m is not None:
                    start = m.start(m.lastindex or 0)
                    if data[start - 1] == nxt - start:
                        next_id += 1
                        fast_accepted += 1
                        fast_single += 1
                        append(pack(_OK_RESP_LENGTH, _SUBMIT_SM_RESP, 0, sequence))
                        append(b"%016X\0" % next_id)
                        if keep:
                            add(data[pos:nxt])
                        pos = nxt
                        continue
                else:
                    m = concatenated(data, pos + 16, nxt)
                    if m is not None:
                        start = m.start(m.lastindex or 0)
                        ie = start - 3  # reference, total, seq
                        total = data[ie + 1]
                        seq = data[ie + 2]
                        if data[ie - 4] == nxt - ie + 3 and 1 <= seq <= total:
                            key = (m.group(1), m.group(2), data[ie])
                            if add_part(key, total, seq, data[ie - 6], data[start:nxt]) is None:
                                next_id += 1
                                fast_accepted += 1
                                append(pack(_OK_RESP_LENGTH, _SUBMIT_SM_RESP, 0, sequence))
                                append(b"%016X\0" % next_id)
                                pos = nxt
                                continue
            if length < 16 or length > MAX_PDU_LENGTH:
                self._count_malformed(
                    "command_length_invalid", f"command_length {length}", command_id
                )
                self._flush_delayed(append)  # answers due for accepted parts go out first
                append(encode_generic_nack(sequence if length >= 16 else 0, _RINVCMDLEN))
                self.close_reason = "command_length_invalid"
                stop = _STOP_CLOSE
                pos = end
                break
            if nxt > end:
                break
            smsc._next_message_id = next_id  # the general path takes ids from the server
            stop = self._dispatch(data, pos, nxt, command_id, status, sequence, append)
            next_id = smsc._next_message_id
            if stop:
                break
            pos = nxt
        if not stop and end - pos >= 4:  # less than a header left: its length may be wrong
            (length,) = _unpack_length(data, pos)
            if length < 16 or length > MAX_PDU_LENGTH:
                self._count_malformed("command_length_invalid", f"command_length {length}", 0)
                self._flush_delayed(append)
                append(encode_generic_nack(0, _RINVCMDLEN))
                self.close_reason = "command_length_invalid"
                stop = _STOP_CLOSE
                pos = end
        smsc._next_message_id = next_id
        if fast_accepted:
            self.submits += fast_accepted
            self.accepted += fast_accepted
            smsc.submits += fast_accepted
            smsc.statuses[0] += fast_accepted
            record.parts_received += fast_single  # add_part() counts the others
            now = time.monotonic()
            if not self.first_submit:
                self.first_submit = now
                smsc._first_submit = smsc._first_submit or now
            self.last_submit = smsc._last_submit = now
        transport = self.transport
        assert transport is not None
        if out and not transport.is_closing():
            transport.write(b"".join(out))
        if not self._latency:
            self._unanswered = 0
        if stop == _STOP_STALL:
            self._buffer = data[pos:]
            self._start_stall()
        elif stop == _STOP_CLOSE:
            self._closing = True
            if self._close_when_answered and self._delayed:
                self._pause("closing")  # closed by _release_delayed after the last answer
            else:
                transport.close()
        elif pos < end:
            self._buffer = data[pos:]
        if self.config.drain_delay_ms and not self._closing:
            self._pause("drain")
            self._later(self.config.drain_delay_ms / 1000, self._resume, "drain")
        if smsc._waiters:
            smsc._notify()

    def _dispatch(
        self,
        data: bytes,
        pos: int,
        nxt: int,
        command_id: int,
        status: int,
        sequence: int,
        append: Callable[[bytes], None],
    ) -> int:
        """One whole PDU outside the fast path; returns _CONTINUE or why to stop reading."""
        if self.state == _UNBOUND:
            return _CONTINUE  # unbind answered: ignore what follows until the close
        if command_id & RESPONSE_BIT:
            self._response(command_id, status, sequence, nxt - pos)
            return _CONTINUE
        # Deviations that do not prevent an answer: counted, and the request is processed.
        if status:
            self._count_malformed(
                "request_status_not_zero", f"command_status 0x{status:08X}", command_id
            )
        if not 0 < sequence <= _MAX_SEQUENCE:
            self._count_malformed(
                "sequence_number_out_of_range", f"sequence_number {sequence}", command_id
            )
        if command_id == _SUBMIT_SM:
            return self._submit(data[pos:nxt], sequence, append)
        mode = _BIND_MODES.get(command_id)
        if mode is not None:
            append(self._bind(data[pos:nxt], command_id, mode, sequence))
        elif command_id == _ENQUIRE_LINK:
            if nxt - pos != 16:
                self._count_malformed("enquire_link_with_body", "", command_id)
                append(encode_generic_nack(sequence, _RINVCMDLEN))
            else:
                self.enquire_links += 1
                append(encode_enquire_link_resp(sequence))
        elif command_id == _UNBIND:
            if nxt - pos != 16:
                self._count_malformed("unbind_with_body", "", command_id)
                append(encode_generic_nack(sequence, _RINVCMDLEN))
            else:
                self._flush_delayed(append)
                append(encode_unbind_resp(sequence))
                self.state = _UNBOUND
                self.can_submit = self.can_receive = False
                self.close_reason = "unbind"
                log.info("mock_smsc_unbound", bind=self.name, system_id=self.system_id)
                return _STOP_CLOSE
        else:
            self._count_malformed(
                "command_id_unsupported", f"command_id 0x{command_id:08X}", command_id
            )
            append(encode_generic_nack(sequence, _RINVCMDID))
        return _CONTINUE

    def _response(self, command_id: int, status: int, sequence: int, length: int) -> None:
        if command_id == _DELIVER_SM_RESP:
            message_id = self._receipts_unacked.pop(sequence, None)
            if message_id is None:
                self._count_malformed(
                    "deliver_sm_resp_unexpected", f"sequence {sequence}", command_id
                )
            elif status:
                self.receipts_nacked += 1
                log.info("mock_smsc_receipt_refused", bind=self.name, status=status_name(status))
            else:
                self.receipts_acked += 1
            if length not in (16, 17):
                self._count_malformed("deliver_sm_resp_length", f"{length} octets", command_id)
        elif command_id == _GENERIC_NACK:
            self._count_malformed("generic_nack_received", status_name(status), command_id)
        elif command_id == _ENQUIRE_LINK_RESP:
            pass
        else:
            self._count_malformed("response_unexpected", command_name(command_id), command_id)

    def _bind(self, pdu: bytes, command_id: int, mode: str, sequence: int) -> bytes:
        config = self.config
        smsc = self.smsc
        resp = command_id | RESPONSE_BIT
        if self.state != _OPEN:
            return encode_pdu(resp, int(Status.ESME_RALYBND), sequence)
        try:
            bind = decode_bind(pdu)
        except SmppProtocolError as exc:
            self._count_malformed("bind_malformed", str(exc), command_id)
            return encode_pdu(resp, exc.command_status, sequence)
        refusal = ""
        status = _ROK
        smsc.bind_attempts += 1
        if config.refuse_binds or smsc.bind_attempts <= config.refuse_first_binds:
            refusal, status = "refused", int(Status.ESME_RBINDFAIL)
        elif mode not in config.bind_modes:
            refusal, status = f"mode {mode} not allowed", int(Status.ESME_RBINDFAIL)
        elif config.max_binds and smsc.bound() >= config.max_binds:
            refusal, status = f"max_binds {config.max_binds} reached", int(Status.ESME_RBINDFAIL)
        elif config.system_id is not None and bind.system_id != config.system_id:
            refusal, status = "system_id", int(Status.ESME_RINVSYSID)
        elif config.password is not None and bind.password != config.password:
            refusal, status = "password", int(Status.ESME_RINVPASWD)
        if status:
            smsc.binds_refused += 1
            log.info(
                "mock_smsc_bind_refused",
                bind=self.name,
                system_id=bind.system_id,
                mode=mode,
                reason=refusal,
                status=status_name(status),
            )
            return encode_pdu(resp, status, sequence)
        self.state = _BOUND
        self.mode = mode
        self.system_id = bind.system_id
        self.can_submit = mode != "receiver"
        self.can_receive = mode != "transmitter"
        self.bound_at = time.time()
        self.name = f"{bind.system_id}#{self.index}"
        smsc.binds.append(self)
        if config.accepted_tps:
            self._bucket = TokenBucket(config.accepted_tps, config.tps_capacity, self._loop.time())
        log.info("mock_smsc_bound", bind=self.name, system_id=bind.system_id, mode=mode)
        if self.can_receive:
            self._loop.call_soon(smsc._flush_pending_receipts, self)
        version = 0x34 if bind.interface_version >= 0x34 else None
        return encode_bind_resp(resp, sequence, _ROK, SMSC_SYSTEM_ID, version)

    def _submit(self, pdu: bytes, sequence: int, append: Callable[[bytes], None]) -> int:
        """A submit_sm outside the fast path: scenario faults, validation, flow control."""
        config = self.config
        smsc = self.smsc
        rng = smsc.rng
        self.submits += 1
        if config.disconnect_after and self.submits > config.disconnect_after:
            self.submits -= 1
            self.close_reason = f"disconnect_after {config.disconnect_after}"
            self._close_when_answered = True  # the N answers still delayed are sent first
            smsc.disconnects += 1
            return _STOP_CLOSE
        if config.stall_after and not self._stalled_once and self.submits > config.stall_after:
            self.submits -= 1
            return _STOP_STALL
        if config.disconnect_rate and rng.random() < config.disconnect_rate:
            self.submits -= 1
            self.close_reason = "disconnect_rate"
            smsc.disconnects += 1
            return _STOP_CLOSE
        smsc.submits += 1
        now = self._loop.time()
        if not self.first_submit:
            self.first_submit = time.monotonic()
            smsc._first_submit = smsc._first_submit or self.first_submit
        self.last_submit = smsc._last_submit = time.monotonic()
        status = _ROK
        part: Part | None = None
        if not self.can_submit:
            status = _RINVBNDSTS
            self._count_malformed("submit_sm_not_bound_to_transmit", self.mode, _SUBMIT_SM)
        else:
            try:
                part = validate_submit_sm(pdu)
            except Malformed as exc:
                status = exc.status
                self._count_malformed(exc.reason, str(exc), _SUBMIT_SM)
        if not status and config.window and self._unanswered >= config.window:
            status = _RMSGQFUL
        if not status and self._bucket is not None and not self._bucket.take(now):
            status = _RTHROTTLED
        if not status and smsc._error_table:
            draw = rng.random()
            for threshold, error in smsc._error_table:
                if draw < threshold:
                    status = error
                    break
        message_id = ""
        if not status:
            assert part is not None
            if part.concat is not None:
                ref, total, seq = part.concat
                key = (part.source, part.destination, ref)
                reason = smsc.record.add_part(key, total, seq, part.data_coding, part.user_data)
                if reason is not None:
                    status = _RINVESMCLASS
                    self._count_malformed(reason, f"{key!r}: part {seq} of {total}", _SUBMIT_SM)
            else:
                smsc.record.add_pdu(pdu)
        if not status:
            assert part is not None
            message_id = smsc.next_message_id()
            self.accepted += 1
            if config.receipts and part.registered_delivery & 3:
                smsc._receipt_due(self, part, message_id)
        else:
            self.statuses[status] += 1
        smsc.statuses[status] += 1
        if config.malformed_reply_rate and rng.random() < config.malformed_reply_rate:
            # The part is accepted (and recorded): only its answer is mangled.
            smsc.malformed_replies += 1
            if rng.random() < 0.5:  # the message_id without its NUL: body unreadable
                response = encode_pdu(
                    _SUBMIT_SM_RESP, status, sequence, message_id.encode("ascii") or b"X"
                )
            else:  # a PDU nobody knows instead of the answer
                response = encode_pdu(0x000000FF, 0, sequence, b"\xde\xad\xbe\xef")
        else:
            response = encode_submit_sm_resp(sequence, status, message_id)
        self._answer(response, append)
        if config.corrupt_stream_after and self.submits == config.corrupt_stream_after:
            log.info("mock_smsc_corrupting_stream", bind=self.name)
            self._answer(b"\x00\x00\x00\x08\x80\x00\x00\x04", append, counts=0)
        return _CONTINUE

    def _answer(self, response: bytes, append: Callable[[bytes], None], counts: int = 1) -> None:
        """Write a submit_sm's answer now (with this read's batch) or after the latency."""
        self._unanswered += counts
        if not self._latency:
            append(response)
            return
        config = self.config
        delay = config.latency_ms
        if config.latency_jitter_ms:
            jitter = config.latency_jitter_ms
            delay = max(0.0, delay + self.smsc.rng.uniform(-jitter, jitter))
        due = self._loop.time() + delay / 1000
        self._delayed_seq += 1
        heapq.heappush(self._delayed, (due, self._delayed_seq, response, counts))
        if self._timer is None or due < self._timer_due:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(due, self._release_delayed)
            self._timer_due = due

    def _release_delayed(self) -> None:
        self._timer = None
        delayed = self._delayed
        now = self._loop.time() + 0.0005
        out: list[bytes] = []
        released = 0
        while delayed and delayed[0][0] <= now:
            _, _, response, counts = heapq.heappop(delayed)
            out.append(response)
            released += counts
        self._unanswered -= released
        transport = self.transport
        if out and transport is not None and not transport.is_closing():
            transport.write(b"".join(out))
            if self._close_when_answered and not delayed:
                transport.close()
        if delayed:
            self._timer_due = delayed[0][0]
            self._timer = self._loop.call_at(self._timer_due, self._release_delayed)
        if self.smsc._waiters:
            self.smsc._notify()

    def _flush_delayed(self, append: Callable[[bytes], None]) -> None:
        """Every delayed answer now, in due order (before an unbind_resp)."""
        while self._delayed:
            append(heapq.heappop(self._delayed)[2])
        self._unanswered = 0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- stalls, pauses, timers -----------------------------------------------------------------

    def _start_stall(self) -> None:
        self._stalled_once = True
        self._held = True
        self._pause("stall")
        self.smsc.stalls += 1
        seconds = self.config.stall_seconds
        log.info("mock_smsc_stalled", bind=self.name, seconds=seconds or "for ever")
        if seconds:
            self._later(seconds, self._end_stall)

    def _end_stall(self) -> None:
        self._held = False
        log.info("mock_smsc_stall_ended", bind=self.name)
        self._resume("stall")
        if self._buffer and not self._closing:
            data, self._buffer = self._buffer, b""
            self._process(data)

    def _later(self, delay: float, callback: Callable[..., object], *args: Any) -> None:
        timer: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert timer is not None
            self._other_timers.discard(timer)
            callback(*args)

        timer = self._loop.call_later(delay, fire)
        self._other_timers.add(timer)

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

    def send_receipts(self, receipts: list[_DueReceipt]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        config = self.config
        out: list[bytes] = []
        now = datetime.now(UTC).replace(tzinfo=None)
        for receipt in receipts:
            self._out_sequence = self._out_sequence % _MAX_SEQUENCE + 1
            text = format_receipt(
                message_id=receipt.message_id,
                stat=receipt.stat,
                submit_date=receipt.submitted,
                done_date=now,
                err=_RECEIPT_ERR.get(receipt.stat, "000"),
                text=receipt.text,
                seconds=config.receipt_12_digit_dates,
            )
            tlvs = b""
            if receipt.malformed:
                text = text.split(" ", 1)[1]  # no "id:..."
            elif config.receipt_tlv:
                tlvs = receipt_tlvs(receipt.message_id, receipt.stat)
            source_digits = receipt.destination.isdigit()
            out.append(
                encode_deliver_sm(
                    self._out_sequence,
                    source_addr=receipt.source,
                    destination_addr=receipt.destination,
                    dest_ton=1 if source_digits else 5,
                    dest_npi=1 if source_digits else 0,
                    esm_class=0x04,
                    short_message=text.encode("ascii"),
                    tlvs=tlvs,
                )
            )
            self._receipts_unacked[self._out_sequence] = receipt.message_id
            self.receipts_sent += 1
        transport.write(b"".join(out))

    # -- bookkeeping ----------------------------------------------------------------------------

    def _count_malformed(self, reason: str, detail: str, command_id: int) -> None:
        self.malformed[reason] += 1
        self.smsc._malformed_seen(self, reason, detail, command_id)

    def shutdown(self) -> None:
        """Unbind (if bound) and close: the server is stopping."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        self.close_reason = self.close_reason or "server_stopped"
        if self.state == _BOUND:
            self._out_sequence = self._out_sequence % _MAX_SEQUENCE + 1
            transport.write(encode_unbind(self._out_sequence))
        self._closing = True
        transport.close()

    def stats(self, now: float) -> dict[str, Any]:
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


# -- the server -------------------------------------------------------------------------------

DEFAULT_CONFIG: Final = MockConfig()


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
        self.connections: set[_Session] = set()
        """Open connections, bound or not."""
        self.binds: list[_Session] = []
        """Every successful bind, in order, open or closed (`.parts`, `.mode`, `.name`)."""
        self.submits = 0
        """submit_sm received (whatever the answer; not those dropped by a fault scenario)."""
        self.statuses: Counter[int] = Counter()
        """submit_sm_resp sent, by command_status (0: accepted)."""
        self.malformed: Counter[str] = Counter()
        """PDUs that broke SMPP 3.4, by reason."""
        self.bind_attempts = 0
        self.binds_refused = 0
        self.disconnects = 0
        self.stalls = 0
        self.malformed_replies = 0
        self.receipts_dropped = 0
        self.pending_receipts: dict[str, list[_DueReceipt]] = {}
        """Receipts waiting for a receiver or transceiver bind of their system_id."""
        self._server: asyncio.Server | None = None
        self._stats_runner: Any = None
        self._closed: list[_Session] = []
        self._connection_count = 0
        self._next_message_id = self.rng.randrange(1 << 36)
        self._first_submit = 0.0
        self._last_submit = 0.0
        self._started = time.monotonic()
        self._waiters: list[asyncio.Future[None]] = []
        cumulative = 0.0
        self._error_table: list[tuple[float, int]] = []
        for status, rate in config.errors.items():
            if rate > 0:
                cumulative += rate
                self._error_table.append((cumulative, status))
        self._receipt_stats = [(s, p) for s, p in config.receipt_mix.items() if p > 0]
        self._receipts_due: list[tuple[float, int, _DueReceipt]] = []
        self._receipts_seq = 0
        self._receipt_timer: asyncio.TimerHandle | None = None
        self._receipt_timer_due = 0.0

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
        if self._receipt_timer is not None:
            self._receipt_timer.cancel()
            self._receipt_timer = None
        sessions = list(self.connections)
        for session in sessions:
            session.shutdown()
        if sessions:
            _, pending = await asyncio.wait([s.closed for s in sessions], timeout=2.0)
            for session in sessions:
                if session.closed in pending and session.transport is not None:
                    session.transport.abort()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
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

    def _new_session(self) -> _Session:
        self._connection_count += 1
        return _Session(self, self._connection_count)

    def _session_closed(self, session: _Session) -> None:
        self.connections.discard(session)
        self._closed.append(session)
        if self._waiters:
            self._notify()

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

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- introspection ----------------------------------------------------------------------------

    def bound(self) -> int:
        """Binds open now."""
        return sum(1 for s in self.connections if s.state == _BOUND)

    bound_count = bound

    def next_message_id(self) -> str:
        """A new message id: 16 hex digits, leading zeros kept (ids are strings)."""
        self._next_message_id += 1
        return f"{self._next_message_id:016X}"

    @property
    def receipts_sent(self) -> int:
        return sum(s.receipts_sent for s in (*self._closed, *self.connections))

    def stats_json(self) -> dict[str, Any]:
        """Totals, per-bind figures, statuses, malformed PDUs by reason, receipts."""
        now = time.time()
        sessions = sorted((*self._closed, *self.connections), key=lambda s: s.index)
        parts = self.statuses.get(0, 0)
        active = self._last_submit - self._first_submit
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
            "stalls": self.stalls,
            "receipts_sent": self.receipts_sent,
            "receipts": {
                "sent": self.receipts_sent,
                "acked": sum(s.receipts_acked for s in sessions),
                "refused": sum(s.receipts_nacked for s in sessions),
                "dropped": self.receipts_dropped,
                "scheduled": len(self._receipts_due),
                "waiting_for_receiver": sum(len(v) for v in self.pending_receipts.values()),
            },
            "uptime_s": round(time.monotonic() - self._started, 3),
            "fast_path": self.config.fast,
            "recording": self.config.record,
            "binds": [s.stats(now) for s in sessions if s.bound_at is not None],
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

    # -- shared by sessions -----------------------------------------------------------------------

    def _malformed_seen(self, session: _Session, reason: str, detail: str, command_id: int) -> None:
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

    def _receipt_due(self, session: _Session, part: Part, message_id: str) -> None:
        config = self.config
        rng = self.rng
        draw = rng.random()
        stat = self._receipt_stats[-1][0]
        for candidate, probability in self._receipt_stats:
            if draw < probability:
                stat = candidate
                break
            draw -= probability
        if part.registered_delivery & 3 == 2 and stat == "DELIVRD":
            return  # receipt asked for on failure only
        if config.receipt_drop_rate and rng.random() < config.receipt_drop_rate:
            self.receipts_dropped += 1
            return
        malformed = bool(
            config.malformed_receipt_rate and rng.random() < config.malformed_receipt_rate
        )
        delay = config.receipt_delay_ms
        if config.receipt_jitter_ms:
            jitter = config.receipt_jitter_ms
            delay = max(0.0, delay + rng.uniform(-jitter, jitter))
        receipt = _DueReceipt(
            system_id=session.system_id,
            origin=session,
            message_id=message_id,
            source=part.destination.decode("ascii"),
            destination=part.source.decode("ascii"),
            stat=stat,
            submitted=datetime.now(UTC).replace(tzinfo=None),
            text=_receipt_text(part),
            malformed=malformed,
        )
        loop = asyncio.get_running_loop()
        due = loop.time() + delay / 1000
        self._receipts_seq += 1
        heapq.heappush(self._receipts_due, (due, self._receipts_seq, receipt))
        if self._receipt_timer is None or due < self._receipt_timer_due:
            if self._receipt_timer is not None:
                self._receipt_timer.cancel()
            self._receipt_timer = loop.call_at(due, self._release_receipts)
            self._receipt_timer_due = due

    def _release_receipts(self) -> None:
        self._receipt_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() + 0.0005
        due = self._receipts_due
        by_session: dict[_Session, list[_DueReceipt]] = {}
        while due and due[0][0] <= now:
            receipt = heapq.heappop(due)[2]
            target = self._receiver_for(receipt)
            if target is None:
                self.pending_receipts.setdefault(receipt.system_id, []).append(receipt)
            else:
                by_session.setdefault(target, []).append(receipt)
        for session, receipts in by_session.items():
            session.send_receipts(receipts)
        if due:
            self._receipt_timer_due = due[0][0]
            self._receipt_timer = loop.call_at(self._receipt_timer_due, self._release_receipts)
        if self._waiters:
            self._notify()

    def _receiver_for(self, receipt: _DueReceipt) -> _Session | None:
        origin = receipt.origin
        if origin.can_receive and not origin._closing:
            return origin
        for session in sorted(self.connections, key=lambda s: s.index):
            if (
                session.can_receive
                and not session._closing
                and (session.system_id == receipt.system_id)
            ):
                return session
        return None

    def _flush_pending_receipts(self, session: _Session) -> None:
        waiting = self.pending_receipts.pop(session.system_id, None)
        if waiting:
            session.send_receipts(waiting)
            if self._waiters:
                self._notify()
