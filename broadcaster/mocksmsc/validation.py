"""Strict validation of one submit_sm PDU (pure: bytes in, a `Part` or a `Malformed` out).

Beyond framing (command_length, C-strings NUL-terminated within their SMPP maxima, ASCII,
sm_length within the PDU, TLV framing): TON/NPI, priority and replace flags, SMPP times,
registered_delivery reserved bits, esm_class message type, data_coding not reserved,
short_message and message_payload not both set, sar_* TLVs all or none (and equal to the UDH's
concatenation when both are present), the UDH well formed (`parse_udh`), the user data
fitting its coding (GSM septets < 0x80, UCS-2 even length) and one SMS (160 septets or 140
octets with the UDH) unless in message_payload.

The mandatory fields are matched by one compiled regex (`SUBMIT_SM_FIELDS`); only when it fails
are they walked one by one (`diagnose_fields`) to name the first faulty field and its status.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Final, NamedTuple

from broadcaster.errors import SmppProtocolError
from broadcaster.smpp.codec import decode_short_message_pdu
from broadcaster.smpp.constants import (
    TAG_MESSAGE_PAYLOAD,
    TAG_SAR_MSG_REF_NUM,
    TAG_SAR_SEGMENT_SEQNUM,
    TAG_SAR_TOTAL_SEGMENTS,
    Status,
)

_RINVCMDLEN: Final = int(Status.ESME_RINVCMDLEN)
_RINVESMCLASS: Final = int(Status.ESME_RINVESMCLASS)
_RINVMSGLEN: Final = int(Status.ESME_RINVMSGLEN)
_RINVDCS: Final = int(Status.ESME_RINVDCS)

TON: Final = rb"[\x00-\x06]"
NPI: Final = rb"[\x00\x01\x03\x04\x06\x08-\x0a\x0e\x12]"
SMPP_TIME: Final = rb"(?:[0-9]{13}[0-4][0-9][-+R])?\x00"
_DATA_CODINGS: Final = rb"[\x00-\x0a\x0d\x0e\xc0-\xff]"

SUBMIT_SM_FIELDS: Final = re.compile(
    rb"[\x01-\x7f]{0,5}\x00"  # service_type
    + TON
    + NPI
    + rb"([\x01-\x7f]{0,20})\x00"  # source_addr (group 1)
    + TON
    + NPI
    + rb"([0-9]{1,20})\x00"  # destination_addr (group 2): an MSISDN, digits only
    + rb"..[\x00-\x03]"  # esm_class, protocol_id, priority_flag
    + SMPP_TIME  # schedule_delivery_time
    + SMPP_TIME  # validity_period
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
VALID_REGISTERED_DELIVERY: Final = bytes(
    1 if (rd & 3) != 3 and not rd & 0xE0 else 0 for rd in range(256)
)
"""1 at each registered_delivery value whose reserved bits are clear (indexed by the octet)."""
_SMS_BITS: Final = 140 * 8
_SAR_TAGS: Final = (TAG_SAR_MSG_REF_NUM, TAG_SAR_TOTAL_SEGMENTS, TAG_SAR_SEGMENT_SEQNUM)


Concatenation = tuple[int, int, int]
"""(reference, total, seq) of a part of a concatenated message."""


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
    concat: Concatenation | None
    """(reference, total, seq) from the UDH or the sar_* TLVs; None for a single part."""


# -- diagnosis of the mandatory fields ------------------------------------------------------------

# (name, kind, max size with NUL, status) of the mandatory fields, in order.
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
_OCTET_OK: Final[Mapping[str, re.Pattern[bytes]]] = {
    "ton": re.compile(TON),
    "npi": re.compile(NPI),
    "priority": re.compile(rb"[\x00-\x03]"),
    "flag": re.compile(rb"[\x00\x01]"),
    "data_coding": re.compile(_DATA_CODINGS),
    "zero": re.compile(rb"\x00"),
    "octet": re.compile(rb".", re.DOTALL),
}
_TIME: Final = re.compile(rb"[0-9]{13}[0-4][0-9][-+R]")


def _string_fault(name: str, kind: str, status: int, value: bytes) -> Malformed | None:
    """What is wrong with the value of a C-string field (ASCII; digits for an address; an SMPP
    time when a time is given), or None."""
    if not value.isascii():
        return Malformed(status, f"{name}_not_ascii")
    if kind == "address" and not value:
        return Malformed(status, f"{name}_empty")
    if kind == "address" and not value.isdigit():
        return Malformed(status, f"{name}_not_digits", f"{name} {value!r}")
    if kind == "time" and value and not _TIME.fullmatch(value):
        return Malformed(status, f"{name}_not_smpp_time", f"{name} {value!r}")
    return None


def _check_string(pdu: bytes, pos: int, field: tuple[str, str, int, int]) -> int:
    """Position after a valid C-string field starting at `pos`; raises `Malformed`."""
    name, kind, size, status = field
    nul = pdu.find(0, pos, pos + size)
    if nul < 0:
        if pdu.find(0, pos) < 0:
            raise Malformed(_RINVCMDLEN, f"{name}_unterminated")
        raise Malformed(status, f"{name}_too_long", f"{name} exceeds {size - 1} octets")
    fault = _string_fault(name, kind, status, pdu[pos:nul])
    if fault is not None:
        raise fault
    return nul + 1


def _check_octet(pdu: bytes, pos: int, field: tuple[str, str, int, int]) -> int:
    """Position after a valid one-octet field at `pos`; raises `Malformed`."""
    name, kind, _, status = field
    if not _OCTET_OK[kind].fullmatch(pdu, pos, pos + 1):
        raise Malformed(status, f"{name}_invalid", f"{name} 0x{pdu[pos]:02X}")
    return pos + 1


def diagnose_fields(pdu: bytes) -> Malformed:
    """Why `SUBMIT_SM_FIELDS` does not match: the first faulty mandatory field, walked in order."""
    pos, end = 16, len(pdu)
    try:
        for field in _FIELDS:
            if pos >= end:
                return Malformed(
                    _RINVCMDLEN, "mandatory_fields_truncated", f"PDU ends before {field[0]}"
                )
            check = _check_string if field[1] in ("cstring", "address", "time") else _check_octet
            pos = check(pdu, pos, field)
    except Malformed as fault:
        return fault
    if pos >= end:
        return Malformed(_RINVCMDLEN, "mandatory_fields_truncated", "PDU ends before sm_length")
    return Malformed(int(Status.ESME_RSYSERR), "mandatory_fields_unreadable")


# -- the user data header ---------------------------------------------------------------------

_CONCATENATION_IE_LENGTHS: Final = {0x00: 3, 0x08: 4}
"""Information elements of a concatenation (8-bit and 16-bit reference) and their length."""


def _information_elements(data: bytes, udh_end: int) -> Iterator[tuple[int, bytes]]:
    """(IEI, value) of each information element of the UDH, checked to fit within it."""
    pos = 1
    while pos < udh_end:
        if udh_end - pos < 2:
            raise Malformed(_RINVESMCLASS, "udh_element_truncated")
        iei, iel = data[pos], data[pos + 1]
        pos += 2
        if pos + iel > udh_end:
            raise Malformed(_RINVESMCLASS, "udh_element_past_end", f"IE 0x{iei:02X} len {iel}")
        yield iei, data[pos : pos + iel]
        pos += iel


def _concatenation_ie(iei: int, value: bytes) -> Concatenation:
    """(reference, total, seq) of a concatenation IE of the right length."""
    if len(value) != _CONCATENATION_IE_LENGTHS[iei]:
        raise Malformed(_RINVESMCLASS, "udh_concatenation_length", f"IE length {len(value)}")
    if iei == 0x00:
        return value[0], value[1], value[2]
    return (value[0] << 8) | value[1], value[2], value[3]


def parse_udh(data: bytes) -> tuple[int, Concatenation | None]:
    """(octets of the UDH including its length octet, concatenation or None) of user data
    whose UDHI is set; raises `Malformed` (ESME_RINVESMCLASS) for a faulty UDH."""
    if not data:
        raise Malformed(_RINVESMCLASS, "udh_missing", "UDHI set but short_message is empty")
    udh_end = 1 + data[0]
    if udh_end > len(data) or data[0] < 2:
        raise Malformed(_RINVESMCLASS, "udh_length_invalid", f"UDHL {data[0]} of {len(data)}")
    concat: Concatenation | None = None
    for iei, value in _information_elements(data, udh_end):
        if iei in _CONCATENATION_IE_LENGTHS:
            if concat is not None:
                raise Malformed(_RINVESMCLASS, "udh_concatenation_repeated")
            concat = _concatenation_ie(iei, value)
    if concat is not None and not 1 <= concat[2] <= concat[1]:
        raise Malformed(
            _RINVESMCLASS, "udh_sequence_out_of_range", f"part {concat[2]} of {concat[1]}"
        )
    return udh_end, concat


# -- the whole PDU ----------------------------------------------------------------------------


def _mandatory_fields(pdu: bytes) -> re.Match[bytes]:
    """The mandatory fields, framed and matched, with sm_length within the PDU."""
    end = len(pdu)
    if end < 16 or int.from_bytes(pdu[:4], "big") != end:
        raise Malformed(_RINVCMDLEN, "command_length_mismatch")
    m = SUBMIT_SM_FIELDS.match(pdu, 16)
    if m is None:
        raise diagnose_fields(pdu)
    start = m.end()
    sm_length = pdu[start - 1]
    if start + sm_length > end:
        raise Malformed(
            _RINVMSGLEN,
            "sm_length_past_end",
            f"sm_length {sm_length} with {end - start} octets left",
        )
    if sm_length > 254:
        raise Malformed(_RINVMSGLEN, "sm_length_over_254")
    return m


def _check_flags(esm_class: int, registered_delivery: int) -> None:
    """esm_class of a message type an ESME may submit; registered_delivery not reserved."""
    if esm_class & 0x3C not in (0x00, 0x08, 0x10):
        raise Malformed(_RINVESMCLASS, "esm_class_message_type", f"esm_class 0x{esm_class:02X}")
    if not VALID_REGISTERED_DELIVERY[registered_delivery]:
        raise Malformed(
            int(Status.ESME_RINVREGDLVFLG),
            "registered_delivery_reserved",
            f"registered_delivery 0x{registered_delivery:02X}",
        )


def _sar(tlvs: Mapping[int, bytes]) -> Concatenation | None:
    """(reference, total, seq) from the sar_* TLVs: all three or none, seq within 1..total."""
    present = [value for value in (tlvs.get(tag) for tag in _SAR_TAGS) if value is not None]
    if not present:
        return None
    if len(present) != 3:
        raise Malformed(int(Status.ESME_RMISSINGOPTPARAM), "sar_incomplete")
    ref, total, seq = (int.from_bytes(v, "big") for v in present)
    if not 1 <= seq <= total:
        raise Malformed(int(Status.ESME_RINVOPTPARAMVAL), "sar_sequence_out_of_range")
    return ref, total, seq


def _optional_parameters(
    pdu: bytes, short_message: bytes
) -> tuple[bytes, bool, Concatenation | None]:
    """(message data, whether it came in message_payload, SAR concatenation) from the TLVs."""
    try:
        tlvs = decode_short_message_pdu(pdu).tlvs
    except SmppProtocolError as exc:
        raise Malformed(exc.command_status, "tlv_stream", str(exc)) from None
    payload = tlvs.get(TAG_MESSAGE_PAYLOAD)
    if payload is None:
        return short_message, False, _sar(tlvs)
    if short_message:
        raise Malformed(_RINVMSGLEN, "short_message_and_message_payload")
    return payload, True, _sar(tlvs)


def _concatenation(
    esm_class: int, data: bytes, sar: Concatenation | None
) -> tuple[int, Concatenation | None]:
    """(UDH octets, concatenation) from the UDH when UDHI is set, else from the SAR TLVs."""
    if not esm_class & 0x40:
        return 0, sar
    udh_octets, concat = parse_udh(data)
    if sar is not None and concat != sar:  # both (aiosmpplib sends both): they must agree
        raise Malformed(_RINVESMCLASS, "udh_and_sar_disagree", f"UDH {concat}, SAR {sar}")
    return udh_octets, concat


def _check_user_data(user_data: bytes, data_coding: int, udh_octets: int, in_payload: bool) -> None:
    """The user data fits its coding, and one SMS unless it came in message_payload."""
    if not user_data:
        raise Malformed(_RINVMSGLEN, "empty_message")
    if data_coding in _SEVEN_BIT_CODINGS:
        if not user_data.isascii():
            raise Malformed(_RINVDCS, "gsm_septet_over_0x7f")
        limit = (_SMS_BITS - udh_octets * 8) // 7
    else:
        if data_coding in _UCS2_CODINGS and len(user_data) % 2:
            raise Malformed(_RINVDCS, "ucs2_odd_length")
        limit = 140 - udh_octets
    if not in_payload and len(user_data) > limit:
        raise Malformed(
            _RINVMSGLEN,
            "user_data_over_one_sms",
            f"{len(user_data)} > {limit} {'septets' if limit > 140 - udh_octets else 'octets'}",
        )


def validate_submit_sm(pdu: bytes) -> Part:
    """A whole submit_sm PDU checked field by field; raises `Malformed` at the first fault
    (the checks, in order, are listed in the module docstring)."""
    m = _mandatory_fields(pdu)
    start = m.end()
    sm_end = start + pdu[start - 1]
    esm_class = pdu[m.end(2) + 1]
    registered_delivery = pdu[start - 5]
    _check_flags(esm_class, registered_delivery)
    data_coding = pdu[start - 3]
    data, in_payload, sar = pdu[start:sm_end], False, None
    if sm_end < len(pdu):
        data, in_payload, sar = _optional_parameters(pdu, data)
    udh_octets, concat = _concatenation(esm_class, data, sar)
    user_data = data[udh_octets:]
    _check_user_data(user_data, data_coding, udh_octets, in_payload)
    return Part(
        m.group(1), m.group(2), esm_class, registered_delivery, data_coding, user_data, concat
    )
