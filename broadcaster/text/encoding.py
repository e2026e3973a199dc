"""GSM 03.38 / UCS-2 detection, transliteration, encoding and splitting into SMS parts.

Pure and run once per (area, language) group, never per recipient. The bytes are those
aiosmpplib produces for the same text (GSM 03.38 unpacked, one septet per octet, data_coding 0;
UCS-2 as UTF-16-BE, data_coding 8), but the splitting is ours: aiosmpplib counts characters
where the limit is in septets, so a text with `€` or `{` would overflow its parts.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

from broadcaster.errors import InputError

# GSM 03.38 default alphabet; the index is the septet. 0x1B is the escape to the extension table.
_GSM_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
_ESCAPE: Final = 0x1B
# GSM 03.38 extension table: character -> septet sent after the escape.
_GSM_EXTENSION: Final[dict[str, int]] = {
    "\f": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}
_GSM_BASIC_CODES: Final[dict[str, int]] = {
    char: code for code, char in enumerate(_GSM_BASIC) if code != _ESCAPE
}
GSM7_CHARS: Final[frozenset[str]] = frozenset(_GSM_BASIC_CODES) | frozenset(_GSM_EXTENSION)
"""Every character representable in the GSM 03.38 default alphabet (basic + extension)."""

# str.translate table: character -> its septets as latin-1 code points, so that
# ``text.translate(_TO_SEPTETS).encode("latin-1")`` is the unpacked GSM encoding.
_TO_SEPTETS: Final[dict[int, str]] = {ord(c): chr(v) for c, v in _GSM_BASIC_CODES.items()} | {
    ord(c): chr(_ESCAPE) + chr(v) for c, v in _GSM_EXTENSION.items()
}
_FROM_SEPTETS: Final[dict[int, str]] = {v: c for c, v in _GSM_BASIC_CODES.items()}
_FROM_EXTENSION: Final[dict[int, str]] = {v: c for c, v in _GSM_EXTENSION.items()}
_SEPTET_TABLE: Final[dict[int, str]] = {
    octet: _FROM_SEPTETS.get(octet & 0x7F, " ") for octet in range(256) if octet != _ESCAPE
}
"""Each octet but the escape to its character, as `decode_gsm7` reads it one by one."""
_ESCAPE_OCTET: Final = bytes((_ESCAPE,))
_LATIN1_OCTETS: Final = bytes(o for o, c in _SEPTET_TABLE.items() if ord(c) < 256)
"""Octets whose character is in Latin-1 (not the escape): a text of only these is translated
octet for octet."""
_TO_LATIN1: Final = bytes(ord(_SEPTET_TABLE.get(o, " ")) % 256 for o in range(256))

GSM7_SINGLE_SEPTETS: Final = 160
GSM7_PART_SEPTETS: Final = 153  # 160 minus the 6-octet UDH (7 septets)
UCS2_SINGLE_UNITS: Final = 70
UCS2_PART_UNITS: Final = 67  # (140 - 6 octets of UDH) // 2
MAX_PARTS: Final = 255  # the UDH part counters are one octet

DATA_CODING_GSM7: Final = 0x00
DATA_CODING_UCS2: Final = 0x08
ESM_CLASS_SINGLE: Final = 0x00
ESM_CLASS_UDHI: Final = 0x40

Encoding = Literal["gsm7", "ucs2"]


def is_gsm7(text: str) -> bool:
    """True when every character fits the GSM 03.38 default alphabet (basic or extension)."""
    return GSM7_CHARS.issuperset(text)


def non_gsm7_chars(text: str) -> list[str]:
    """The characters that force UCS-2, each once, in order of first appearance (for warnings)."""
    seen: dict[str, None] = {}
    for char in text:
        if char not in GSM7_CHARS:
            seen.setdefault(char, None)
    return list(seen)


def gsm7_septets(text: str) -> int:
    """Septets the text costs in GSM 03.38: extension characters (``{}[]~\\|^€`` and form feed)
    count two. Raises InputError for a character outside the alphabet."""
    septets = len(text)
    for char in text:
        if char not in _GSM_BASIC_CODES:
            if char not in _GSM_EXTENSION:
                raise InputError(f"{char!r} is not in the GSM 03.38 alphabet: the text needs UCS-2")
            septets += 1
    return septets


def ucs2_units(text: str) -> int:
    """UTF-16 code units the text costs in UCS-2 (a character outside the BMP counts two)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def encode_gsm7(text: str) -> bytes:
    """GSM 03.38 unpacked (one septet per octet), byte for byte what aiosmpplib's
    ``GSM7BitCodec().encode`` produces. Raises InputError outside the alphabet."""
    if not is_gsm7(text):
        raise InputError(
            f"not GSM 03.38: {''.join(non_gsm7_chars(text))!r}; encode it as UCS-2 or transliterate"
        )
    return text.translate(_TO_SEPTETS).encode("latin-1")


