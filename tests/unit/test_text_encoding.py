"""GSM 03.38 / UCS-2 detection, septet counting, splitting at the exact boundaries."""

from __future__ import annotations

import random

import pytest
from aiosmpplib import GSM7BitCodec

from broadcaster.errors import InputError
from broadcaster.text.encoding import (
    _FROM_EXTENSION,
    _FROM_SEPTETS,
    EncodedMessage,
    decode_gsm7,
    decode_parts,
    encode_gsm7,
    encode_message,
    gsm7_septets,
    is_gsm7,
    non_gsm7_chars,
    strip_udh,
    transliterate_gsm7,
    ucs2_units,
)

GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"


def _reassemble(message: EncodedMessage) -> str:
    """What a handset shows: strip each part's UDH, concatenate, decode (aiosmpplib for GSM)."""
    payload = b"".join(part[6:] if message.part_count > 1 else part for part in message.parts)
    if message.encoding == "gsm7":
        text: str = GSM7BitCodec().decode(payload)[0]
        return text
    return payload.decode("utf-16-be")


def _payloads(message: EncodedMessage) -> list[bytes]:
    if message.esm_class & 0x40:
        return [strip_udh(part) for part in message.parts]
    return list(message.parts)


def test_detection() -> None:
    assert is_gsm7(GSM_BASIC + GSM_EXTENSION)
    assert is_gsm7("Numéro d'urgence: appelez le 112. Ça, où, à, è")
    assert not is_gsm7("Fenêtre")  # ê is not GSM, é is
    assert not is_gsm7("garçon")  # ç is not GSM, Ç is
    assert not is_gsm7("appelez 📞")
    assert is_gsm7("")


def test_non_gsm7_chars_in_order_once_each() -> None:
    assert non_gsm7_chars("Fenêtre, garçon, tête, ça 📞") == ["ê", "ç", "📞"]
    assert non_gsm7_chars("Numéro à 5 €") == []


def test_septet_counting() -> None:
    assert len(GSM_BASIC) == 127  # 128 codes minus the escape
    assert gsm7_septets(GSM_BASIC) == 127
    assert gsm7_septets(GSM_EXTENSION) == 20
    assert gsm7_septets("a€b") == 4
    assert gsm7_septets("") == 0
    with pytest.raises(InputError):
        gsm7_septets("tête")
    assert ucs2_units("ê😀") == 3


def test_gsm_bytes_equal_aiosmpplib_for_the_whole_alphabet() -> None:
    text = GSM_BASIC + GSM_EXTENSION
    assert encode_gsm7(text) == GSM7BitCodec().encode(text)[0]
    assert decode_gsm7(encode_gsm7(text)) == text
    with pytest.raises(InputError):
        encode_gsm7("ê")


@pytest.mark.parametrize(
    ("text", "parts", "payload_lengths"),
    [
        ("a" * 160, 1, [160]),
        ("a" * 161, 2, [153, 8]),
        ("a" * 158 + "€", 1, [160]),  # 160 septets
        ("a" * 159 + "€", 2, [153, 8]),  # 161 septets
        ("a" * 306, 2, [153, 153]),
        ("a" * 307, 3, [153, 153, 1]),
    ],
)
def test_gsm7_boundaries(text: str, parts: int, payload_lengths: list[int]) -> None:
    message = encode_message(text, reference=9)
    assert message.encoding == "gsm7"
    assert message.data_coding == 0
    assert message.part_count == parts
    assert message.esm_class == (0x40 if parts > 1 else 0x00)
    assert [len(payload) for payload in _payloads(message)] == payload_lengths
    assert _reassemble(message) == text


def test_extension_char_never_split_across_parts() -> None:
    text = "a" * 152 + "€" + "b" * 10  # the escape would be septet 153, its code septet 154
    message = encode_message(text, reference=1)
    first, second = _payloads(message)
    assert first == b"a" * 152
    assert second == b"\x1be" + b"b" * 10
    assert decode_parts(message) == text


def test_extension_chars_fill_parts_by_septets_not_characters() -> None:
    """aiosmpplib's splitter counts characters: 153 '€' would be 306 septets in one part."""
    text = "€" * 200
    message = encode_message(text, reference=1)
    payloads = _payloads(message)
    assert [len(p) for p in payloads] == [152, 152, 96]  # 76 + 76 + 48 escape pairs
    assert all(not payload.endswith(b"\x1b") for payload in payloads)
    assert message.units == 400
    assert _reassemble(message) == text


def test_udh_carries_reference_total_and_sequence() -> None:
    message = encode_message("x" * 400, reference=0xAB)
    assert [part[:6] for part in message.parts] == [
        bytes((0x05, 0x00, 0x03, 0xAB, 3, 1)),
        bytes((0x05, 0x00, 0x03, 0xAB, 3, 2)),
        bytes((0x05, 0x00, 0x03, 0xAB, 3, 3)),
    ]
    # Unpacked GSM: one octet per septet, so a full part is 6 + 153 octets (the SMSC packs it).
    assert [len(part) for part in message.parts] == [159, 159, 100]


