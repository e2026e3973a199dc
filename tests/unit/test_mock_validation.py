"""The mock SMSC's strict submit_sm validation, field by field (pure, no network)."""

from __future__ import annotations

import random
import struct

import pytest
from smsc_fixtures import raw_submit, tlv

from broadcaster.mocksmsc.fastpath import fast_accepts
from broadcaster.mocksmsc.validation import (
    SUBMIT_SM_FIELDS,
    Malformed,
    Part,
    validate_submit_sm,
)
from broadcaster.smpp import codec
from broadcaster.smpp.constants import Status
from broadcaster.text.encoding import encode_gsm7, encode_message

UDH_1_OF_2 = b"\x05\x00\x03\x2a\x02\x01"


def fault(pdu: bytes) -> tuple[int, str]:
    with pytest.raises(Malformed) as info:
        validate_submit_sm(pdu)
    return info.value.status, info.value.reason


def test_a_plain_gsm_part_is_read() -> None:
    part = validate_submit_sm(raw_submit())
    assert part == Part(b"ALERTE", b"33612345678", 0, 1, 0, b"Hello", None)


def test_every_part_the_project_encodes_is_valid_and_matches_the_fast_regex() -> None:
    texts = [
        "Court",
        "é" * 160,  # GSM, exactly one SMS
        "Numéros d'urgence perturbés " * 12,  # GSM, several parts
        "Экстренные номера недоступны. " * 5,  # UCS-2, several parts
        "{[€]}" * 70,  # escapes: each costs two septets
    ]
    for reference, text in enumerate(texts, start=1):
        message = encode_message(text, reference)
        templates = codec.submit_templates(
            message, source_addr="ALERTE", source_ton=5, source_npi=0
        )
        for seq, template in enumerate(templates, start=1):
            pdu = template.encode(seq, b"33612345678")
            part = validate_submit_sm(pdu)
            assert SUBMIT_SM_FIELDS.match(pdu, 16) is not None
            if message.part_count > 1:
                assert part.concat == (reference, message.part_count, seq)
            else:
                assert part.concat is None


