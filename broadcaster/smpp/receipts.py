"""Delivery receipts: tolerant parsing of what SMSCs send, and formatting for the mock SMSC.

Receipt text is SMSC-specific (SMPP 3.4 appendix B is only an example): keys change case
(`Text:` / `text:`), fields go missing or are added, dates come with or without seconds.
Gateways that parse it strictly lose receipts; this parser keeps whatever it can and returns
None only when no message id can be found. Message ids stay strings: `000A1F` is not `A1F`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Final, NamedTuple

from broadcaster.smpp.codec import HEADER_LENGTH, encode_tlv
from broadcaster.smpp.constants import (
    ESM_CLASS_DELIVERY_RECEIPT,
    ESM_CLASS_TYPE_MASK,
    TAG_MESSAGE_STATE,
    TAG_RECEIPTED_MESSAGE_ID,
)
from broadcaster.text.encoding import DATA_CODING_UCS2, decode_short_message

# message_state TLV values (SMPP 3.4 §5.2.28) and the stat text each one stands for.
MESSAGE_STATES: Final[dict[int, str]] = {
    1: "ENROUTE",
    2: "DELIVRD",
    3: "EXPIRED",
    4: "DELETED",
    5: "UNDELIV",
    6: "ACCEPTD",
    7: "UNKNOWN",
    8: "REJECTD",
}
_STATE_CODES: Final[dict[str, int]] = {stat: code for code, stat in MESSAGE_STATES.items()}
FINAL_STATS: Final = frozenset(
    {"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "ACCEPTD", "UNKNOWN", "REJECTD"}
)
"""Stats after which the SMSC will not report again on that message."""
UNDELIVERED_STATS: Final = FINAL_STATS - {"DELIVRD"}
"""Final stats that say the part did not reach the handset: every final one but DELIVRD
(ACCEPTD too: accepted on the subscriber's behalf by customer service). Its home in SQL is
`receipt_undelivered` (migration 0026), held equal by a test."""

# Spelled-out variants some SMSCs send, mapped to the SMPP 3.4 seven-letter forms.
_STAT_ALIASES: Final[dict[str, str]] = {
    "DELIVERED": "DELIVRD",
    "UNDELIVERABLE": "UNDELIV",
    "UNDELIVERED": "UNDELIV",
    "REJECTED": "REJECTD",
    "ACCEPTED": "ACCEPTD",
}

# A key is a word followed by ':' at the start or after whitespace; the value runs to the
# next key. `submit date` / `done date` contain a space (or '_', or nothing) and come first.
_KEY: Final = re.compile(r"(?:^|(?<=\s))(submit[ _]?date|done[ _]?date|[a-z_]+)\s*:", re.I)


class Receipt(NamedTuple):
    """What a delivery receipt says about one submitted part.

    `message_id` is the receipted_message_id TLV when present, else the text's `id:`;
    `text_message_id` keeps the text's `id:` when it differs (some SMSCs write it in decimal
    where the TLV and submit_sm_resp use hex), so matching can fall back to it.

    A NamedTuple, as `codec.ShortMessagePdu`: as immutable and typed as a frozen dataclass,
    built in a fraction of its time (one per part sent).
    """

    message_id: str
    stat: str
    err: str | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    sub: int | None = None
    dlvrd: int | None = None
    text_message_id: str | None = None
    source: str | None = None
    """The deliver_sm's source_addr: the handset the receipt is about, as the SMSC says."""

    @property
    def delivered(self) -> bool:
        """True when the handset received the part."""
        return self.stat == "DELIVRD"

    @property
    def final(self) -> bool:
        """True when no later receipt will come for this part (intermediate: ENROUTE...)."""
        return self.stat in FINAL_STATS


_STANDARD: Final = re.compile(
    r"id:(\S*) sub:(\S*) dlvrd:(\S*) submit date:(\S*) done date:(\S*) stat:(\S*) err:(\S*)"
    r" text:(.*)",
    re.DOTALL,
)
"""The appendix B layout exactly (the mock's, most SMSCs'): its fields in one match, the same
as `_KEY` finds in it (no value holds a space, so no key hides in one)."""
_PLAIN: Final = re.compile(
    r"id:([0-9A-Za-z]+) sub:([0-9]*) dlvrd:([0-9]*) submit date:([0-9]*) done date:([0-9]*)"
    r" stat:([A-Za-z]*) err:([0-9A-Za-z]*) text:"
)
"""`_STANDARD`'s start with values of letters and digits only (the text after `text:` is not
needed): the same groups, in octets that read the same in every data_coding but UCS-2."""
_STANDARD_KEYS: Final = ("id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text")
_DATE_CACHE: Final = 1024


def _fields(text: str) -> dict[str, str]:
    """Key -> value of a receipt text; keys lower-cased, `submit_date` spelled `submit date`."""
    standard = _STANDARD.fullmatch(text)
    if standard is not None:
        return dict(zip(_STANDARD_KEYS, standard.groups(), strict=True))
    return _any_fields(text)