@pytest.mark.parametrize(
    ("text", "parts", "unit_counts"),
    [
        ("ê" * 70, 1, [70]),
        ("ê" * 71, 2, [67, 4]),
        ("ê" * 134, 2, [67, 67]),
        ("ê" * 135, 3, [67, 67, 1]),
        ("😀" * 35, 1, [70]),
    ],
)
def test_ucs2_boundaries(text: str, parts: int, unit_counts: list[int]) -> None:
    message = encode_message(text, reference=2)
    assert message.encoding == "ucs2"
    assert message.data_coding == 8
    assert message.part_count == parts
    assert message.esm_class == (0x40 if parts > 1 else 0x00)
    assert [len(payload) // 2 for payload in _payloads(message)] == unit_counts
    assert _reassemble(message) == text


def test_surrogate_pair_never_split_across_parts() -> None:
    text = "ê" * 66 + "😀" + "x" * 10  # the pair would be units 67 and 68
    message = encode_message(text, reference=3)
    payloads = _payloads(message)
    assert [len(p) // 2 for p in payloads] == [66, 12]
    for payload in payloads:
        payload.decode("utf-16-be")  # strict: raises on a lone surrogate
    assert payloads[1].decode("utf-16-be").startswith("😀")
    assert decode_parts(message) == text


def test_surrogate_pair_ending_exactly_at_the_boundary_stays() -> None:
    text = "ê" * 65 + "😀" + "x" * 10
    message = encode_message(text, reference=3)
    assert [len(p) // 2 for p in _payloads(message)] == [67, 10]
    assert _reassemble(message) == text


@pytest.mark.parametrize(
    "text",
    [
        "Les numéros d'urgence 15, 17, 18 et 112 sont perturbés. Appelez le 01 23 45 67 89. " * 4,
        "Numéros d'urgence perturbés — appelez le 01 23 45 67 89 📞 " * 5,
        "{[~]} € |^\\ " * 40,
    ],
)
def test_reassembled_parts_give_back_the_text(text: str) -> None:
    message = encode_message(text, reference=4)
    assert message.part_count > 1
    assert _reassemble(message) == text
    assert decode_parts(message) == text
    assert message.chars == len(text)


def test_invalid_inputs() -> None:
    with pytest.raises(InputError):
        encode_message("", reference=0)
    with pytest.raises(InputError):
        encode_message("x", reference=256)
    with pytest.raises(InputError):
        encode_message("x" * (153 * 255 + 1), reference=0)
    with pytest.raises(InputError):
        encode_message("ê\ud83d", reference=0)  # lone surrogate
    assert encode_message("x" * (153 * 255), reference=0).part_count == 255


def test_french_sentence_transliterates_to_readable_gsm7() -> None:
    text = (
        "L’hôpital « Sainte-Thérèse » est fermé… Appelez le 15 — ou le 112\u202f; "
        "n° 3, cœur, garçon, naïve, Noël, où, âme, île, flûte, ÊTRE"
    )
    assert not is_gsm7(text)
    result = transliterate_gsm7(text)
    assert result == (
        'L\'hopital "Sainte-Thérèse" est fermé... Appelez le 15 - ou le 112 ; '
        "no 3, coeur, garcon, naive, Noel, où, ame, ile, flute, ETRE"
    )
    assert is_gsm7(result)
    message = encode_message(result, reference=0)
    assert message.encoding == "gsm7"


def test_transliteration_keeps_gsm_text_and_marks_the_impossible() -> None:
    kept = "é è ù à É Ç Ø ß € {}"
    assert transliterate_gsm7(kept) == kept
    assert transliterate_gsm7("appel 📞 ﬁn ²") == "appel ? fin 2"


def test_decoding_without_escapes_in_one_translate_reads_as_octet_by_octet() -> None:
    """`decode_gsm7` translates a text without an escape at once (octet for octet when every
    character is in Latin-1): the same characters as the octet-by-octet reading (every octet
    value, alone and in random runs), escapes still read one by one."""
    rng = random.Random(7)
    samples = [bytes((octet,)) for octet in range(256)]
    samples += [rng.randbytes(rng.randrange(1, 200)) for _ in range(2000)]
    latin = bytes(range(0x20, 0x7F)) + b"\x00\x01\x02\x04\x05\x0a\x0d\x1c\x1d\x1e\x1f\x8f"
    samples += [bytes(rng.choices(latin, k=rng.randrange(1, 160))) for _ in range(2000)]
    for data in samples:
        assert decode_gsm7(data) == _octet_by_octet(data), data
    assert decode_gsm7(b"a\x1b\x65b\x1b") == "a€b "


def _octet_by_octet(data: bytes) -> str:
    """The reading `decode_gsm7` had before its one-translate shortcut."""
    out: list[str] = []
    escaped = False
    for octet in data:
        if escaped:
            out.append(_FROM_EXTENSION.get(octet, " "))
            escaped = False
        elif octet == 0x1B:
            escaped = True
        else:
            out.append(_FROM_SEPTETS.get(octet & 0x7F, " "))
    if escaped:
        out.append(" ")
    return "".join(out)
