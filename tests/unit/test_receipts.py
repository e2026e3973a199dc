"""Delivery receipts: tolerant parsing of what real SMSCs send, ids kept as strings."""

from __future__ import annotations

import random
import re
from datetime import datetime

import pytest

from broadcaster.smpp import receipts as receipts_module
from broadcaster.smpp.codec import decode_short_message_pdu, encode_deliver_sm, encode_tlv
from broadcaster.smpp.receipts import Receipt, format_receipt, parse_receipt, receipt_tlvs

STANDARD = (
    "id:0A1B2C3D sub:001 dlvrd:001 submit date:2106021230 done date:2106021231 "
    "stat:DELIVRD err:000 text:Numeros d'urgence"
)


def test_standard_receipt() -> None:
    receipt = parse_receipt(STANDARD, {})
    assert receipt == Receipt(
        message_id="0A1B2C3D",
        stat="DELIVRD",
        err="000",
        submit_date=datetime(2021, 6, 2, 12, 30),
        done_date=datetime(2021, 6, 2, 12, 31),
        sub=1,
        dlvrd=1,
    )
    assert receipt.delivered
    assert receipt.final


def test_twelve_digit_dates() -> None:
    text = "id:77 sub:001 dlvrd:000 submit date:210602123045 done date:210602123159 stat:UNDELIV"
    receipt = parse_receipt(text, {})
    assert receipt is not None
    assert receipt.submit_date == datetime(2021, 6, 2, 12, 30, 45)
    assert receipt.done_date == datetime(2021, 6, 2, 12, 31, 59)
    assert receipt.stat == "UNDELIV"
    assert not receipt.delivered


def test_missing_fields_are_none() -> None:
    receipt = parse_receipt("id:42 stat:EXPIRED", {})
    assert receipt == Receipt(message_id="42", stat="EXPIRED")
    assert receipt.err is None
    assert receipt.sub is None
    assert receipt.submit_date is None


def test_empty_and_unreadable_values_are_none() -> None:
    text = "id:9 sub:abc dlvrd: submit date: done date:2113991299 stat:DELIVRD err: text:"
    receipt = parse_receipt(text, {})
    assert receipt == Receipt(message_id="9", stat="DELIVRD")


def test_tlv_id_preferred_over_text_id() -> None:
    """Some SMSCs write the text id in decimal while the TLV (and submit_sm_resp) use hex."""
    tlvs = {0x001E: b"3039\0"}
    receipt = parse_receipt("id:12345 sub:001 dlvrd:001 stat:DELIVRD err:000", tlvs)
    assert receipt is not None
    assert receipt.message_id == "3039"
    assert receipt.text_message_id == "12345"
    same = parse_receipt("id:3039 stat:DELIVRD", tlvs)
    assert same is not None
    assert same.text_message_id is None


def test_tlv_id_without_nul_and_empty_tlv_falls_back_to_text() -> None:
    assert parse_receipt("stat:DELIVRD", {0x001E: b"ABC"}) == Receipt("ABC", "DELIVRD")
    fallback = parse_receipt("id:XYZ stat:DELIVRD", {0x001E: b"\0"})
    assert fallback is not None
    assert fallback.message_id == "XYZ"


def test_hex_ids_with_leading_zeros_are_kept() -> None:
    receipt = parse_receipt("id:000A1F sub:001 dlvrd:001 stat:DELIVRD err:000", {})
    assert receipt is not None
    assert receipt.message_id == "000A1F"
    numeric = parse_receipt("id:0000012 stat:DELIVRD", {})
    assert numeric is not None
    assert numeric.message_id == "0000012"


def test_any_case_extra_fields_and_alternative_spellings() -> None:
    text = (
        "ID:ab-12 SUB:001 DLVRD:001 Submit_Date:2106021230 DONE DATE:2106021231 "
        "Stat:delivered Err:0 mcc:208 mnc:01 Text:stat:UNDELIV id:bogus"
    )
    receipt = parse_receipt(text, {})
    assert receipt == Receipt(
        message_id="ab-12",
        stat="DELIVRD",
        err="0",
        submit_date=datetime(2021, 6, 2, 12, 30),
        done_date=datetime(2021, 6, 2, 12, 31),
        sub=1,
        dlvrd=1,
    )


def test_message_state_tlv_when_text_has_no_stat() -> None:
    receipt = parse_receipt("id:55 err:000", {0x0427: b"\x05"})
    assert receipt is not None
    assert receipt.stat == "UNDELIV"
    unknown = parse_receipt("id:55", {})
    assert unknown is not None
    assert unknown.stat == "UNKNOWN"
    text_wins = parse_receipt("id:55 stat:DELIVRD", {0x0427: b"\x05"})
    assert text_wins is not None
    assert text_wins.stat == "DELIVRD"


def test_intermediate_receipt_is_not_final() -> None:
    receipt = parse_receipt("id:1 stat:ENROUTE", {})
    assert receipt is not None
    assert not receipt.final


