"""The SMPP codec: bytes equal to aiosmpplib's, readable by smpplib, strict on malformed input."""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import smpplib.smpp
from aiosmpplib import (
    BindReceiver,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    PhoneNumber,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnbindResp,
)
from aiosmpplib.state import NPI, TON, SmppCommandStatus

from broadcaster.errors import InputError, SmppProtocolError
from broadcaster.smpp.codec import (
    HEADER_FIELDS,
    MAX_PDU_LENGTH,
    FrameBuffer,
    Header,
    decode_bind,
    decode_bind_resp,
    decode_header,
    decode_short_message_pdu,
    decode_submit_sm_resp,
    destination_bytes,
    encode_bind,
    encode_bind_resp,
    encode_deliver_sm,
    encode_deliver_sm_resp,
    encode_enquire_link,
    encode_enquire_link_resp,
    encode_generic_nack,
    encode_pdu,
    encode_submit_sm_resp,
    encode_tlv,
    encode_unbind,
    encode_unbind_resp,
    smpp_absolute_time,
    smpp_relative_time,
    submit_templates,
)
from broadcaster.smpp.constants import (
    TRANSIENT_STATUSES,
    CommandId,
    Status,
    command_name,
    status_name,
)
from broadcaster.text.encoding import EncodedMessage, encode_message

DEST = "33612345678"

MESSAGES = {
    "gsm7-single": "Numéros d'urgence perturbés: appelez le 01 23 45 67 89 {ou} le 112 €",
    "ucs2-single": "Numéros d'urgence perturbés: appelez le 112 📞 ça marche",
    "gsm7-3-parts": ("Les numéros d'urgence 15, 17, 18 et 112 sont perturbés [exercice]. " * 5)[
        :400
    ],
    "ucs2-multi": "Les numéros d'urgence sont perturbés, appelez le 01 23 45 67 89 — merci. " * 3,
}


def _aiosmpplib_pdu(message: EncodedMessage, part: bytes, sequence: int, **overrides: Any) -> bytes:
    """aiosmpplib's SubmitSm for one pre-encoded part (data_coding: gsm0338 -> 0, ucs2 -> 8)."""
    fields: dict[str, Any] = {
        "short_message": message.text,
        "source": PhoneNumber("ALERTE", TON.ALPHANUMERIC, NPI.UNKNOWN),
        "destination": PhoneNumber(DEST, TON.INTERNATIONAL, NPI.ISDN),
        "esm_class": message.esm_class,
        "registered_delivery": 1,
        "encoding": "gsm0338" if message.encoding == "gsm7" else "ucs2",
        "sequence_num": sequence,
    }
    fields.update(overrides)
    submit = SubmitSm(**fields)
    submit.set_encoded_message(part)
    pdu: bytes = submit.pdu()
    return pdu


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_submit_template_bytes_equal_aiosmpplib(name: str) -> None:
    message = encode_message(MESSAGES[name], reference=0x2A)
    expected_parts = {"gsm7-single": 1, "ucs2-single": 1, "gsm7-3-parts": 3, "ucs2-multi": 4}
    assert message.part_count == expected_parts[name]
    templates = submit_templates(message, source_addr="ALERTE", source_ton=5, source_npi=0)
    assert len(templates) == message.part_count
    for index, (template, part) in enumerate(zip(templates, message.parts, strict=True)):
        sequence = 0x7FFF0000 + index
        ours = template.encode(sequence, destination_bytes(DEST))
        assert ours == _aiosmpplib_pdu(message, part, sequence)


def test_submit_template_with_every_field_equals_aiosmpplib() -> None:
    message = encode_message(MESSAGES["gsm7-3-parts"], reference=7)
    validity = timedelta(hours=2, minutes=30)
    templates = submit_templates(
        message,
        source_addr="33700000000",
        source_ton=1,
        source_npi=1,
        dest_ton=2,
        dest_npi=8,
        registered_delivery=0,
        service_type="CMT",
        validity_period=smpp_relative_time(validity),
        priority_flag=1,
    )
    expected = _aiosmpplib_pdu(
        message,
        message.parts[1],
        99,
        source=PhoneNumber("33700000000", TON.INTERNATIONAL, NPI.ISDN),
        destination=PhoneNumber("0612345678", TON.NATIONAL, NPI.NATIONAL),
        registered_delivery=0,
        service_type="CMT",
        validity_period=validity,
        priority_flag=1,
    )
    assert templates[1].encode(99, b"0612345678") == expected