@pytest.mark.parametrize(
    ("fields", "status", "reason"),
    [
        ({"service_type": b"CMTXXX"}, Status.ESME_RINVSERTYP, "service_type_too_long"),
        ({"source_ton": 7}, Status.ESME_RINVSRCTON, "source_addr_ton_invalid"),
        ({"source_npi": 2}, Status.ESME_RINVSRCNPI, "source_addr_npi_invalid"),
        ({"source": b"A" * 21}, Status.ESME_RINVSRCADR, "source_addr_too_long"),
        ({"source": b"ALERT\xc9"}, Status.ESME_RINVSRCADR, "source_addr_not_ascii"),
        ({"dest_ton": 9}, Status.ESME_RINVDSTTON, "dest_addr_ton_invalid"),
        ({"dest_npi": 5}, Status.ESME_RINVDSTNPI, "dest_addr_npi_invalid"),
        ({"destination": b""}, Status.ESME_RINVDSTADR, "destination_addr_empty"),
        ({"destination": b"+33612345678"}, Status.ESME_RINVDSTADR, "destination_addr_not_digits"),
        ({"destination": b"3" * 21}, Status.ESME_RINVDSTADR, "destination_addr_too_long"),
        ({"priority": 4}, Status.ESME_RINVPRTFLG, "priority_flag_invalid"),
        ({"schedule": b"tomorrow"}, Status.ESME_RINVSCHED, "schedule_delivery_time_not_smpp_time"),
        (
            {"validity": b"2601011200000ZZ+"},
            Status.ESME_RINVEXPIRY,
            "validity_period_not_smpp_time",
        ),
        ({"replace": 2}, Status.ESME_RINVREPFLAG, "replace_if_present_flag_invalid"),
        ({"data_coding": 0x0B}, Status.ESME_RINVDCS, "data_coding_invalid"),
        ({"data_coding": 0x40}, Status.ESME_RINVDCS, "data_coding_invalid"),
        ({"default_msg_id": 3}, Status.ESME_RINVDFTMSGID, "sm_default_msg_id_invalid"),
        ({"sm_length": 200}, Status.ESME_RINVMSGLEN, "sm_length_past_end"),
        ({"esm_class": 0x04}, Status.ESME_RINVESMCLASS, "esm_class_message_type"),
        ({"registered_delivery": 3}, Status.ESME_RINVREGDLVFLG, "registered_delivery_reserved"),
        ({"registered_delivery": 0x21}, Status.ESME_RINVREGDLVFLG, "registered_delivery_reserved"),
        ({"short_message": b"caf\xe9"}, Status.ESME_RINVDCS, "gsm_septet_over_0x7f"),
        ({"short_message": b"\0a\0b\0", "data_coding": 8}, Status.ESME_RINVDCS, "ucs2_odd_length"),
        ({"short_message": b"a" * 161}, Status.ESME_RINVMSGLEN, "user_data_over_one_sms"),
        (
            {"short_message": b"\0a" * 71, "data_coding": 8},
            Status.ESME_RINVMSGLEN,
            "user_data_over_one_sms",
        ),
        ({"short_message": b""}, Status.ESME_RINVMSGLEN, "empty_message"),
        ({"tlvs": b"\x04\x24\x00"}, Status.ESME_RINVOPTPARSTREAM, "tlv_stream"),
        (
            {"tlvs": tlv(0x0424, b"too")},
            Status.ESME_RINVMSGLEN,
            "short_message_and_message_payload",
        ),
        ({"tlvs": tlv(0x020C, b"\0\1")}, Status.ESME_RMISSINGOPTPARAM, "sar_incomplete"),
    ],
)
def test_each_fault_gets_its_status_and_reason(
    fields: dict[str, object], status: int, reason: str
) -> None:
    assert fault(raw_submit(**fields)) == (status, reason)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("short_message", "reason"),
    [
        (b"", "udh_missing"),
        (b"\x09\x00\x03\x01\x02\x01abc", "udh_length_invalid"),
        (b"\x05\x00\x05\x01\x02\x01abc", "udh_element_past_end"),
        (b"\x04\x00\x02\x01\x02abc", "udh_concatenation_length"),
        (b"\x05\x00\x03\x01\x02\x00abc", "udh_sequence_out_of_range"),
        (b"\x05\x00\x03\x01\x02\x03abc", "udh_sequence_out_of_range"),
        (b"\x0a\x00\x03\x01\x02\x01\x00\x03\x01\x02\x01abc", "udh_concatenation_repeated"),
        (b"\x03\x00\x03\x01abc", "udh_element_past_end"),
    ],
)
def test_bad_udh_is_refused_with_esm_class_status(short_message: bytes, reason: str) -> None:
    pdu = raw_submit(esm_class=0x40, short_message=short_message)
    assert fault(pdu) == (Status.ESME_RINVESMCLASS, reason)


def test_udh_counts_against_one_sms() -> None:
    ok = raw_submit(esm_class=0x40, short_message=UDH_1_OF_2 + b"a" * 153)
    assert validate_submit_sm(ok).user_data == b"a" * 153
    too_long = raw_submit(esm_class=0x40, short_message=UDH_1_OF_2 + b"a" * 154)
    assert fault(too_long) == (Status.ESME_RINVMSGLEN, "user_data_over_one_sms")
    ucs2 = raw_submit(esm_class=0x40, data_coding=8, short_message=UDH_1_OF_2 + b"\0a" * 67)
    assert validate_submit_sm(ucs2).concat == (0x2A, 2, 1)


def test_16_bit_reference_and_other_information_elements() -> None:
    # A port-addressing IE (0x05) before a 16-bit concatenation IE (0x08).
    udh = b"\x0c\x05\x04\x0b\x84\x23\xf0\x08\x04\x12\x34\x03\x02"
    part = validate_submit_sm(raw_submit(esm_class=0x40, short_message=udh + b"abc"))
    assert part.concat == (0x1234, 3, 2)
    assert part.user_data == b"abc"


def test_message_payload_carries_a_long_text_in_one_pdu() -> None:
    text = encode_gsm7("Numeros d'urgence perturbes. " * 12)
    part = validate_submit_sm(raw_submit(short_message=b"", tlvs=tlv(0x0424, text)))
    assert part.user_data == text and len(text) > 160


