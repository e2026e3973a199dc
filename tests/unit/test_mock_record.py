"""The mock SMSC's record: raw parts kept cheaply, texts decoded and reassembled when read."""

from __future__ import annotations

from smsc_fixtures import raw_submit, tlv

from broadcaster.mocksmsc.record import Record
from broadcaster.text.encoding import encode_gsm7

KEY = (b"ALERTE", b"33612345678", 42)


def test_single_parts_are_decoded_only_when_read() -> None:
    record = Record()
    record.add(b"33612345678", 0, encode_gsm7("Numéro d'urgence: 112 {ok}"))
    record.add(b"33600000001", 8, "Экстренный".encode("utf-16-be"))
    record.add(b"33612345678", 0, encode_gsm7("second"))
    assert record.parts_received == 3
    assert record.messages == {
        "33612345678": ["Numéro d'urgence: 112 {ok}", "second"],
        "33600000001": ["Экстренный"],
    }
    record.add(b"33600000001", 0, encode_gsm7("later"))  # read again: only the new one decoded
    assert record.messages["33600000001"] == ["Экстренный", "later"]
    assert record.message_count == 4


def test_parts_are_joined_in_sequence_once_all_arrived() -> None:
    record = Record()
    parts = {1: b"Hello ", 2: b"wide ", 3: b"world"}
    assert record.add_part(KEY, 3, 3, 0, parts[3]) is None
    assert record.add_part(KEY, 3, 1, 0, parts[1]) is None
    assert record.incomplete() == 2
    assert record.messages == {}
    assert record.add_part(KEY, 3, 2, 0, parts[2]) is None
    assert record.incomplete() == 0
    assert record.messages == {"33612345678": ["Hello wide world"]}
    assert record.parts_received == 3
    # A one-part concatenation is a whole message at once.
    assert record.add_part((b"A", b"33600000001", 7), 1, 1, 0, b"alone") is None
    assert record.messages["33600000001"] == ["alone"]


def test_a_gsm_escape_split_across_two_parts_decodes_whole() -> None:
    encoded = encode_gsm7("price: 5€")  # € is ESC 0x65: split between ESC and 0x65
    cut = encoded.index(0x1B) + 1
    record = Record()
    record.add_part(KEY, 2, 1, 0, encoded[:cut])
    record.add_part(KEY, 2, 2, 0, encoded[cut:])
    assert record.messages == {"33612345678": ["price: 5€"]}


def test_a_resent_part_is_counted_once_and_a_conflicting_one_is_refused() -> None:
    record = Record()
    assert record.add_part(KEY, 2, 1, 0, b"first ") is None
    assert record.add_part(KEY, 2, 1, 0, b"first ") is None  # the same octets: a resend
    assert record.duplicate_parts == 1
    assert record.add_part(KEY, 2, 1, 0, b"other ") == "udh_part_conflicts"
    assert record.add_part(KEY, 3, 2, 0, b"half") == "udh_total_changed"
    assert record.incomplete() == 1  # refused parts change nothing
    assert record.add_part(KEY, 2, 2, 0, b"half") is None
    assert record.messages == {"33612345678": ["first half"]}
    assert record.parts_received == 2
    # The reference is free again once the message is complete.
    assert record.add_part(KEY, 3, 1, 0, b"new") is None


def test_mixed_codings_within_one_message() -> None:
    record = Record()
    record.add_part(KEY, 2, 1, 0, encode_gsm7("GSM then "))
    record.add_part(KEY, 2, 2, 8, "ŝ".encode("utf-16-be"))
    assert record.messages["33612345678"] == ["GSM then ŝ"]


def test_without_keeping_texts_parts_are_still_counted_and_checked() -> None:
    record = Record(keep=False)
    record.add(b"33612345678", 0, b"x")
    record.add_part(KEY, 2, 1, 0, b"a")
    assert record.parts_received == 2
    assert record.incomplete() == 1
    assert record.add_part(KEY, 3, 2, 0, b"b") == "udh_total_changed"
    assert record.add_part(KEY, 2, 2, 0, b"b") is None
    assert record.messages == {} and record.message_count == 0


def test_clear_forgets_everything() -> None:
    record = Record()
    record.add(b"33612345678", 0, b"x")
    record.add_part(KEY, 2, 1, 0, b"a")
    assert record.messages
    record.clear()
    assert (record.parts_received, record.incomplete(), record.messages) == (0, 0, {})


def test_whole_pdus_are_decoded_when_read_without_their_udh() -> None:
    record = Record()
    record.add_pdu(raw_submit(destination=b"33611111111", short_message=b"plain"))
    ports = b"\x06\x05\x04\x0b\x84\x23\xf0"  # a UDH with port addressing only
    record.add_pdu(raw_submit(esm_class=0x40, short_message=ports + b"with ports"))
    payload = encode_gsm7("long " * 40)
    record.add_pdu(raw_submit(short_message=b"", tlvs=tlv(0x0424, payload)))
    assert record.messages == {
        "33611111111": ["plain"],
        "33612345678": ["with ports", "long " * 40],
    }
    assert record.parts_received == 3