@pytest.mark.parametrize(
    "text", ["", "hello world", "stat:DELIVRD err:000", "id: stat:DELIVRD", "::::", "identity:5"]
)
def test_garbage_returns_none(text: str) -> None:
    assert parse_receipt(text, {}) is None


@pytest.mark.parametrize("seconds", [False, True])
def test_format_then_parse(seconds: bool) -> None:
    submitted = datetime(2021, 6, 2, 12, 30, 15)
    done = datetime(2021, 6, 2, 12, 31, 45)
    text = format_receipt(
        message_id="000A1F",
        stat="DELIVRD",
        submit_date=submitted,
        done_date=done,
        text="Numeros d'urgence perturbes",
        seconds=seconds,
    )
    expected_date = "210602123015" if seconds else "2106021230"
    assert f"submit date:{expected_date} " in text
    assert text.endswith("text:Numeros d'urgence pe")  # first 20 characters
    receipt = parse_receipt(text, {})
    assert receipt == Receipt(
        message_id="000A1F",
        stat="DELIVRD",
        err="000",
        submit_date=submitted if seconds else submitted.replace(second=0),
        done_date=done if seconds else done.replace(second=0),
        sub=1,
        dlvrd=1,
    )


def test_receipt_through_a_deliver_sm() -> None:
    """The mock SMSC's path: format + TLVs -> deliver_sm -> decode -> parse."""
    text = format_receipt(
        message_id="12345",
        stat="UNDELIV",
        err="001",
        submit_date=datetime(2021, 6, 2, 12, 30),
        done_date=datetime(2021, 6, 2, 12, 31),
    )
    pdu = encode_deliver_sm(
        1,
        source_addr="33612345678",
        destination_addr="ALERTE",
        esm_class=0x04,
        short_message=text.encode("ascii"),
        tlvs=receipt_tlvs("3039", "UNDELIV") + encode_tlv(0x0423, b"\x03\x00\x01"),
    )
    decoded = decode_short_message_pdu(pdu)
    assert decoded.is_receipt
    receipt = parse_receipt(decoded.short_message.decode("ascii"), decoded.tlvs)
    assert receipt is not None
    assert (receipt.message_id, receipt.text_message_id) == ("3039", "12345")
    assert (receipt.stat, receipt.err, receipt.dlvrd) == ("UNDELIV", "001", 0)
    assert decoded.tlvs[0x0427] == b"\x05"


def test_text_field_runs_to_the_end() -> None:
    """Whatever follows `text:` is message text, even when it looks like fields."""
    receipt = parse_receipt("id:5 stat:DELIVRD text:Appel err:123 sub:009", {})
    assert receipt == Receipt(message_id="5", stat="DELIVRD")


def test_the_standard_layout_in_one_match_reads_as_key_by_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Receipts in the appendix B layout are read by one match: the same fields as the
    key-by-key reading, over seeded variations (odd ids, empty values, keys inside the text,
    12-digit dates, new lines) and near misses that must fall back to it (two spaces, keys in
    capitals, a field missing or added)."""
    rng = random.Random(11)
    alphabet = "0123456789ABCDEFabc:_-.@ \n"
    texts = []

    def value() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 12)))

    for _ in range(3000):
        texts.append(
            f"id:{value()} sub:{value()} dlvrd:{value()} submit date:{value()} "
            f"done date:{value()} stat:{value()} err:{value()} text:{value()} stat:X id:Y"
        )
    texts += [
        STANDARD,
        STANDARD.replace(" sub:", "  sub:"),
        STANDARD.replace("stat:", "Stat:"),
        STANDARD.replace(" err:000", ""),
        STANDARD.replace(" err:000", " err:000 extra:1"),
        STANDARD.replace("2106021230", "210602123059"),
    ]
    standard = 0
    tlvs = {0x001E: b"77\0"}
    parsed = [parse_receipt(text, tlvs, "336") for text in texts]
    for text in texts:
        standard += receipts_module._STANDARD.fullmatch(text) is not None
        assert receipts_module._fields(text) == receipts_module._any_fields(text), text
    assert 100 < standard < len(texts)  # both readings well represented
    monkeypatch.setattr(receipts_module, "_STANDARD", re.compile(r"(?!)"))  # key by key only
    assert [parse_receipt(text, tlvs, "336") for text in texts] == parsed


def test_dates_read_once_are_the_dates_strptime_reads() -> None:
    for value in ("2106021230", "210602123059", "6906021230", "6812312359", "2113021230", "x"):
        for _ in range(2):  # the second time from the cache
            expected = None
            for layout in ("%y%m%d%H%M", "%y%m%d%H%M%S"):
                try:
                    if len(value) == len(datetime(2000, 1, 1).strftime(layout)):
                        expected = datetime.strptime(value, layout)
                except ValueError:
                    pass
            assert receipts_module._date(value) == expected
