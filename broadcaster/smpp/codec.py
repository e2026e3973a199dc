"""SMPP 3.4 PDUs as bytes: framing, encoders and strict decoders. Pure: no asyncio, no I/O.

The hot path is `SubmitTemplate.encode`: a group's submit_sm body is encoded once per part
(`submit_templates`), and each recipient only splices a sequence number and a destination into
it. Its bytes equal aiosmpplib's ``SubmitSm(...).pdu()`` for the same fields (tests prove it).

Decoders check what a peer may get wrong (command_length, C-strings NUL-terminated within the
PDU and within the SMPP maxima, sm_length, TLV framing) and raise `SmppProtocolError` carrying
the command_status to answer with. Command ids and statuses received stay plain ints: an
unknown value is data to record, never a crash.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, NamedTuple

from broadcaster.errors import InputError, SmppProtocolError
from broadcaster.smpp.constants import (
    BIND_COMMANDS,
    BIND_RESP_COMMANDS,
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_TYPE_MASK,
    SMPP_VERSION_34,
    TAG_MESSAGE_PAYLOAD,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
    TAG_SC_INTERFACE_VERSION,
    CommandId,
    Status,
)
from broadcaster.text.encoding import EncodedMessage

HEADER: Final = struct.Struct("!IIII")
HEADER_FIELDS: Final = struct.Struct("!III")
"""command_id, command_status, sequence_number: unpack_from(pdu, 4) once the length is known."""
HEADER_LENGTH: Final = 16
MAX_PDU_LENGTH: Final = 64 * 1024
"""Largest command_length accepted: a submit_sm with a full message_payload stays far below."""

# SMPP 3.4 maximum sizes of C-Octet strings, terminating NUL included (§4, §5.2).
SERVICE_TYPE_SIZE: Final = 6
ADDRESS_SIZE: Final = 21
TIME_SIZE: Final = 17
MESSAGE_ID_SIZE: Final = 65
SYSTEM_ID_SIZE: Final = 16
SYSTEM_TYPE_SIZE: Final = 13
ADDRESS_RANGE_SIZE: Final = 41
MAX_SHORT_MESSAGE: Final = 254

_LENGTH: Final = struct.Struct("!I")
_TLV_HEAD: Final = struct.Struct("!HH")
_SM_FIXED: Final = struct.Struct("!BBBBB")  # registered_delivery .. sm_length
_pack_header = HEADER.pack
_pack_deliver_sm_resp = struct.Struct("!IIIIx").pack  # the header and a NUL: one per receipt
_unpack_sm_fixed = _SM_FIXED.unpack_from
_unpack_header = HEADER.unpack_from
_join = b"".join

_SUBMIT_SM: Final = int(CommandId.SUBMIT_SM)
_SUBMIT_SM_RESP: Final = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM: Final = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP: Final = int(CommandId.DELIVER_SM_RESP)
# Statuses as plain ints where decoding is hot (an IntEnum attribute costs ~90 ns to look up).
_RINVCMDLEN: Final = int(Status.ESME_RINVCMDLEN)
_RINVCMDID: Final = int(Status.ESME_RINVCMDID)
_RINVMSGLEN: Final = int(Status.ESME_RINVMSGLEN)
_RINVSERTYP: Final = int(Status.ESME_RINVSERTYP)
_RINVSRCADR: Final = int(Status.ESME_RINVSRCADR)
_RINVDSTADR: Final = int(Status.ESME_RINVDSTADR)
_RINVSCHED: Final = int(Status.ESME_RINVSCHED)
_RINVEXPIRY: Final = int(Status.ESME_RINVEXPIRY)
_SHORT_MESSAGE_IDS: Final = frozenset((_SUBMIT_SM, _DELIVER_SM))
_BIND_IDS: Final = frozenset(int(c) for c in BIND_COMMANDS)
_BIND_RESP_IDS: Final = frozenset(int(c) for c in BIND_RESP_COMMANDS)

# Sizes (min, max) of the value of TLVs whose length is fixed or bounded by SMPP 3.4 §5.3.2.
_TLV_SIZES: Final[dict[int, tuple[int, int]]] = {
    0x0017: (4, 4),  # qos_time_to_live
    0x0019: (1, 1),  # payload_type
    0x001D: (1, 256),  # additional_status_info_text
    0x001E: (1, 65),  # receipted_message_id
    0x0030: (1, 1),  # ms_msg_wait_facilities
    0x0201: (1, 1),  # privacy_indicator
    0x0204: (2, 2),  # user_message_reference
    0x020A: (2, 2),  # source_port
    0x020B: (2, 2),  # destination_port
    0x020C: (2, 2),  # sar_msg_ref_num
    0x020E: (1, 1),  # sar_total_segments
    0x020F: (1, 1),  # sar_segment_seqnum
    0x0210: (1, 1),  # sc_interface_version
    0x0423: (3, 3),  # network_error_code
    0x0426: (1, 1),  # more_messages_to_send
    0x0427: (1, 1),  # message_state
}


class Header(NamedTuple):
    """The 16-byte PDU header; command_id and status are plain ints (unknown values allowed)."""

    length: int
    command_id: int
    status: int
    sequence: int


class ShortMessagePdu(NamedTuple):
    """A decoded submit_sm or deliver_sm.

    A NamedTuple rather than a frozen dataclass: just as immutable and typed, and building one
    costs ~0.3 µs where a 20-field frozen dataclass costs ~2.4 µs (the mock decodes 200k/s).
    """

    command_id: int
    sequence: int
    service_type: str
    source_addr_ton: int
    source_addr_npi: int
    source_addr: str
    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    esm_class: int
    protocol_id: int
    priority_flag: int
    schedule_delivery_time: str
    validity_period: str
    registered_delivery: int
    replace_if_present_flag: int
    data_coding: int
    sm_default_msg_id: int
    short_message: bytes
    tlvs: dict[int, bytes]

    @property
    def is_receipt(self) -> bool:
        """True for an SMSC delivery receipt (esm_class message type bits = 0001)."""
        return self.esm_class & ESM_CLASS_TYPE_MASK == ESM_CLASS_DELIVERY_RECEIPT

    @property
    def user_data(self) -> bytes:
        """short_message, or the message_payload TLV when short_message is empty."""
        return self.short_message or self.tlvs.get(TAG_MESSAGE_PAYLOAD, b"")


class DataSmPdu(NamedTuple):
    """A decoded data_sm (SMPP 3.4 §4.7.1): what an ESME needs of one carrying a receipt."""

    sequence: int
    source_addr: str
    destination_addr: str
    esm_class: int
    data_coding: int
    tlvs: dict[int, bytes]

    @property
    def is_receipt(self) -> bool:
        """True for an SMSC delivery receipt (esm_class message type bits = 0001)."""
        return self.esm_class & ESM_CLASS_TYPE_MASK == ESM_CLASS_DELIVERY_RECEIPT

    @property
    def user_data(self) -> bytes:
        """The message_payload TLV (data_sm has no short_message field)."""
        return self.tlvs.get(TAG_MESSAGE_PAYLOAD, b"")


class BindPdu(NamedTuple):
    """A decoded bind_transmitter / bind_receiver / bind_transceiver."""

    command_id: int
    sequence: int
    system_id: str
    password: str
    system_type: str
    interface_version: int
    addr_ton: int
    addr_npi: int
    address_range: str


class BindRespPdu(NamedTuple):
    """A decoded bind_*_resp; an error response may come without body (system_id "")."""

    command_id: int
    status: int
    sequence: int
    system_id: str
    sc_interface_version: int | None


# --------------------------------------------------------------------------------------------
# Framing


class FrameBuffer:
    """Cut a TCP byte stream into whole PDUs.

    `feed` takes what the socket delivered and returns the complete PDUs, in order. A
    command_length below 16 or above the maximum means the stream cannot be resynchronised:
    `feed` raises `SmppProtocolError` (ESME_RINVCMDLEN) and the caller drops the connection.
    If complete PDUs came before the bad length in the same chunk, they are returned first
    (they may be submit_sm_resp of accepted parts) and `error` is set: check it after handling
    them; the next `feed` raises it anyway.

    Linear in the bytes received: complete PDUs are sliced straight out of the received chunk,
    and a partial PDU is kept as a list of chunks joined once, when it is complete.
    """

    __slots__ = ("_error", "_max_length", "_need", "_pending", "_pending_size")

    def __init__(self, max_pdu_length: int = MAX_PDU_LENGTH) -> None:
        self._max_length = max_pdu_length
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._need = 0
        self._error: SmppProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received that do not form a complete PDU yet."""
        return self._pending_size

    @property
    def error(self) -> SmppProtocolError | None:
        """The framing error found after the PDUs last returned, if any: drop the connection."""
        return self._error

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the PDUs they complete (possibly none)."""
        if self._error is not None:
            raise self._error
        if type(data) is not bytes:
            data = bytes(data)
        if self._pending:
            data = self._after_pending(data)
            if not data:
                return []
        pdus: list[bytes] = []
        append = pdus.append
        unpack_length = _LENGTH.unpack_from
        max_length = self._max_length
        pos = 0
        end = len(data)
        need = 4
        while end - pos >= 4:
            (length,) = unpack_length(data, pos)
            if length < HEADER_LENGTH or length > max_length:
                return self._broken(pdus, length)
            if end - pos < length:
                need = length
                break
            append(data[pos : pos + length])
            pos += length
        if pos < end:
            self._keep(data, pos, need)
        return pdus

    def _after_pending(self, data: bytes) -> bytes:
        """The kept partial PDU joined with `data`, or b"" (kept too) if still incomplete."""
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size < self._need:
            return b""
        data = _join(self._pending)
        self._pending = []
        self._pending_size = 0
        return data

    def _keep(self, data: bytes, pos: int, need: int) -> None:
        """Keep `data[pos:]`, the start of a PDU: `need` octets make it whole."""
        rest = data[pos:] if pos else data
        self._pending = [rest]
        self._pending_size = len(rest)
        self._need = need

    def _broken(self, pdus: list[bytes], length: int) -> list[bytes]:
        """A command_length out of bounds: the PDUs before it, then the error (see `error`)."""
        self._error = SmppProtocolError(
            f"command_length {length} is outside {HEADER_LENGTH}..{self._max_length}: "
            "the stream cannot be resynchronised, drop the connection",
            Status.ESME_RINVCMDLEN,
        )
        if not pdus:
            raise self._error
        return pdus


# --------------------------------------------------------------------------------------------
# Encoding helpers


def _cstring(value: str, name: str, max_size: int | None = None) -> bytes:
    """A C-Octet string: ASCII, no NUL, optionally within an SMPP maximum (NUL included)."""
    try:
        raw = value.encode("ascii")
    except UnicodeEncodeError as exc:
        raise InputError(f"{name} {value!r} must be ASCII") from exc
    if b"\0" in raw:
        raise InputError(f"{name} {value!r} must not contain NUL")
    if max_size is not None and len(raw) >= max_size:
        raise InputError(f"{name} {value!r} is longer than the SMPP maximum of {max_size - 1}")
    return raw + b"\0"


def _octet(value: int, name: str) -> int:
    if not 0 <= value <= 0xFF:
        raise InputError(f"{name} {value} must be within 0..255")
    return value


def encode_pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    """Any PDU from its header fields and an already encoded body (the mock's odd replies too)."""
    return _pack_header(HEADER_LENGTH + len(body), command_id, status, sequence) + body


def encode_tlv(tag: int, value: bytes) -> bytes:
    """One optional parameter: tag, length, value (a C-string value must include its NUL)."""
    if len(value) > 0xFFFF:
        raise InputError(f"TLV 0x{tag:04X} value of {len(value)} octets exceeds 65535")
    return _TLV_HEAD.pack(tag, len(value)) + value


def destination_bytes(msisdn: int | str) -> bytes:
    """A recipient's destination_addr, validated once per recipient (never per part).

    Digits only (ASCII), 1 to 20 of them: an international MSISDN without '+'.
    """
    text = str(msisdn) if isinstance(msisdn, int) else msisdn
    if not (0 < len(text) <= ADDRESS_SIZE - 1 and text.isascii() and text.isdigit()):
        raise InputError(f"destination {msisdn!r} must be 1 to 20 digits (MSISDN without '+')")
    return text.encode("ascii")


def smpp_absolute_time(when: datetime) -> str:
    """SMPP absolute time ``YYMMDDhhmmsstnnp`` (e.g. a broadcast's expiry as validity_period).

    A naive datetime is taken as UTC. The offset is written in quarter hours, signed correctly
    (aiosmpplib writes ``92-`` for UTC-01:00).
    """
    offset = when.utcoffset() or timedelta(0)
    quarters, remainder = divmod(abs(int(offset.total_seconds())), 900)
    if remainder:
        raise InputError(f"UTC offset {offset} is not a whole number of quarter hours")
    sign = "-" if offset < timedelta(0) else "+"
    return f"{when:%y%m%d%H%M%S}{when.microsecond // 100000}{quarters:02d}{sign}"


def smpp_relative_time(delta: timedelta) -> str:
    """SMPP relative time ``YYMMDDhhmmss000R`` (years of 365 days, months of 30, as aiosmpplib)."""
    if delta < timedelta(0) or delta > timedelta(weeks=63):
        raise InputError(f"relative validity {delta} must be within 0..63 weeks")
    days = delta.days
    hours, rest = divmod(delta.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    years, days = divmod(days, 365)
    months, days = divmod(days, 30)
    return f"{years:02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"


# --------------------------------------------------------------------------------------------
# submit_sm: templates and the hot path


@dataclass(frozen=True, slots=True)
class SubmitTemplate:
    """One submit_sm part of a group, pre-encoded except sequence number and destination.

    `prefix` runs from service_type to dest_addr_npi, `suffix` from esm_class to the end
    (short_message and TLVs included); the destination and its NUL go between them.
    """

    prefix: bytes
    suffix: bytes
    _tail: bytes = field(init=False, repr=False, compare=False)
    _fixed_length: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_tail", b"\0" + self.suffix)
        length = HEADER_LENGTH + len(self.prefix) + 1 + len(self.suffix)
        object.__setattr__(self, "_fixed_length", length)

    def encode(self, sequence: int, destination: bytes) -> bytes:
        """The complete PDU for one recipient; `destination` comes from `destination_bytes`.

        No validation here: this runs once per part sent.
        """
        return _join(
            (
                _pack_header(self._fixed_length + len(destination), _SUBMIT_SM, 0, sequence),
                self.prefix,
                destination,
                self._tail,
            )
        )


def submit_templates(
    message: EncodedMessage,
    *,
    source_addr: str,
    source_ton: int,
    source_npi: int,
    dest_ton: int = 1,
    dest_npi: int = 1,
    registered_delivery: int = 1,
    service_type: str = "",
    validity_period: str = "",
    priority_flag: int = 0,
) -> tuple[SubmitTemplate, ...]:
    """One `SubmitTemplate` per part of an encoded message; validates every field once.

    `validity_period` is an SMPP time string (`smpp_absolute_time` / `smpp_relative_time`) or
    "" for the SMSC default.
    """
    if validity_period and len(validity_period) != TIME_SIZE - 1:
        raise InputError(f"validity_period {validity_period!r} must be an SMPP time (16 chars)")
    prefix = (
        _cstring(service_type, "service_type", SERVICE_TYPE_SIZE)
        + bytes((_octet(source_ton, "source_ton"), _octet(source_npi, "source_npi")))
        + _cstring(source_addr, "source_addr", ADDRESS_SIZE)
        + bytes((_octet(dest_ton, "dest_ton"), _octet(dest_npi, "dest_npi")))
    )
    middle = (
        bytes((_octet(message.esm_class, "esm_class"), 0, _octet(priority_flag, "priority_flag")))
        + b"\0"  # schedule_delivery_time: immediately
        + _cstring(validity_period, "validity_period", TIME_SIZE)
        + bytes((_octet(registered_delivery, "registered_delivery"), 0))
        + bytes((_octet(message.data_coding, "data_coding"), 0))
    )
    templates: list[SubmitTemplate] = []
    for part in message.parts:
        if len(part) > MAX_SHORT_MESSAGE:
            raise InputError(
                f"a part of {len(part)} octets exceeds the {MAX_SHORT_MESSAGE} allowed"
            )
        templates.append(SubmitTemplate(prefix, middle + bytes((len(part),)) + part))
    return tuple(templates)


# --------------------------------------------------------------------------------------------
# Control PDUs


def encode_bind(
    command_id: int,
    sequence: int,
    system_id: str,
    password: str,
    system_type: str = "",
    interface_version: int = SMPP_VERSION_34,
    addr_ton: int = 0,
    addr_npi: int = 0,
    address_range: str = "",
) -> bytes:
    """A bind_transmitter / bind_receiver / bind_transceiver.

    system_id and password may be as long as the operator issued them (SMPP 3.4 says 15 and 8;
    real SMSCs issue longer ones, and aiosmpplib refuses passwords over 8).
    """
    if command_id not in _BIND_IDS:
        raise InputError(f"command_id 0x{command_id:08X} is not a bind")
    body = (
        _cstring(system_id, "system_id")
        + _cstring(password, "password")
        + _cstring(system_type, "system_type", SYSTEM_TYPE_SIZE)
        + bytes(
            (
                _octet(interface_version, "interface_version"),
                _octet(addr_ton, "addr_ton"),
                _octet(addr_npi, "addr_npi"),
            )
        )
        + _cstring(address_range, "address_range", ADDRESS_RANGE_SIZE)
    )
    return encode_pdu(command_id, 0, sequence, body)


def encode_bind_resp(
    command_id: int,
    sequence: int,
    status: int,
    system_id: str,
    sc_interface_version: int | None = None,
) -> bytes:
    """A bind_*_resp; `sc_interface_version` adds the TLV SMPP 3.4 SMSCs send (0x34)."""
    if command_id not in _BIND_RESP_IDS:
        raise InputError(f"command_id 0x{command_id:08X} is not a bind response")
    body = _cstring(system_id, "system_id", SYSTEM_ID_SIZE)
    if sc_interface_version is not None:
        body += encode_tlv(TAG_SC_INTERFACE_VERSION, bytes((_octet(sc_interface_version, "v"),)))
    return encode_pdu(command_id, status, sequence, body)


def encode_enquire_link(sequence: int) -> bytes:
    """An enquire_link (keeps the bind alive, detects a dead peer)."""
    return _pack_header(HEADER_LENGTH, CommandId.ENQUIRE_LINK, 0, sequence)


def encode_enquire_link_resp(sequence: int) -> bytes:
    """The answer to an enquire_link."""
    return _pack_header(HEADER_LENGTH, CommandId.ENQUIRE_LINK_RESP, 0, sequence)


def encode_unbind(sequence: int) -> bytes:
    """An unbind (orderly end of a session)."""
    return _pack_header(HEADER_LENGTH, CommandId.UNBIND, 0, sequence)


def encode_unbind_resp(sequence: int, status: int = 0) -> bytes:
    """The answer to an unbind."""
    return _pack_header(HEADER_LENGTH, CommandId.UNBIND_RESP, status, sequence)


def encode_generic_nack(sequence: int, status: int) -> bytes:
    """The answer to a PDU that cannot be understood (unknown command id, bad length...)."""
    return _pack_header(HEADER_LENGTH, CommandId.GENERIC_NACK, status, sequence)


def encode_submit_sm_resp(sequence: int, status: int, message_id: str) -> bytes:
    """A submit_sm_resp with its message_id (the body is always sent, "" gives a lone NUL)."""
    body = _cstring(message_id, "message_id", MESSAGE_ID_SIZE)
    return _pack_header(HEADER_LENGTH + len(body), _SUBMIT_SM_RESP, status, sequence) + body


def encode_deliver_sm_resp(sequence: int, status: int = 0) -> bytes:
    """A deliver_sm_resp (message_id unused: a single NUL, as SMPP 3.4 requires)."""
    return _pack_deliver_sm_resp(HEADER_LENGTH + 1, _DELIVER_SM_RESP, status, sequence)


def encode_deliver_sm(
    sequence: int,
    *,
    source_addr: str,
    destination_addr: str,
    esm_class: int,
    short_message: bytes,
    data_coding: int = 0,
    tlvs: bytes = b"",
    source_ton: int = 1,
    source_npi: int = 1,
    dest_ton: int = 1,
    dest_npi: int = 1,
    service_type: str = "",
    protocol_id: int = 0,
    priority_flag: int = 0,
    registered_delivery: int = 0,
) -> bytes:
    """A deliver_sm (the mock SMSC sends delivery receipts with it: esm_class 0x04)."""
    if len(short_message) > MAX_SHORT_MESSAGE:
        raise InputError(f"short_message of {len(short_message)} octets exceeds 254")
    body = _join(
        (
            _cstring(service_type, "service_type", SERVICE_TYPE_SIZE),
            bytes((_octet(source_ton, "source_ton"), _octet(source_npi, "source_npi"))),
            _cstring(source_addr, "source_addr", ADDRESS_SIZE),
            bytes((_octet(dest_ton, "dest_ton"), _octet(dest_npi, "dest_npi"))),
            _cstring(destination_addr, "destination_addr", ADDRESS_SIZE),
            bytes(
                (
                    _octet(esm_class, "esm_class"),
                    _octet(protocol_id, "protocol_id"),
                    _octet(priority_flag, "priority_flag"),
                )
            ),
            b"\0\0",  # schedule_delivery_time, validity_period: unused in deliver_sm
            bytes((_octet(registered_delivery, "registered_delivery"), 0)),
            bytes((_octet(data_coding, "data_coding"), 0, len(short_message))),
            short_message,
            tlvs,
        )
    )
    return encode_pdu(_DELIVER_SM, 0, sequence, body)


def encode_data_sm(
    sequence: int,
    *,
    source_addr: str,
    destination_addr: str,
    esm_class: int,
    tlvs: bytes = b"",
    data_coding: int = 0,
) -> bytes:
    """A data_sm (the mock SMSC may send receipts with it: esm_class 0x04, all in TLVs)."""
    body = _join(
        (
            b"\0\1\1",  # service_type "", source ton/npi
            _cstring(source_addr, "source_addr", ADDRESS_SIZE),
            b"\1\1",
            _cstring(destination_addr, "destination_addr", ADDRESS_SIZE),
            bytes((_octet(esm_class, "esm_class"), 0, _octet(data_coding, "data_coding"))),
            tlvs,
        )
    )
    return encode_pdu(int(CommandId.DATA_SM), 0, sequence, body)


def encode_data_sm_resp(sequence: int, status: int = 0) -> bytes:
    """A data_sm_resp (message_id unused by an ESME answering a receipt: a single NUL)."""
    return _pack_header(HEADER_LENGTH + 1, CommandId.DATA_SM_RESP, status, sequence) + b"\0"


def encode_alert_notification(sequence: int, source_addr: str, esme_addr: str) -> bytes:
    """An alert_notification (SMSC to ESME; SMPP 3.4 §4.12.1 defines no response)."""
    body = _join(
        (
            b"\1\1",
            _cstring(source_addr, "source_addr", ADDRESS_SIZE),
            b"\1\1",
            _cstring(esme_addr, "esme_addr", ADDRESS_SIZE),
        )
    )
    return encode_pdu(int(CommandId.ALERT_NOTIFICATION), 0, sequence, body)


# --------------------------------------------------------------------------------------------
# Decoding


def _cstring_error(
    pdu: bytes, start: int, max_size: int, name: str, too_long: int
) -> SmppProtocolError:
    """Why a C-string was not found within `max_size` octets: unterminated or too long."""
    if pdu.find(b"\0", start) < 0:
        return SmppProtocolError(
            f"{name} is not NUL-terminated within the PDU", Status.ESME_RINVCMDLEN
        )
    return SmppProtocolError(f"{name} is longer than {max_size - 1} octets", too_long)


def _length_error(length: int, actual: int) -> SmppProtocolError:
    return SmppProtocolError(
        f"command_length {length} does not match the {actual} octets of the PDU",
        Status.ESME_RINVCMDLEN,
    )


def decode_header(pdu: bytes) -> Header:
    """The header of a whole PDU (as `FrameBuffer` yields it); never raises on unknown values."""
    if len(pdu) < HEADER_LENGTH:
        raise SmppProtocolError(
            f"a PDU of {len(pdu)} octets is shorter than its header", Status.ESME_RINVCMDLEN
        )
    header = Header._make(_unpack_header(pdu))
    if header.length != len(pdu):
        raise _length_error(header.length, len(pdu))
    return header


def decode_submit_sm_resp(pdu: bytes) -> tuple[int, int, str]:
    """(sequence, status, message_id) of a submit_sm_resp.

    An error response may have no body at all: message_id is then "". Octets after the
    message_id's NUL (SMPP 5.0 TLVs) are ignored. The id is kept as the exact string received.
    """
    n = len(pdu)
    if n < HEADER_LENGTH:
        raise SmppProtocolError(
            f"a PDU of {n} octets is shorter than its header", Status.ESME_RINVCMDLEN
        )
    length, command_id, status, sequence = _unpack_header(pdu)
    if length != n:
        raise _length_error(length, n)
    if command_id != _SUBMIT_SM_RESP:
        raise SmppProtocolError(
            f"command_id 0x{command_id:08X} is not a submit_sm_resp", Status.ESME_RINVCMDID
        )
    if n == HEADER_LENGTH:
        return sequence, status, ""
    nul = pdu.find(b"\0", HEADER_LENGTH, HEADER_LENGTH + MESSAGE_ID_SIZE)
    if nul < 0:
        raise _cstring_error(
            pdu, HEADER_LENGTH, MESSAGE_ID_SIZE, "message_id", Status.ESME_RINVMSGID
        )
    return sequence, status, pdu[HEADER_LENGTH:nul].decode("latin-1")


def _decode_tlvs(pdu: bytes, pos: int, end: int) -> dict[int, bytes]:
    """The optional parameters from `pos` to `end`; a repeated tag keeps its last value."""
    tlvs: dict[int, bytes] = {}
    unpack = _TLV_HEAD.unpack_from
    sizes = _TLV_SIZES
    while pos < end:
        if end - pos < 4:
            raise SmppProtocolError(
                f"{end - pos} stray octets where a TLV header (4) was expected",
                Status.ESME_RINVOPTPARSTREAM,
            )
        tag, size = unpack(pdu, pos)
        pos += 4
        if pos + size > end:
            raise SmppProtocolError(
                f"TLV 0x{tag:04X} of length {size} runs past the end of the PDU",
                Status.ESME_RINVOPTPARSTREAM,
            )
        bounds = sizes.get(tag)
        if bounds is not None and not bounds[0] <= size <= bounds[1]:
            raise SmppProtocolError(
                f"TLV 0x{tag:04X} has length {size}, expected {bounds[0]}..{bounds[1]}",
                Status.ESME_RINVPARLEN,
            )
        tlvs[tag] = pdu[pos : pos + size]
        pos += size
    return tlvs


def _short_message_header(pdu: bytes) -> tuple[int, int]:
    """(command_id, sequence) of a whole submit_sm or deliver_sm; SmppProtocolError if not."""
    n = len(pdu)
    try:
        length, command_id, _status, sequence = _unpack_header(pdu)
    except struct.error:
        raise SmppProtocolError(
            f"a PDU of {n} octets is shorter than its header", _RINVCMDLEN
        ) from None
    if length != n:
        raise _length_error(length, n)
    if command_id not in _SHORT_MESSAGE_IDS:
        raise SmppProtocolError(
            f"command_id 0x{command_id:08X} is not submit_sm/deliver_sm", _RINVCMDID
        )
    return command_id, sequence


def _smpp_time(pdu: bytes, pos: int, name: str, status: int) -> tuple[str, int]:
    """An SMPP time C-string at `pos`, empty or of 16 characters: (value, index of its NUL).

    A non-ASCII value raises UnicodeDecodeError, which the caller turns into `status`.
    """
    nul = pdu.find(0, pos, pos + TIME_SIZE)
    if nul == pos:
        return "", nul
    if nul - pos == TIME_SIZE - 1:
        return pdu[pos:nul].decode("ascii"), nul
    if nul < 0:
        raise _cstring_error(pdu, pos, TIME_SIZE, name, status)
    raise SmppProtocolError(f"{name} is not an SMPP time", status)


def decode_short_message_pdu(pdu: bytes) -> ShortMessagePdu:
    """A submit_sm or deliver_sm, strictly checked (the mock SMSC answers with the status).

    Written flat, with statuses as plain ints and empty strings short-circuited: the mock
    SMSC runs it for every part it receives.
    """
    command_id, sequence = _short_message_header(pdu)
    n = len(pdu)
    find = pdu.find
    status = _RINVSERTYP  # the status to answer if the field being read is bad
    try:
        pos = HEADER_LENGTH
        nul = find(0, pos, pos + SERVICE_TYPE_SIZE)
        if nul < 0:
            raise _cstring_error(pdu, pos, SERVICE_TYPE_SIZE, "service_type", status)
        service_type = pdu[pos:nul].decode("ascii") if nul != pos else ""
        source_ton = pdu[nul + 1]
        source_npi = pdu[nul + 2]
        pos = nul + 3
        status = _RINVSRCADR
        nul = find(0, pos, pos + ADDRESS_SIZE)
        if nul < 0:
            raise _cstring_error(pdu, pos, ADDRESS_SIZE, "source_addr", status)
        source_addr = pdu[pos:nul].decode("ascii")
        dest_ton = pdu[nul + 1]
        dest_npi = pdu[nul + 2]
        pos = nul + 3
        status = _RINVDSTADR
        nul = find(0, pos, pos + ADDRESS_SIZE)
        if nul < 0:
            raise _cstring_error(pdu, pos, ADDRESS_SIZE, "destination_addr", status)
        destination_addr = pdu[pos:nul].decode("ascii")
        esm_class = pdu[nul + 1]
        protocol_id = pdu[nul + 2]
        priority_flag = pdu[nul + 3]
        status = _RINVSCHED
        schedule_delivery_time, nul = _smpp_time(pdu, nul + 4, "schedule_delivery_time", status)
        status = _RINVEXPIRY
        validity_period, nul = _smpp_time(pdu, nul + 1, "validity_period", status)
        (
            registered_delivery,
            replace_if_present_flag,
            data_coding,
            sm_default_msg_id,
            sm_length,
        ) = _unpack_sm_fixed(pdu, nul + 1)
    except UnicodeDecodeError:
        raise SmppProtocolError("a C-string field is not ASCII", status) from None
    except (IndexError, struct.error):
        raise SmppProtocolError("the PDU ends inside its mandatory fields", _RINVCMDLEN) from None
    pos = nul + 6
    end = pos + sm_length
    if sm_length > MAX_SHORT_MESSAGE or end > n:
        raise SmppProtocolError(
            f"sm_length {sm_length} exceeds the {min(MAX_SHORT_MESSAGE, n - pos)} octets available",
            _RINVMSGLEN,
        )
    return ShortMessagePdu(
        command_id,
        sequence,
        service_type,
        source_ton,
        source_npi,
        source_addr,
        dest_ton,
        dest_npi,
        destination_addr,
        esm_class,
        protocol_id,
        priority_flag,
        schedule_delivery_time,
        validity_period,
        registered_delivery,
        replace_if_present_flag,
        data_coding,
        sm_default_msg_id,
        pdu[pos:end],
        _decode_tlvs(pdu, end, n) if end < n else {},
    )


_FAST_RECEIPT: Final = re.compile(
    rb"[\x01-\x7f]{0,5}\x00..([\x01-\x7f]{0,20})\x00..[\x01-\x7f]{0,20}\x00(.)..\x00\x00..(.).(.)",
    re.DOTALL,
)
"""The mandatory fields of a deliver_sm in the layout SMSCs write receipts in: ASCII C-strings
within the SMPP maxima, no schedule_delivery_time nor validity_period (groups: source_addr,
esm_class, data_coding, sm_length). What it matches `decode_short_message_pdu` reads the same;
what it does not goes through that strict decoder."""


def decode_receipt_fields(pdu: bytes) -> tuple[str, int, bytes, dict[int, bytes]] | None:
    """(source_addr, data_coding, user_data, tlvs) of a whole deliver_sm receipt (esm_class
    message type 0001) in the common layout (`_FAST_RECEIPT`), as `decode_short_message_pdu`
    reads them (`user_data`: the short_message, or the message_payload TLV when it is empty);
    None for anything else, a PDU that decoder would refuse included: the caller then decodes
    it strictly (and answers with its status).

    The ESME's hot path for receipts (one per part sent): no 20-field tuple, no decode of the
    fields a receipt does not use.
    """
    n = len(pdu)
    if n < HEADER_LENGTH or _LENGTH.unpack_from(pdu)[0] != n:
        return None
    match = _FAST_RECEIPT.match(pdu, HEADER_LENGTH)
    if match is None:
        return None
    if pdu[match.start(2)] & ESM_CLASS_TYPE_MASK != ESM_CLASS_DELIVERY_RECEIPT:
        return None
    pos = match.end()
    sm_length = pdu[pos - 1]
    end = pos + sm_length
    if sm_length > MAX_SHORT_MESSAGE or end > n:
        return None
    tlvs: dict[int, bytes] | None = {}
    if end < n:
        tlvs = _receipt_tlvs(pdu, end, n)
    if tlvs is None:
        try:
            tlvs = _decode_tlvs(pdu, end, n)
        except SmppProtocolError:
            return None
    source = match.group(1).decode("ascii")
    short_message = pdu[pos:end]
    data_coding = pdu[pos - 3]
    if short_message:
        return source, data_coding, short_message, tlvs
    return source, data_coding, tlvs.get(TAG_MESSAGE_PAYLOAD, b""), tlvs


_RECEIPTED_MESSAGE_ID_HEAD: Final = b"\x00\x1e\x00"
_MESSAGE_STATE_HEAD: Final = b"\x04\x27\x00\x01"


def _receipt_tlvs(pdu: bytes, pos: int, end: int) -> dict[int, bytes] | None:
    """The TLVs from `pos` to `end` when they are receipted_message_id (1 to 65 octets) then
    message_state, as most SMSCs write them (what `_decode_tlvs` reads of them); else None."""
    if end - pos < 10 or pdu[pos : pos + 3] != _RECEIPTED_MESSAGE_ID_HEAD:
        return None
    size = pdu[pos + 3]
    state = pos + 4 + size
    if not 1 <= size <= 65 or state + 5 != end or pdu[state : state + 4] != _MESSAGE_STATE_HEAD:
        return None
    return {TAG_RECEIPTED_MESSAGE_ID: pdu[pos + 4 : state], TAG_MESSAGE_STATE: pdu[end - 1 : end]}


def _read_cstring(
    pdu: bytes, pos: int, max_size: int | None, name: str, bad: int
) -> tuple[str, int]:
    """A C-string at `pos` (ASCII, NUL within the PDU and `max_size`) and the position after."""
    limit = len(pdu) if max_size is None else pos + max_size
    nul = pdu.find(b"\0", pos, limit)
    if nul < 0:
        raise _cstring_error(pdu, pos, max_size or len(pdu), name, bad)
    try:
        return pdu[pos:nul].decode("ascii"), nul + 1
    except UnicodeDecodeError:
        raise SmppProtocolError(f"{name} is not ASCII", bad) from None


def decode_data_sm(pdu: bytes) -> DataSmPdu:
    """A data_sm, checked; SmppProtocolError (with the status to answer) when unreadable."""
    n = len(pdu)
    length, _command_id, _status, sequence = _unpack_header(pdu)
    if length != n:
        raise _length_error(length, n)
    _service, pos = _read_cstring(
        pdu, HEADER_LENGTH, SERVICE_TYPE_SIZE, "service_type", _RINVSERTYP
    )
    source, pos = _read_cstring(pdu, pos + 2, ADDRESS_SIZE, "source_addr", _RINVSRCADR)
    destination, pos = _read_cstring(pdu, pos + 2, ADDRESS_SIZE, "destination_addr", _RINVDSTADR)
    if pos + 3 > n:
        raise SmppProtocolError("the PDU ends inside its mandatory fields", _RINVCMDLEN)
    esm_class, data_coding = pdu[pos], pdu[pos + 2]
    return DataSmPdu(
        sequence, source, destination, esm_class, data_coding, _decode_tlvs(pdu, pos + 3, n)
    )


def decode_bind(pdu: bytes) -> BindPdu:
    """A bind_* request, for the mock SMSC. Credentials of any length are accepted (see
    `encode_bind`); system_type and address_range must keep to SMPP 3.4 maxima."""
    header = decode_header(pdu)
    if header.command_id not in _BIND_IDS:
        raise SmppProtocolError(
            f"command_id 0x{header.command_id:08X} is not a bind", Status.ESME_RINVCMDID
        )
    system_id, pos = _read_cstring(pdu, HEADER_LENGTH, None, "system_id", Status.ESME_RINVSYSID)
    password, pos = _read_cstring(pdu, pos, None, "password", Status.ESME_RINVPASWD)
    system_type, pos = _read_cstring(
        pdu, pos, SYSTEM_TYPE_SIZE, "system_type", Status.ESME_RINVSYSTYP
    )
    if pos + 3 > len(pdu):
        raise SmppProtocolError("the bind ends inside its mandatory fields", Status.ESME_RINVCMDLEN)
    interface_version, addr_ton, addr_npi = pdu[pos], pdu[pos + 1], pdu[pos + 2]
    address_range, pos = _read_cstring(
        pdu, pos + 3, ADDRESS_RANGE_SIZE, "address_range", Status.ESME_RINVPARLEN
    )
    if pos != len(pdu):
        raise SmppProtocolError(
            f"{len(pdu) - pos} octets after the last field of a bind", Status.ESME_RINVCMDLEN
        )
    return BindPdu(
        header.command_id,
        header.sequence,
        system_id,
        password,
        system_type,
        interface_version,
        addr_ton,
        addr_npi,
        address_range,
    )


def decode_bind_resp(pdu: bytes) -> BindRespPdu:
    """A bind_*_resp. Tolerates an empty body (error responses) and a system_id longer than
    SMPP 3.4's 15: it is informative, and refusing it would refuse the bind."""
    header = decode_header(pdu)
    if header.command_id not in _BIND_RESP_IDS:
        raise SmppProtocolError(
            f"command_id 0x{header.command_id:08X} is not a bind response", Status.ESME_RINVCMDID
        )
    if header.length == HEADER_LENGTH:
        return BindRespPdu(header.command_id, header.status, header.sequence, "", None)
    system_id, pos = _read_cstring(pdu, HEADER_LENGTH, None, "system_id", Status.ESME_RINVSYSID)
    tlvs = _decode_tlvs(pdu, pos, len(pdu))
    version = tlvs.get(TAG_SC_INTERFACE_VERSION)
    return BindRespPdu(
        header.command_id,
        header.status,
        header.sequence,
        system_id,
        version[0] if version else None,
    )