@pytest.mark.parametrize(
    "text",
    ["Appelez le 112 {test} [x] ~ | ^ \\ € é è ù à Ç Ø\n", "Fenêtre ça 😀 Ünïcödé"],
)
def test_single_part_text_encoding_equals_aiosmpplib(text: str) -> None:
    """Our GSM/UCS-2 bytes equal aiosmpplib encoding the text itself (no pre-encoded part)."""
    message = encode_message(text, reference=0)
    assert message.part_count == 1
    (template,) = submit_templates(message, source_addr="ALERTE", source_ton=5, source_npi=0)
    reference = SubmitSm(
        short_message=text,
        source=PhoneNumber("ALERTE", TON.ALPHANUMERIC, NPI.UNKNOWN),
        destination=PhoneNumber(DEST, TON.INTERNATIONAL, NPI.ISDN),
        encoding="gsm0338" if message.encoding == "gsm7" else "ucs2",
        sequence_num=3,
    ).pdu()
    assert template.encode(3, DEST.encode()) == reference


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_smpplib_reads_our_submit_sm(name: str) -> None:
    message = encode_message(MESSAGES[name], reference=0x2A)
    templates = submit_templates(message, source_addr="ALERTE", source_ton=5, source_npi=0)
    for index, (template, part) in enumerate(zip(templates, message.parts, strict=True)):
        parsed = smpplib.smpp.parse_pdu(template.encode(500 + index, DEST.encode()), sequence=0)
        assert parsed.command == "submit_sm"
        assert parsed.sequence == 500 + index
        assert parsed.source_addr == b"ALERTE"
        assert parsed.source_addr_ton == 5
        assert parsed.destination_addr == DEST.encode()
        assert parsed.dest_addr_ton == 1
        assert parsed.esm_class == message.esm_class
        assert parsed.data_coding == message.data_coding
        assert parsed.registered_delivery == 1
        assert parsed.sm_length == len(part)
        assert parsed.short_message == part


def test_smpplib_reads_our_control_pdus() -> None:
    bind = smpplib.smpp.parse_pdu(
        encode_bind(CommandId.BIND_TRANSCEIVER, 1, "broadcaster", "a-very-long-password-123"),
        sequence=0,
    )
    assert (bind.command, bind.system_id, bind.password) == (
        "bind_transceiver",
        b"broadcaster",
        b"a-very-long-password-123",
    )
    assert bind.interface_version == 0x34
    resp = smpplib.smpp.parse_pdu(encode_submit_sm_resp(77, 0, "000A1F"), sequence=0)
    assert (resp.command, resp.sequence, resp.status, resp.message_id) == (
        "submit_sm_resp",
        77,
        0,
        b"000A1F",
    )
    receipt_tlvs = encode_tlv(0x001E, b"000A1F\0") + encode_tlv(0x0427, b"\x02")
    deliver = smpplib.smpp.parse_pdu(
        encode_deliver_sm(
            8,
            source_addr=DEST,
            destination_addr="ALERTE",
            esm_class=0x04,
            short_message=b"id:000A1F stat:DELIVRD",
            tlvs=receipt_tlvs,
        ),
        sequence=0,
    )
    assert deliver.command == "deliver_sm"
    assert deliver.esm_class == 0x04
    assert deliver.short_message == b"id:000A1F stat:DELIVRD"
    assert deliver.receipted_message_id == b"000A1F"
    assert deliver.message_state == 2


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        (
            encode_bind(CommandId.BIND_TRANSCEIVER, 1, "sys", "secret", "VMA"),
            BindTransceiver(sequence_num=1, system_id="sys", password="secret", system_type="VMA"),
        ),
        (
            encode_bind(CommandId.BIND_TRANSMITTER, 2, "sys", "secret"),
            BindTransmitter(sequence_num=2, system_id="sys", password="secret"),
        ),
        (
            encode_bind(CommandId.BIND_RECEIVER, 3, "sys", "pw", address_range="336"),
            BindReceiver(sequence_num=3, system_id="sys", password="pw", address_range="336"),
        ),
        (
            encode_bind_resp(CommandId.BIND_TRANSCEIVER_RESP, 4, 0, "SMSC", 0x34),
            BindTransceiverResp(sequence_num=4, system_id="SMSC", sc_interface_version=0x34),
        ),
        (encode_enquire_link(5), EnquireLink(sequence_num=5)),
        (encode_enquire_link_resp(6), EnquireLinkResp(sequence_num=6)),
        (encode_unbind(7), Unbind(sequence_num=7)),
        (encode_unbind_resp(8), UnbindResp(sequence_num=8)),
        (
            encode_generic_nack(9, Status.ESME_RINVCMDID),
            GenericNack(sequence_num=9, command_status=SmppCommandStatus.ESME_RINVCMDID),
        ),
        (encode_submit_sm_resp(10, 0, "0A1B"), SubmitSmResp(sequence_num=10, message_id="0A1B")),
        (encode_deliver_sm_resp(11), DeliverSmResp(sequence_num=11)),
    ],
)
def test_control_pdus_equal_aiosmpplib(ours: bytes, theirs: Any) -> None:
    assert ours == theirs.pdu()


