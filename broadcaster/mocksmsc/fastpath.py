"""The fast path: answering runs of common, valid submit_sm in as few Python steps as possible.

Pure (no I/O): the session hands over a read's octets and a position, these functions append
the answers and record the parts, and return where they stopped: at the first PDU that is not
a common valid part (another command, a part with TLVs, a faulty one, an incomplete PDU...),
which the session then takes through its strict path (`validation.validate_submit_sm`), which
gives the reason. Used only when no scenario knob acts per PDU (`MockConfig.fast`).

A common valid submit_sm (a single part, or a part of a concatenated message with the usual
6-octet UDH) is checked by one compiled regex (`FAST_SUBMIT_SM`, `FAST_CONCATENATED_PART`) plus
an octet or two, answered from a packed header and a hex counter, and (single parts) recorded as
its raw octets, decoded only when `Record.messages` is read. The loops are written out, not
split into per-PDU calls: each call costs as much as the regex (loadtest/mock_capacity.py).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import Final

from broadcaster.mocksmsc.record import ConcatKey
from broadcaster.mocksmsc.validation import NPI, SMPP_TIME, TON, VALID_REGISTERED_DELIVERY
from broadcaster.smpp.constants import CommandId

MAX_SEQUENCE: Final = 0x7FFFFFFF
MESSAGE_ID_WIDTH: Final = 16
"""Message ids are 16 upper-case hex digits (leading zeros kept: ids are strings)."""

_HEADER: Final = struct.Struct("!IIII")
_pack_header = _HEADER.pack
_unpack_header = _HEADER.unpack_from
_SUBMIT_SM: Final = int(CommandId.SUBMIT_SM)
_SUBMIT_SM_RESP: Final = int(CommandId.SUBMIT_SM_RESP)
_OK_RESP_LENGTH: Final = 16 + MESSAGE_ID_WIDTH + 1

_REGISTERED_DELIVERY: Final = (
    b"[" + b"".join(b"\\x%02x" % rd for rd in range(256) if VALID_REGISTERED_DELIVERY[rd]) + b"]"
)

FAST_SUBMIT_SM: Final = re.compile(
    rb"[\x01-\x7f]{0,5}\x00"  # service_type
    + TON
    + NPI
    + rb"([\x01-\x7f]{0,20})\x00"  # source_addr (group 1)
    + TON
    + NPI
    + rb"([0-9]{1,20})\x00"  # destination_addr (group 2)
    + rb"[\x00-\x03\x80-\x83]"  # esm_class: no UDHI, default message type
    + rb".[\x00-\x03]"  # protocol_id, priority_flag
    + SMPP_TIME
    + SMPP_TIME
    + _REGISTERED_DELIVERY
    + rb"[\x00\x01]"  # replace_if_present_flag
    # data_coding, sm_default_msg_id, sm_length, short_message: GSM septets (< 0x80), 1..160,
    # or UCS-2 code units, 1..70 (group 3 or 4); no TLV after it (fullmatch to the PDU end).
    + rb"(?:\x00\x00.([\x00-\x7f]{1,160})|\x08\x00.((?:..){1,70}))",
    re.DOTALL,
)
"""The common valid submit_sm, in one C call: fullmatch() from PDU start + 16 to its end, then
check that sm_length (the octet before the short_message group) spans exactly to the end.
Whatever it accepts, `validate_submit_sm` accepts too (tests prove it); the rest goes there."""

FAST_CONCATENATED_PART: Final = re.compile(
    rb"[\x01-\x7f]{0,5}\x00"  # service_type
    + TON
    + NPI
    + rb"([\x01-\x7f]{0,20})\x00"  # source_addr (group 1)
    + TON
    + NPI
    + rb"([0-9]{1,20})\x00"  # destination_addr (group 2)
    + rb"[\x40-\x43\xc0-\xc3]"  # esm_class: UDHI, default message type
    + rb".[\x00-\x03]"  # protocol_id, priority_flag
    + SMPP_TIME
    + SMPP_TIME
    + _REGISTERED_DELIVERY
    + rb"[\x00\x01]"  # replace_if_present_flag
    # A 6-octet UDH holding only an 8-bit-reference concatenation (ref, total, seq: group 3 or
    # 5), then 1..153 GSM septets or 1..67 UCS-2 code units (group 4 or 6), to the PDU end.
    + rb"(?:\x00\x00.\x05\x00\x03(...)([\x00-\x7f]{1,153})"
    + rb"|\x08\x00.\x05\x00\x03(...)((?:..){1,67}))",
    re.DOTALL,
)
"""The common part of a concatenated message (as the project and most clients split them), in
one C call; the caller then checks the sequence and the parts received before."""

RECEIPT_TAIL: Final = re.compile(
    rb"\x00(.)..[^\x00]*\x00[^\x00]*\x00"  # destination's NUL, esm_class (group 1), ..., times
    + rb"(.).(.)..(.*)",  # registered_delivery, data_coding, short_message (groups 2 to 4)
    re.DOTALL,
)
"""What a receipt needs of a submit_sm the fast path accepted (it matched FAST_SUBMIT_SM or
FAST_CONCATENATED_PART: no TLV, short_message to the end), matched from the NUL that ends its
destination_addr: the same for every recipient of a text (`ReceiptScheduler.schedule_run`)."""

TakenPart = tuple[bytes, bytes, bytes]
"""What the fast path hands over of each part for its receipt, from the match it made anyway
(`ReceiptScheduler.schedule_run` used to find these again in each PDU): (source_addr, the
destination_addr: the handset, and the PDU from the NUL that ends it: `RECEIPT_TAIL`'s)."""


def receipt_fields(pdu: bytes) -> TakenPart:
    """`TakenPart` of a whole submit_sm the fast path accepts (as it hands them over)."""
    m = FAST_SUBMIT_SM.fullmatch(pdu, 16) or FAST_CONCATENATED_PART.fullmatch(pdu, 16)
    if m is None:
        raise ValueError("not a submit_sm the fast path takes")
    return m.group(1), m.group(2), pdu[m.end(2) :]


AddPart = Callable[[ConcatKey, int, int, int, bytes], "str | None"]
"""`Record.add_part`: None when the part is taken, else why it contradicts earlier parts."""


def fast_accepts(pdu: bytes) -> bool:
    """The fast path's test of one whole PDU, before the checks against parts received
    earlier (`answer_single_parts` and `answer_concatenated_parts` inline it)."""
    length, command_id, status, sequence = _unpack_header(pdu)
    if command_id != _SUBMIT_SM or status or not 0 < sequence <= MAX_SEQUENCE:
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


def answer_single_parts(
    data: bytes,
    pos: int,
    append: Callable[[bytes], None],
    keep: Callable[[bytes], None] | None,
    message_id: int,
    taken: Callable[[TakenPart], None] | None = None,
) -> tuple[int, int]:
    """Accept the run of common single parts at `data[pos:]`: append each one's
    submit_sm_resp (ESME_ROK, message id `message_id` + 1, + 2...) and hand its PDU to `keep`
    (None: not recorded) and what its receipt needs to `taken` (None: no receipts). Returns
    (where the run stopped, the last message id given)."""
    end = len(data)
    fullmatch = FAST_SUBMIT_SM.fullmatch
    pack = _pack_header
    unpack = _unpack_header
    while end - pos >= 16:
        length, command_id, status, sequence = unpack(data, pos)
        nxt = pos + length
        if command_id != _SUBMIT_SM or nxt > end or status or not 0 < sequence <= MAX_SEQUENCE:
            break
        m = fullmatch(data, pos + 16, nxt)
        if m is None:
            break
        start = m.start(m.lastindex or 0)
        if data[start - 1] != nxt - start:  # sm_length must span to the PDU end
            break
        message_id += 1
        append(pack(_OK_RESP_LENGTH, _SUBMIT_SM_RESP, 0, sequence))
        append(b"%016X\0" % message_id)
        if keep is not None:
            keep(data[pos:nxt])
        if taken is not None:
            taken((m.group(1), m.group(2), data[m.end(2) : nxt]))
        pos = nxt
    return pos, message_id


def answer_concatenated_parts(
    data: bytes,
    pos: int,
    append: Callable[[bytes], None],
    add_part: AddPart,
    message_id: int,
    taken: Callable[[TakenPart], None] | None = None,
) -> tuple[int, int]:
    """Accept the run of common concatenated parts at `data[pos:]` that `add_part` takes (it
    checks them against the parts received before, and records them): append each one's
    submit_sm_resp as `answer_single_parts` does, and what its receipt needs to `taken`.
    Returns (where the run stopped, the last message id given)."""
    end = len(data)
    fullmatch = FAST_CONCATENATED_PART.fullmatch
    pack = _pack_header
    unpack = _unpack_header
    while end - pos >= 16:
        length, command_id, status, sequence = unpack(data, pos)
        nxt = pos + length
        if command_id != _SUBMIT_SM or nxt > end or status or not 0 < sequence <= MAX_SEQUENCE:
            break
        m = fullmatch(data, pos + 16, nxt)
        if m is None:
            break
        start = m.start(m.lastindex or 0)
        ie = start - 3  # reference, total, seq
        total = data[ie + 1]
        seq = data[ie + 2]
        if data[ie - 4] != nxt - ie + 3 or not 1 <= seq <= total:
            break
        key = (m.group(1), m.group(2), data[ie])
        if add_part(key, total, seq, data[ie - 6], data[start:nxt]) is not None:
            break  # it contradicts the parts received before: the strict path says why
        message_id += 1
        append(pack(_OK_RESP_LENGTH, _SUBMIT_SM_RESP, 0, sequence))
        append(b"%016X\0" % message_id)
        if taken is not None:
            taken((key[0], key[1], data[m.end(2) : nxt]))
        pos = nxt
    return pos, message_id