def decode_gsm7(data: bytes) -> str:
    """Inverse of `encode_gsm7` (used to check parts, by the mock SMSC's records and for every
    receipt's text).

    Tolerant: an unknown escape or a trailing escape decodes as a space, never raises. Without
    an escape, one translate (a receipt's text: 7 µs a character by character).
    """
    if not data.translate(None, _LATIN1_OCTETS):  # (receipts: ASCII text, 0.2 µs)
        return data.translate(_TO_LATIN1).decode("latin-1")
    if _ESCAPE_OCTET not in data:
        return data.decode("latin-1").translate(_SEPTET_TABLE)
    out: list[str] = []
    escaped = False
    for octet in data:
        if escaped:
            out.append(_FROM_EXTENSION.get(octet, " "))
            escaped = False
        elif octet == _ESCAPE:
            escaped = True
        else:
            out.append(_FROM_SEPTETS.get(octet & 0x7F, " "))
    if escaped:
        out.append(" ")
    return "".join(out)


# Replacements that keep French (and most Latin-script text) readable in GSM 03.38.
# Checked before the generic Unicode decomposition; characters already in GSM stay as they are.
_TRANSLITERATIONS: Final[dict[str, str]] = {
    "ç": "c",  # GSM has Ç (0x09) but not ç
    "œ": "oe",
    "Œ": "OE",
    "‘": "'",
    "’": "'",
    "‚": "'",
    "‛": "'",
    "′": "'",
    "`": "'",
    "´": "'",
    "“": '"',
    "”": '"',
    "„": '"',
    "‟": '"',
    "″": '"',
    "«": '"',
    "»": '"',
    "‹": "'",
    "›": "'",
    "‐": "-",
    "‑": "-",
    "‒": "-",
    "–": "-",
    "—": "-",
    "―": "-",
    "−": "-",
    "…": "...",
    "•": "-",
    "·": ".",
    "°": "o",  # "n°" -> "no"
    "\u00a0": " ",  # no-break space
    "\u202f": " ",  # narrow no-break space (French before ; : ! ?)
    "\u2007": " ",
    "\u2009": " ",
    "\u200a": " ",
    "\t": " ",
    "\u200b": "",  # zero-width space
    "\u200c": "",
    "\u200d": "",
    "\u2060": "",
    "\ufeff": "",
    "\u00ad": "",  # soft hyphen
    "ł": "l",
    "Ł": "L",
    "đ": "d",
    "Đ": "D",
    "ı": "i",
}
_UNKNOWN: Final = "?"
# French typography puts a (no-break) space inside guillemets: « texte » reads "texte".
_GUILLEMETS: Final = re.compile(r"«[\s\u00a0\u202f]*|[\s\u00a0\u202f]*»")


def _transliterate_char(char: str) -> str:
    replacement = _TRANSLITERATIONS.get(char)
    if replacement is not None:
        return replacement
    # Generic fallback: compatibility decomposition without the combining marks
    # (ê -> e, Ï -> I, ﬁ -> fi, ² -> 2), kept only if what remains is GSM.
    pieces: list[str] = []
    for piece in unicodedata.normalize("NFKD", char):
        if unicodedata.combining(piece):
            continue
        if piece in GSM7_CHARS:
            pieces.append(piece)
        else:
            pieces.append(_TRANSLITERATIONS.get(piece, _UNKNOWN))
    result = "".join(pieces)
    return result if result.strip(_UNKNOWN) else _UNKNOWN


def transliterate_gsm7(text: str) -> str:
    """A GSM-only version of the text that stays readable (ê->e, œ->oe, ’->', « » -> ", …->...).

    Characters already in GSM 03.38 are kept (é è ù à É Ç ...), so the message keeps its
    accents where the alphabet allows; characters with no equivalent (emoji, CJK) become '?'.
    """
    if is_gsm7(text):
        return text
    text = _GUILLEMETS.sub('"', text)
    return "".join(char if char in GSM7_CHARS else _transliterate_char(char) for char in text)