def test_sar_parameters_concatenate_and_must_agree_with_a_udh() -> None:
    sar = tlv(0x020C, b"\x00\x2a") + tlv(0x020E, b"\x02") + tlv(0x020F, b"\x01")
    part = validate_submit_sm(raw_submit(tlvs=sar))
    assert part.concat == (0x2A, 2, 1)
    both = validate_submit_sm(raw_submit(esm_class=0x40, short_message=UDH_1_OF_2 + b"x", tlvs=sar))
    assert both.concat == (0x2A, 2, 1)
    other = tlv(0x020C, b"\x00\x2b") + tlv(0x020E, b"\x02") + tlv(0x020F, b"\x01")
    pdu = raw_submit(esm_class=0x40, short_message=UDH_1_OF_2 + b"x", tlvs=other)
    assert fault(pdu) == (Status.ESME_RINVESMCLASS, "udh_and_sar_disagree")
    wrong_seq = tlv(0x020C, b"\x00\x2a") + tlv(0x020E, b"\x02") + tlv(0x020F, b"\x03")
    assert fault(raw_submit(tlvs=wrong_seq)) == (
        Status.ESME_RINVOPTPARAMVAL,
        "sar_sequence_out_of_range",
    )


def test_framing_faults() -> None:
    pdu = raw_submit()
    assert fault(pdu[:-1]) == (Status.ESME_RINVCMDLEN, "command_length_mismatch")
    cut = pdu[: pdu.index(b"33612345678") + 11]  # the PDU ends inside destination_addr
    unterminated = struct.pack("!I", len(cut)) + cut[4:]
    assert fault(unterminated) == (Status.ESME_RINVCMDLEN, "destination_addr_unterminated")
    truncated = pdu[:40]  # stops inside esm_class .. sm_length
    truncated = struct.pack("!I", len(truncated)) + truncated[4:]
    assert fault(truncated) == (Status.ESME_RINVCMDLEN, "mandatory_fields_truncated")


def test_times_in_smpp_format_are_accepted() -> None:
    pdu = raw_submit(schedule=b"260101120000000+", validity=b"000001000000000R")
    assert validate_submit_sm(pdu).destination == b"33612345678"


def test_the_fast_path_accepts_only_what_the_strict_path_accepts() -> None:
    """Random corruptions of valid PDUs: whenever the fast regexes take one, so does the full
    validation (the fast path then checks a part against earlier parts as the strict one)."""
    rng = random.Random(20)
    corpus = [
        raw_submit(),
        raw_submit(data_coding=8, short_message="Экстренно".encode("utf-16-be")),
        raw_submit(schedule=b"260101120000000+", registered_delivery=0x11),
        raw_submit(short_message=b"a" * 160, esm_class=0x83),
        raw_submit(esm_class=0x40, short_message=UDH_1_OF_2 + b"b" * 153),
        raw_submit(esm_class=0x40, data_coding=8, short_message=UDH_1_OF_2 + b"\0c" * 67),
    ]
    assert all(fast_accepts(pdu) for pdu in corpus)
    taken = 0
    for _ in range(6000):
        mutant = bytearray(rng.choice(corpus))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(16, len(mutant))
            mutant[position] = rng.choice((0, 1, 3, 8, 0x40, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        if fast_accepts(bytes(mutant)):
            taken += 1
            validate_submit_sm(bytes(mutant))  # raises if the fast path was wrong
    assert 100 < taken < 6000  # both outcomes exercised
    # What the fast path leaves to the strict one.
    assert not fast_accepts(raw_submit(short_message=b""))
    assert not fast_accepts(raw_submit(data_coding=3))
    assert not fast_accepts(raw_submit(tlvs=tlv(0x0204, b"\0\1")))
    assert not fast_accepts(raw_submit(sm_length=4))
    assert not fast_accepts(raw_submit(esm_class=0x40, short_message=UDH_1_OF_2 + b"b" * 154))
    sixteen_bit = b"\x06\x08\x04\x12\x34\x02\x01"
    assert not fast_accepts(raw_submit(esm_class=0x40, short_message=sixteen_bit + b"x"))