def _any_fields(text: str) -> dict[str, str]:
    """`_fields` of any layout: key by key."""
    found: dict[str, str] = {}
    matches = list(_KEY.finditer(text))
    for index, match in enumerate(matches):
        key = match.group(1).lower().replace("_", " ")
        if key in ("submitdate", "donedate"):
            key = key[:-4] + " date"
        if key == "text":
            found.setdefault(key, text[match.end() :])
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        found.setdefault(key, text[match.end() : end].strip())
    return found


def _date(value: str | None) -> datetime | None:
    """YYMMDDhhmm or YYMMDDhhmmss (SMSC local time, as sent); anything else is None. Kept for
    the next receipts (they come by the thousand with the same minute: strptime is slow)."""
    if value is None:
        return None
    try:
        return _dates[value]
    except KeyError:
        pass
    if len(_dates) >= _DATE_CACHE:
        _dates.clear()
    date = _dates[value] = _parse_date(value)
    return date


_dates: dict[str, datetime | None] = {}


def _parse_date(value: str) -> datetime | None:
    if not value.isascii() or not value.isdigit():
        return None
    try:
        if len(value) == 10:
            return datetime.strptime(value, "%y%m%d%H%M")
        if len(value) == 12:
            return datetime.strptime(value, "%y%m%d%H%M%S")
    except ValueError:
        return None
    return None


def _count(value: str | None) -> int | None:
    if value is None or not value.isascii() or not value.isdigit():
        return None
    return int(value)


def _tlv_text(value: bytes | None) -> str | None:
    """A C-string TLV value as text (tolerates a missing NUL); None when absent or empty."""
    if value is None:
        return None
    text = value.split(b"\0", 1)[0].decode("latin-1").strip()
    return text or None


def _stat(text: str, tlvs: Mapping[int, bytes]) -> str:
    """A receipt's stat: its text's, upper case, spelled-out forms in the seven letters of
    SMPP 3.4; when the text has none, the message_state TLV's; else UNKNOWN."""
    stat = text.upper()
    stat = _STAT_ALIASES.get(stat, stat)
    if stat:
        return stat
    state = tlvs.get(TAG_MESSAGE_STATE)
    return MESSAGE_STATES.get(state[0], "UNKNOWN") if state else "UNKNOWN"


def parse_receipt(
    short_message: str, tlvs: Mapping[int, bytes], source: str | None = None
) -> Receipt | None:
    """The receipt carried by a deliver_sm's text and TLVs, or None when it names no message.

    Never raises on odd text: unknown fields are ignored, unreadable dates and counts become
    None, a missing stat is taken from the message_state TLV, else "UNKNOWN".
    """
    standard = _STANDARD.fullmatch(short_message)
    if standard is not None:  # (no dict: this runs for every part sent)
        text_id, sub, dlvrd, submitted, done, stat, err, _text = standard.groups()
    else:
        fields = _any_fields(short_message)
        text_id, sub, dlvrd = fields.get("id"), fields.get("sub"), fields.get("dlvrd")
        submitted, done = fields.get("submit date"), fields.get("done date")
        stat, err = fields.get("stat", ""), fields.get("err")
    text_id = text_id or None
    tlv_id = _tlv_text(tlvs.get(TAG_RECEIPTED_MESSAGE_ID))
    message_id = tlv_id or text_id
    if message_id is None:
        return None
    return Receipt(
        message_id=message_id,
        stat=_stat(stat, tlvs),
        err=err or None,
        submit_date=_date(submitted),
        done_date=_date(done),
        sub=_count(sub),
        dlvrd=_count(dlvrd),
        text_message_id=text_id if text_id != message_id else None,
        source=source or None,
    )


def read_receipt(
    user_data: bytes, data_coding: int, tlvs: Mapping[int, bytes], source: str | None = None
) -> Receipt | str:
    """The receipt a deliver_sm or data_sm carries (its short_message or message_payload as
    sent, its data_coding and TLVs), or its text when it names no message: `parse_receipt` of
    `decode_short_message`'s text, with a short cut for the common case.

    The short cut: the appendix B layout with plain values (`_PLAIN`), in a data_coding other
    than UCS-2, where GSM 03.38, ASCII and latin-1 write these octets alike: read without
    decoding the text as a whole, to the same receipt. Anything else takes the long way.
    """
    if data_coding != DATA_CODING_UCS2:
        plain = _PLAIN.match(user_data.decode("latin-1"))
        if plain is not None:  # as `parse_receipt` of `_STANDARD`'s groups (counts: digits)
            text_id, sub, dlvrd, submitted, done, stat, err = plain.groups()
            tlv_id = _tlv_text(tlvs.get(TAG_RECEIPTED_MESSAGE_ID)) if tlvs else None
            fields = (text_id, sub, dlvrd, submitted, done, err)
            return _plain_receipt(fields, tlv_id, _stat(stat, tlvs), source)
    text = decode_short_message(user_data, data_coding)
    receipt = parse_receipt(text, tlvs, source)
    return text if receipt is None else receipt