def test_submit_template_round_trip() -> None:
    message = encode_message(MESSAGES["gsm7-3-parts"], reference=0x2A)
    validity = smpp_absolute_time(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    templates = submit_templates(
        message,
        source_addr="ALERTE",
        source_ton=5,
        source_npi=0,
        service_type="CMT",
        validity_period=validity,
        priority_flag=2,
    )
    decoded = decode_short_message_pdu(templates[2].encode(0xFFFFFFFF, b"262012345678"))
    assert decoded.command_id == CommandId.SUBMIT_SM
    assert decoded.sequence == 0xFFFFFFFF
    assert decoded.service_type == "CMT"
    assert (decoded.source_addr_ton, decoded.source_addr_npi, decoded.source_addr) == (
        5,
        0,
        "ALERTE",
    )
    assert (decoded.dest_addr_ton, decoded.dest_addr_npi) == (1, 1)
    assert decoded.destination_addr == "262012345678"
    assert decoded.esm_class == 0x40
    assert decoded.priority_flag == 2
    assert decoded.schedule_delivery_time == ""
    assert decoded.validity_period == "300102030405000+"
    assert decoded.registered_delivery == 1
    assert decoded.data_coding == 0
    assert decoded.short_message == message.parts[2]
    assert decoded.short_message[:6] == bytes((5, 0, 3, 0x2A, 3, 3))
    assert decoded.tlvs == {}
    assert not decoded.is_receipt


def test_deliver_sm_round_trip_with_tlvs() -> None:
    tlvs = encode_tlv(0x001E, b"000A1F\0") + encode_tlv(0x0427, b"\x05") + encode_tlv(0x1401, b"")
    pdu = encode_deliver_sm(
        42,
        source_addr=DEST,
        destination_addr="ALERTE",
        esm_class=0x04,
        short_message=b"id:000A1F stat:UNDELIV",
        data_coding=0,
        tlvs=tlvs,
        dest_ton=5,
        dest_npi=0,
    )
    decoded = decode_short_message_pdu(pdu)
    assert decoded.command_id == CommandId.DELIVER_SM
    assert decoded.sequence == 42
    assert decoded.source_addr == DEST
    assert decoded.destination_addr == "ALERTE"
    assert decoded.is_receipt
    assert decoded.short_message == b"id:000A1F stat:UNDELIV"
    assert decoded.tlvs == {0x001E: b"000A1F\0", 0x0427: b"\x05", 0x1401: b""}


def test_message_payload_is_user_data_when_short_message_is_empty() -> None:
    pdu = encode_deliver_sm(
        1,
        source_addr=DEST,
        destination_addr="ALERTE",
        esm_class=0x04,
        short_message=b"",
        tlvs=encode_tlv(0x0424, b"id:7 stat:DELIVRD"),
    )
    assert decode_short_message_pdu(pdu).user_data == b"id:7 stat:DELIVRD"


@pytest.mark.parametrize(
    "command_id",
    [CommandId.BIND_TRANSMITTER, CommandId.BIND_RECEIVER, CommandId.BIND_TRANSCEIVER],
)
def test_bind_round_trip_accepts_long_credentials(command_id: CommandId) -> None:
    password = "p" * 40  # aiosmpplib refuses more than 8; operators issue longer ones
    pdu = encode_bind(
        command_id, 12, "system-id-of-30-characters-xyz", password, "SMPP", 0x34, 1, 1
    )
    bind = decode_bind(pdu)
    assert bind.command_id == command_id
    assert bind.sequence == 12
    assert bind.system_id == "system-id-of-30-characters-xyz"
    assert bind.password == password
    assert bind.system_type == "SMPP"
    assert (bind.interface_version, bind.addr_ton, bind.addr_npi) == (0x34, 1, 1)
    assert bind.address_range == ""


def test_bind_resp_round_trips() -> None:
    ok = decode_bind_resp(encode_bind_resp(CommandId.BIND_TRANSCEIVER_RESP, 3, 0, "SMSC", 0x34))
    assert ok == (CommandId.BIND_TRANSCEIVER_RESP, 0, 3, "SMSC", 0x34)
    bare = decode_bind_resp(encode_bind_resp(CommandId.BIND_TRANSMITTER_RESP, 4, 0, "SMSC"))
    assert bare.sc_interface_version is None
    refused = decode_bind_resp(encode_pdu(CommandId.BIND_RECEIVER_RESP, Status.ESME_RBINDFAIL, 5))
    assert refused == (CommandId.BIND_RECEIVER_RESP, Status.ESME_RBINDFAIL, 5, "", None)


def test_header_round_trips_for_bodyless_pdus() -> None:
    assert decode_header(encode_enquire_link(1)) == (16, CommandId.ENQUIRE_LINK, 0, 1)
    assert decode_header(encode_enquire_link_resp(2)) == (16, CommandId.ENQUIRE_LINK_RESP, 0, 2)
    assert decode_header(encode_unbind(3)) == (16, CommandId.UNBIND, 0, 3)
    assert decode_header(encode_unbind_resp(4)) == (16, CommandId.UNBIND_RESP, 0, 4)
    assert decode_header(encode_generic_nack(5, 3)) == (16, CommandId.GENERIC_NACK, 3, 5)
    resp = encode_deliver_sm_resp(6, Status.ESME_RX_T_APPN)
    assert decode_header(resp) == (17, CommandId.DELIVER_SM_RESP, 0x64, 6)
    assert resp[16:] == b"\0"
    pdu = encode_submit_sm_resp(7, 0, "x")
    assert HEADER_FIELDS.unpack_from(pdu, 4) == (CommandId.SUBMIT_SM_RESP, 0, 7)


def test_submit_sm_resp_round_trip_keeps_id_as_string() -> None:
    assert decode_submit_sm_resp(encode_submit_sm_resp(9, 0, "000A1F")) == (9, 0, "000A1F")
    assert decode_submit_sm_resp(encode_submit_sm_resp(9, 0, "x" * 64)) == (9, 0, "x" * 64)


def test_error_submit_sm_resp_without_body_and_vendor_status() -> None:
    """A vendor status (0x401) with an empty body decodes; nothing raises on unknown values."""
    pdu = encode_pdu(CommandId.SUBMIT_SM_RESP, 0x401, 77)
    assert decode_submit_sm_resp(pdu) == (77, 0x401, "")
    assert decode_header(pdu) == Header(16, CommandId.SUBMIT_SM_RESP, 0x401, 77)
    throttled = encode_submit_sm_resp(78, Status.ESME_RTHROTTLED, "")
    assert decode_submit_sm_resp(throttled) == (78, 0x58, "")
    assert status_name(0x401) == "0x00000401"
    assert status_name(0x58) == "ESME_RTHROTTLED"
    assert status_name(0xFFFFFFFF) == "0xFFFFFFFF"


def test_unknown_command_ids_decode() -> None:
    data_sm = encode_pdu(0x00000103, 0, 5, b"\x00\x01\x02")
    assert decode_header(data_sm) == (19, 0x103, 0, 5)
    vendor = encode_pdu(0x00010200, 0x12345678, 6)
    assert decode_header(vendor) == (16, 0x00010200, 0x12345678, 6)
    assert command_name(0x00010200) == "0x00010200"
    assert command_name(CommandId.SUBMIT_SM) == "submit_sm"
    assert FrameBuffer().feed(vendor + data_sm) == [vendor, data_sm]


def test_transient_statuses_are_throttled_and_queue_full() -> None:
    assert {Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL} == TRANSIENT_STATUSES
    assert 0x58 in TRANSIENT_STATUSES
    assert Status.ESME_RSYSERR not in TRANSIENT_STATUSES


# --------------------------------------------------------------------------------------------
# Malformed PDUs


def _sm_body(
    *,
    service_type: bytes = b"",
    source: bytes = b"ALERTE",
    destination: bytes = DEST.encode(),
    schedule: bytes = b"",
    validity: bytes = b"",
    short_message: bytes = b"hello",
    sm_length: int | None = None,
    tlvs: bytes = b"",
) -> bytes:
    """A raw submit_sm body, without any of the encoder's validation."""
    length = len(short_message) if sm_length is None else sm_length
    return (
        service_type
        + b"\0\x05\x00"
        + source
        + b"\0\x01\x01"
        + destination
        + b"\0\x00\x00\x00"
        + schedule
        + b"\0"
        + validity
        + b"\0\x01\x00\x00\x00"
        + bytes((length,))
        + short_message
        + tlvs
    )


def _submit(body: bytes) -> bytes:
    return encode_pdu(CommandId.SUBMIT_SM, 0, 1, body)


VALID_BODY = _sm_body()
MALFORMED_SHORT_MESSAGES = {
    "shorter than a header": (b"\x00\x00\x00\x10\x00\x00", Status.ESME_RINVCMDLEN),
    "length below the PDU": (struct.pack("!IIII", 20, 4, 0, 1) + b"\0" * 30, 0x02),
    "length past the PDU": (struct.pack("!IIII", 200, 4, 0, 1) + VALID_BODY, 0x02),
    "not a short message": (encode_pdu(CommandId.BIND_TRANSCEIVER, 0, 1, VALID_BODY), 0x03),
    "unterminated C-string": (_submit(b"\0\x05\x00ALERTE\0\x01\x0133612345678"), 0x02),
    "ends inside fixed fields": (_submit(VALID_BODY[:30]), Status.ESME_RINVCMDLEN),
    "service_type too long": (_submit(_sm_body(service_type=b"ABCDEF")), 0x15),
    "source_addr too long": (_submit(_sm_body(source=b"1" * 21)), Status.ESME_RINVSRCADR),
    "destination too long": (_submit(_sm_body(destination=b"3" * 21)), Status.ESME_RINVDSTADR),
    "destination not ASCII": (_submit(_sm_body(destination=b"33\xe9")), Status.ESME_RINVDSTADR),
    "schedule not a time": (_submit(_sm_body(schedule=b"12345")), Status.ESME_RINVSCHED),
    "validity too long": (_submit(_sm_body(validity=b"1" * 17)), Status.ESME_RINVEXPIRY),
    "validity not a time": (_submit(_sm_body(validity=b"000001")), Status.ESME_RINVEXPIRY),
    "sm_length past the end": (_submit(_sm_body(sm_length=6)), Status.ESME_RINVMSGLEN),
    "sm_length 255": (
        _submit(_sm_body(short_message=b"x" * 255, sm_length=255)),
        Status.ESME_RINVMSGLEN,
    ),
    "TLV length past the end": (
        _submit(_sm_body(tlvs=b"\x04\x24\x00\x10abc")),
        Status.ESME_RINVOPTPARSTREAM,
    ),
    "stray octets after the TLVs": (
        _submit(_sm_body(tlvs=encode_tlv(0x0204, b"\0\1") + b"\x02")),
        Status.ESME_RINVOPTPARSTREAM,
    ),
    "TLV of the wrong length": (
        _submit(_sm_body(tlvs=encode_tlv(0x020E, b"\0\3"))),
        Status.ESME_RINVPARLEN,
    ),
}


def test_valid_body_used_by_the_malformed_table_decodes() -> None:
    decoded = decode_short_message_pdu(_submit(VALID_BODY))
    assert decoded.short_message == b"hello"
    assert decoded.destination_addr == DEST


@pytest.mark.parametrize("case", sorted(MALFORMED_SHORT_MESSAGES))
def test_malformed_short_message_pdus_raise_with_status(case: str) -> None:
    pdu, status = MALFORMED_SHORT_MESSAGES[case]
    with pytest.raises(SmppProtocolError) as caught:
        decode_short_message_pdu(pdu)
    assert caught.value.command_status == status


MALFORMED_OTHERS: dict[str, tuple[Callable[[bytes], object], bytes, int]] = {
    "header of 15 octets": (decode_header, b"\0" * 15, Status.ESME_RINVCMDLEN),
    "header length mismatch": (decode_header, struct.pack("!IIII", 17, 4, 0, 1), 0x02),
    "resp of another command": (decode_submit_sm_resp, encode_enquire_link_resp(1), 0x03),
    "resp id unterminated": (
        decode_submit_sm_resp,
        encode_pdu(CommandId.SUBMIT_SM_RESP, 0, 1, b"abc"),
        Status.ESME_RINVCMDLEN,
    ),
    "resp id too long": (
        decode_submit_sm_resp,
        encode_pdu(CommandId.SUBMIT_SM_RESP, 0, 1, b"x" * 65 + b"\0"),
        Status.ESME_RINVMSGID,
    ),
    "bind system_type too long": (
        decode_bind,
        encode_pdu(CommandId.BIND_TRANSMITTER, 0, 1, b"id\0pw\0" + b"T" * 13 + b"\0\x34\0\0\0"),
        Status.ESME_RINVSYSTYP,
    ),
    "bind address_range too long": (
        decode_bind,
        encode_pdu(CommandId.BIND_TRANSMITTER, 0, 1, b"id\0pw\0\0\x34\0\0" + b"1" * 41 + b"\0"),
        Status.ESME_RINVPARLEN,
    ),
    "bind password unterminated": (
        decode_bind,
        encode_pdu(CommandId.BIND_TRANSMITTER, 0, 1, b"id\0password"),
        Status.ESME_RINVCMDLEN,
    ),
    "bind truncated": (
        decode_bind,
        encode_pdu(CommandId.BIND_TRANSMITTER, 0, 1, b"id\0pw\0\0\x34"),
        Status.ESME_RINVCMDLEN,
    ),
    "bind trailing octets": (
        decode_bind,
        encode_pdu(CommandId.BIND_TRANSMITTER, 0, 1, b"id\0pw\0\0\x34\0\0\0\0"),
        Status.ESME_RINVCMDLEN,
    ),
    "bind non-ASCII system_id": (
        decode_bind,
        encode_pdu(CommandId.BIND_TRANSMITTER, 0, 1, b"\xe9\0pw\0\0\x34\0\0\0"),
        Status.ESME_RINVSYSID,
    ),
    "bind with a response id": (
        decode_bind,
        encode_bind_resp(CommandId.BIND_TRANSMITTER_RESP, 1, 0, "x"),
        Status.ESME_RINVCMDID,
    ),
    "bind_resp TLV past the end": (
        decode_bind_resp,
        encode_pdu(CommandId.BIND_TRANSMITTER_RESP, 0, 1, b"SMSC\0\x02\x10\x00\x05\x34"),
        Status.ESME_RINVOPTPARSTREAM,
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_OTHERS))
def test_malformed_pdus_raise_with_status(case: str) -> None:
    decode, pdu, status = MALFORMED_OTHERS[case]
    with pytest.raises(SmppProtocolError) as caught:
        decode(pdu)
    assert caught.value.command_status == status


# --------------------------------------------------------------------------------------------
# Framing


def _stream() -> list[bytes]:
    message = encode_message(MESSAGES["ucs2-multi"], reference=1)
    templates = submit_templates(message, source_addr="ALERTE", source_ton=5, source_npi=0)
    return [
        encode_enquire_link(1),
        templates[0].encode(2, DEST.encode()),
        encode_submit_sm_resp(3, 0, "000A1F"),
        encode_pdu(CommandId.SUBMIT_SM_RESP, 0x58, 4),
        templates[1].encode(5, DEST.encode()),
        encode_generic_nack(6, 3),
    ]


def test_frame_buffer_split_at_every_byte_boundary() -> None:
    pdus = _stream()
    data = b"".join(pdus)
    for cut in range(len(data) + 1):
        frames = FrameBuffer()
        received = frames.feed(data[:cut]) + frames.feed(data[cut:])
        assert received == pdus, cut
        assert frames.buffered == 0


def test_frame_buffer_one_byte_at_a_time() -> None:
    pdus = _stream()
    frames = FrameBuffer()
    received: list[bytes] = []
    for octet in b"".join(pdus):
        received.extend(frames.feed(bytes((octet,))))
    assert received == pdus
    assert frames.buffered == 0


def test_frame_buffer_many_pdus_in_one_chunk() -> None:
    pdus = [encode_submit_sm_resp(seq, 0, f"{seq:08X}") for seq in range(5000)]
    frames = FrameBuffer()
    tail = encode_submit_sm_resp(5000, 0, "LAST")
    received = frames.feed(b"".join(pdus) + tail[:10])
    assert received == pdus
    assert frames.buffered == 10
    assert frames.feed(tail[10:]) == [tail]
    assert decode_submit_sm_resp(received[4999]) == (4999, 0, "00001387")


def test_frame_buffer_large_pdu_in_small_chunks() -> None:
    big = encode_pdu(CommandId.DELIVER_SM, 0, 1, b"x" * (MAX_PDU_LENGTH - 16))
    frames = FrameBuffer()
    received: list[bytes] = []
    for start in range(0, len(big), 7):
        received.extend(frames.feed(big[start : start + 7]))
    assert received == [big]


@pytest.mark.parametrize("length", [0, 15, MAX_PDU_LENGTH + 1, 0xFFFFFFFF])
def test_frame_buffer_rejects_impossible_lengths(length: int) -> None:
    frames = FrameBuffer()
    with pytest.raises(SmppProtocolError) as caught:
        frames.feed(struct.pack("!I", length))
    assert caught.value.command_status == Status.ESME_RINVCMDLEN
    with pytest.raises(SmppProtocolError):
        frames.feed(encode_enquire_link(1))


def test_frame_buffer_returns_good_pdus_before_a_bad_length() -> None:
    good = [encode_submit_sm_resp(1, 0, "A"), encode_submit_sm_resp(2, 0, "B")]
    frames = FrameBuffer()
    assert frames.feed(b"".join(good) + struct.pack("!IIII", 3, 0, 0, 0)) == good
    assert frames.error is not None
    assert frames.error.command_status == Status.ESME_RINVCMDLEN
    with pytest.raises(SmppProtocolError):
        frames.feed(b"")


# --------------------------------------------------------------------------------------------
# Validation of what we encode


@pytest.mark.parametrize(("msisdn", "expected"), [(33612345678, b"33612345678"), ("1", b"1")])
def test_destination_bytes(msisdn: int | str, expected: bytes) -> None:
    assert destination_bytes(msisdn) == expected


@pytest.mark.parametrize("msisdn", ["", "+33612345678", "3" * 21, "336 12", "٣٣٦", -336, "33a"])
def test_destination_bytes_rejects(msisdn: int | str) -> None:
    with pytest.raises(InputError):
        destination_bytes(msisdn)


@pytest.mark.parametrize(
    "fields",
    [
        {"password": "pässword"},
        {"system_id": "a\0b"},
        {"system_type": "T" * 13},
        {"address_range": "1" * 41},
        {"command_id": CommandId.SUBMIT_SM},
    ],
)
def test_encode_bind_rejects(fields: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {
        "command_id": CommandId.BIND_TRANSCEIVER,
        "sequence": 1,
        "system_id": "sys",
        "password": "pw",
    } | fields
    with pytest.raises(InputError):
        encode_bind(**arguments)


@pytest.mark.parametrize(
    "fields",
    [
        {"source_addr": "1" * 21},
        {"source_ton": 256},
        {"service_type": "SIXSIX"},
        {"validity_period": "1h"},
        {"registered_delivery": -1},
    ],
)
def test_submit_templates_rejects(fields: dict[str, Any]) -> None:
    arguments: dict[str, Any] = {"source_addr": "ALERTE", "source_ton": 5, "source_npi": 0}
    with pytest.raises(InputError):
        submit_templates(encode_message("x", 0), **(arguments | fields))


def test_smpp_times_match_aiosmpplib_and_sign_negative_offsets() -> None:
    when = datetime(2031, 6, 2, 12, 30, 45, 600000, tzinfo=UTC)
    assert smpp_absolute_time(when) == SubmitSm.datetime_to_smpp_time(when) == "310602123045600+"
    paris = datetime(2031, 6, 2, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    assert smpp_absolute_time(paris) == SubmitSm.datetime_to_smpp_time(paris) == "310602143000008+"
    azores = datetime(2031, 6, 2, 11, 30, tzinfo=timezone(timedelta(hours=-1)))
    assert smpp_absolute_time(azores) == "310602113000004-"
    delta = timedelta(days=400, hours=5, minutes=6, seconds=7)
    assert smpp_relative_time(delta) == SubmitSm.datetime_to_smpp_time(delta) == "010105050607000R"