@dataclass(frozen=True)
class EncodedMessage:
    """One group's text, encoded and split into the short_message bytes of each part.

    Each part already holds its UDH (``05 00 03 ref total seq``) when the text is concatenated,
    so the SMPP layer only copies bytes. TPS and windows count these parts, not messages.
    """

    text: str
    encoding: Encoding
    data_coding: int
    esm_class: int
    parts: tuple[bytes, ...]

    @property
    def part_count(self) -> int:
        """Parts (submit_sm PDUs) one recipient costs."""
        return len(self.parts)

    @property
    def chars(self) -> int:
        """Characters of the text, as a person counts them."""
        return len(self.text)

    @property
    def units(self) -> int:
        """Septets (GSM 03.38) or UTF-16 code units (UCS-2) the text costs, UDH excluded."""
        return gsm7_septets(self.text) if self.encoding == "gsm7" else ucs2_units(self.text)


def _split(text: str, costs: list[int], limit: int) -> list[str]:
    """Cut text into chunks of at most `limit` units, never inside a character's units."""
    chunks: list[str] = []
    start = 0
    used = 0
    for index, cost in enumerate(costs):
        if used + cost > limit:
            chunks.append(text[start:index])
            start = index
            used = 0
        used += cost
    chunks.append(text[start:])
    return chunks


def _with_udh(payloads: list[bytes], reference: int) -> tuple[bytes, ...]:
    total = len(payloads)
    if total > MAX_PARTS:
        raise InputError(
            f"the text needs {total} parts, more than the {MAX_PARTS} an SMS can carry: shorten it"
        )
    return tuple(
        bytes((0x05, 0x00, 0x03, reference, total, number)) + payload
        for number, payload in enumerate(payloads, start=1)
    )


def encode_message(text: str, reference: int) -> EncodedMessage:
    """Encode a text as GSM 03.38 when it fits the alphabet, else UCS-2, and split it.

    Single part up to 160 septets / 70 UCS-2 units; beyond, parts of at most 153 septets /
    67 units with an 8-bit concatenation UDH carrying `reference` (0..255, the same for all
    parts of one message). An escape sequence or a surrogate pair is never split across parts.
    """
    if not text:
        raise InputError("the message text is empty: write a text or pick a template")
    if not 0 <= reference <= 0xFF:
        raise InputError(f"concatenation reference {reference} is outside 0..255")
    if is_gsm7(text):
        return _gsm7_message(text, reference)
    return _ucs2_message(text, reference)


def _gsm7_message(text: str, reference: int) -> EncodedMessage:
    costs = [2 if char in _GSM_EXTENSION else 1 for char in text]
    if sum(costs) <= GSM7_SINGLE_SEPTETS:
        return EncodedMessage(
            text, "gsm7", DATA_CODING_GSM7, ESM_CLASS_SINGLE, (encode_gsm7(text),)
        )
    chunks = _split(text, costs, GSM7_PART_SEPTETS)
    parts = _with_udh([encode_gsm7(chunk) for chunk in chunks], reference)
    return EncodedMessage(text, "gsm7", DATA_CODING_GSM7, ESM_CLASS_UDHI, parts)


def _ucs2_message(text: str, reference: int) -> EncodedMessage:
    try:
        whole = text.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"the text holds an unpaired surrogate at position {exc.start}: fix its source"
        ) from exc
    if len(whole) <= 2 * UCS2_SINGLE_UNITS:
        return EncodedMessage(text, "ucs2", DATA_CODING_UCS2, ESM_CLASS_SINGLE, (whole,))
    costs = [2 if ord(char) > 0xFFFF else 1 for char in text]
    chunks = _split(text, costs, UCS2_PART_UNITS)
    parts = _with_udh([chunk.encode("utf-16-be") for chunk in chunks], reference)
    return EncodedMessage(text, "ucs2", DATA_CODING_UCS2, ESM_CLASS_UDHI, parts)


def decode_parts(message: EncodedMessage) -> str:
    """Reassemble the text from the parts, as a handset would (checks and the mock's records)."""
    return decode_short_message(
        b"".join(strip_udh(p) if message.esm_class & ESM_CLASS_UDHI else p for p in message.parts),
        message.data_coding,
    )


def strip_udh(short_message: bytes) -> bytes:
    """The user data after the UDH of a part sent with esm_class UDHI (first octet = UDH length)."""
    return short_message[short_message[0] + 1 :] if short_message else short_message


def decode_short_message(data: bytes, data_coding: int) -> str:
    """Text of short_message bytes (without UDH) for data_coding 0 (GSM) or 8 (UCS-2); any other
    data_coding is read as latin-1. Never raises, for logs and the mock SMSC's records."""
    if data_coding == DATA_CODING_GSM7:
        return decode_gsm7(data)
    if data_coding == DATA_CODING_UCS2:
        return data.decode("utf-16-be", errors="replace")
    return data.decode("latin-1")