_PLAIN_PDU: Final = re.compile(
    r"[\x01-\x7f]{0,5}\x00..([\x01-\x7f]{0,20})\x00..[\x01-\x7f]{0,20}\x00(.)..\x00\x00..(.).(.)"
    + _PLAIN.pattern,
    re.DOTALL,
)
"""A whole deliver_sm body, read as latin-1, in the layout of `codec._FAST_RECEIPT` (groups:
source_addr, esm_class, data_coding, sm_length), whose short message starts as `_PLAIN` (its
seven groups follow)."""
_TLV_ID_HEAD: Final = "\x00\x1e\x00"
_TLV_STATE_HEAD: Final = "\x04\x27\x00\x01"


def read_receipt_pdu(pdu: bytes) -> Receipt | None:
    """The receipt of a whole deliver_sm PDU when it is a receipt as most SMSCs write it: the
    common layout (`codec.decode_receipt_fields`), a data_coding other than UCS-2, a short
    message in the appendix B layout with plain values (`read_receipt`'s short cut), and after
    it nothing, or receipted_message_id then message_state. None for anything else: the caller
    takes the long way (`codec.decode_receipt_fields`, then `read_receipt`), to the same receipt.

    The sending process's hot path for receipts (one per part sent): one decode and one match
    for the whole PDU, no dict of TLVs, no slice of the short message.
    """
    n = len(pdu)
    if n < HEADER_LENGTH or int.from_bytes(pdu[:4], "big") != n:
        return None
    octets = pdu.decode("latin-1")
    match = _PLAIN_PDU.match(octets, HEADER_LENGTH)
    if match is None:
        return None
    source, esm_class, data_coding, length, text_id, sub, dlvrd, submitted, done, stat, err = (
        match.groups()
    )
    if ord(esm_class) & ESM_CLASS_TYPE_MASK != ESM_CLASS_DELIVERY_RECEIPT:
        return None
    if ord(data_coding) == DATA_CODING_UCS2:
        return None
    end = match.end(4) + ord(length)  # (an octet: at most 255, over the maximum of 254)
    if match.end() > end or end > n or ord(length) > 254:
        return None
    state: str | None = None
    tlv_id: str | None = None
    if end < n:  # receipted_message_id (1 to 65 octets), then message_state: nothing else
        size = ord(octets[end + 3]) if end + 3 < n else 0
        state_at = end + 4 + size
        if (
            not 1 <= size <= 65
            or state_at + 5 != n
            or octets[end : end + 3] != _TLV_ID_HEAD
            or octets[state_at : state_at + 4] != _TLV_STATE_HEAD
        ):
            return None
        tlv_id = octets[end + 4 : state_at].split("\0", 1)[0].strip() or None
        state = octets[n - 1]
    stat = stat.upper()
    stat = _STAT_ALIASES.get(stat, stat)
    if not stat:  # `_stat`: the message_state TLV's, else UNKNOWN
        stat = MESSAGE_STATES.get(ord(state), "UNKNOWN") if state is not None else "UNKNOWN"
    return _plain_receipt((text_id, sub, dlvrd, submitted, done, err), tlv_id, stat, source)


def _plain_receipt(
    fields: tuple[str, str, str, str, str, str], tlv_id: str | None, stat: str, source: str | None
) -> Receipt:
    """The receipt of `_PLAIN`'s groups (id, sub, dlvrd, submit date, done date, err; counts
    digits or empty), the receipted_message_id TLV's id and the stat read, as `parse_receipt`
    reads them."""
    text_id, sub, dlvrd, submitted, done, err = fields
    message_id = tlv_id or text_id
    return Receipt(
        message_id,
        stat,
        err or None,
        _date(submitted),
        _date(done),
        int(sub) if sub else None,
        int(dlvrd) if dlvrd else None,
        text_id if text_id != message_id else None,
        source or None,
    )


def format_receipt(
    *,
    message_id: str,
    stat: str,
    submit_date: datetime,
    done_date: datetime,
    err: str = "000",
    sub: int = 1,
    dlvrd: int | None = None,
    text: str = "",
    seconds: bool = False,
) -> str:
    """Receipt text in the SMPP 3.4 appendix B layout (the mock SMSC's deliver_sm).

    `seconds=True` writes 12-digit dates, as some SMSCs do (aiosmpplib's ESME chokes on them).
    `dlvrd` defaults to `sub` when the stat is DELIVRD, else 0.
    """
    layout = "%y%m%d%H%M%S" if seconds else "%y%m%d%H%M"
    delivered = dlvrd if dlvrd is not None else (sub if stat == "DELIVRD" else 0)
    return (
        f"id:{message_id} sub:{sub:03d} dlvrd:{delivered:03d}"
        f" submit date:{submit_date.strftime(layout)} done date:{done_date.strftime(layout)}"
        f" stat:{stat} err:{err} text:{text[:20]}"
    )


def receipt_tlvs(message_id: str, stat: str) -> bytes:
    """receipted_message_id and message_state TLVs for a receipt (append to deliver_sm)."""
    state = _STATE_CODES.get(stat, _STATE_CODES["UNKNOWN"])
    return encode_tlv(TAG_RECEIPTED_MESSAGE_ID, message_id.encode("ascii") + b"\0") + encode_tlv(
        TAG_MESSAGE_STATE, bytes((state,))
    )
