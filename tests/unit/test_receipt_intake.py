"""The short cut for receipts (issue 22) against the strict path it stands in for.

Every deliver_sm here goes through a bound connection (`receive_data`, which takes the short
cut when it can) and through the reference: the strict decoder, `decode_short_message`,
`parse_receipt` and the deliver_sm_resp written field by field. The replies must be the same
octets, the events the same, for receipts as SMSCs write them and for everything around them:
other layouts, TLV-only, UCS-2, message_payload, odd fields, broken lengths.
"""

from __future__ import annotations

import struct
import time
from datetime import UTC, datetime

import pytest
import structlog

from broadcaster.domain.receipt_ids import keys
from broadcaster.engine import receipts as receipts_module
from broadcaster.engine.receipts import ReceiptRecorder
from broadcaster.errors import SmppProtocolError
from broadcaster.mocksmsc.receipts import ReceiptRun, ReceiptTemplates
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.settings import SmscConfig
from broadcaster.smpp import codec
from broadcaster.smpp.connection import (
    DeliverSmMalformed,
    Event,
    MoMessage,
    ReceiptUnreadable,
    SmppConnection,
)
from broadcaster.smpp.constants import CommandId
from broadcaster.smpp.pool import Part
from broadcaster.smpp.receipts import (
    Receipt,
    format_receipt,
    parse_receipt,
    read_receipt,
    read_receipt_pdu,
    receipt_tlvs,
)
from broadcaster.store import receipts as store
from broadcaster.text.encoding import decode_short_message, encode_gsm7

WHEN = datetime(2026, 12, 6, 11, 0)
STANDARD = format_receipt(
    message_id="00000000A1B2C3D4", stat="DELIVRD", submit_date=WHEN, done_date=WHEN
)
PAYLOAD = 0x0424


def deliver(
    text: bytes | str = STANDARD,
    *,
    sequence: int = 7,
    tlvs: bytes = b"",
    data_coding: int = 0,
    esm_class: int = 0x04,
    **fields: object,
) -> bytes:
    short_message = text.encode("ascii") if isinstance(text, str) else text
    return codec.encode_deliver_sm(
        sequence,
        source_addr=str(fields.pop("source_addr", "33612345678")),
        destination_addr=str(fields.pop("destination_addr", "ALERTE")),
        esm_class=esm_class,
        short_message=short_message,
        data_coding=data_coding,
        tlvs=tlvs,
        **fields,  # type: ignore[arg-type]
    )


def reference(pdu: bytes) -> tuple[bytes, list[Event | Receipt]]:
    """What the strict path answers and reads: its events, or its receipt (the connection
    before the short cut)."""
    sequence = struct.unpack_from("!I", pdu, 12)[0]

    def resp(status: int) -> bytes:
        return struct.pack("!IIII", 17, int(CommandId.DELIVER_SM_RESP), status, sequence) + b"\0"

    try:
        message = codec.decode_short_message_pdu(pdu)
    except SmppProtocolError as exc:
        return resp(exc.command_status), [DeliverSmMalformed(str(exc))]
    if not message.is_receipt:
        return resp(0), [MoMessage()]
    text = decode_short_message(message.user_data, message.data_coding)
    receipt = parse_receipt(text, message.tlvs, message.source_addr)
    return resp(0), [ReceiptUnreadable(text) if receipt is None else receipt]


def bound() -> SmppConnection[Part]:
    connection: SmppConnection[Part] = SmppConnection(system_id="esme", password="")
    connection.bind()
    connection.receive_data(
        codec.encode_bind_resp(int(CommandId.BIND_TRANSCEIVER_RESP), 1, 0, "SC"), 0.0
    )
    return connection


def received(pdu: bytes) -> tuple[bytes, list[Event | Receipt]]:
    """What the connection answers to one PDU, and its events or the receipt it read."""
    got = bound().receive_data(pdu, 1.0)
    return got.to_send, [*got.events, *got.receipts]


def mock_pdus(config: MockConfig, count: int = 4) -> list[bytes]:
    """Receipts exactly as the mock SMSC writes them, with `config`."""
    out: list[bytes] = []
    run = ReceiptRun(
        "esme",
        None,  # type: ignore[arg-type]  # not used to encode
        WHEN,
        [
            (0xA1B2C3D4 + i, b"3361234567%d" % i, b"ALERTE", stat, "Bonjour a tous", False)
            for i, stat in enumerate(("DELIVRD", "UNDELIV", "EXPIRED", "DELIVRD")[:count])
        ],
    )
    ReceiptTemplates(config, datetime(2026, 12, 6, 11, 1)).encode_run(run, 0, out)
    return out


# -- receipts the short cut takes --------------------------------------------------------------

MOCK_CONFIGS = [
    MockConfig(),
    MockConfig(receipt_12_digit_dates=True),
    MockConfig(receipt_decimal_ids=True),
    MockConfig(receipt_tlv=False),
    MockConfig(receipt_text=False),  # TLV only
]


@pytest.mark.parametrize(
    "config", MOCK_CONFIGS, ids=["default", "12-digit", "decimal", "text-only", "tlv-only"]
)
def test_the_mocks_receipts_read_the_same_as_by_the_strict_path(config: MockConfig) -> None:
    for pdu in mock_pdus(config):
        assert codec.decode_receipt_fields(pdu) is not None  # the short cut takes them all
        assert received(pdu) == reference(pdu)


def test_a_standard_receipt_gives_every_field() -> None:
    replies, events = received(deliver(tlvs=receipt_tlvs("00000000A1B2C3D4", "DELIVRD")))
    assert replies == struct.pack("!IIII", 17, 0x80000005, 0, 7) + b"\0"
    assert events == [
        Receipt("00000000A1B2C3D4", "DELIVRD", "000", WHEN, WHEN, 1, 1, None, "33612345678")
    ]
    (receipt,) = events
    assert isinstance(receipt, Receipt) and receipt.delivered and receipt.final


CASES = {
    "decimal text id, hex TLV": deliver(
        STANDARD.replace("00000000A1B2C3D4", "2712847316"), tlvs=receipt_tlvs("A1B2C3D4", "DELIVRD")
    ),
    "lower-case stat and alias": deliver(STANDARD.replace("stat:DELIVRD", "stat:delivered")),
    "no stat, message_state TLV": deliver(
        STANDARD.replace("stat:DELIVRD", "stat:"), tlvs=receipt_tlvs("A1", "UNDELIV")
    ),
    "no stat, no TLV": deliver(STANDARD.replace("stat:DELIVRD", "stat:")),
    "empty counts and dates": deliver(
        "id:77 sub: dlvrd: submit date: done date: stat:DELIVRD err: text:"
    ),
    "odd date": deliver(STANDARD.replace("done date:2612061100", "done date:2613991100")),
    "other layout": deliver("id:88 stat:DELIVRD err:000 Text:hello"),
    "lower-case keys, underscores": deliver(
        "id:88 sub:001 dlvrd:001 submit_date:2612061100 done_date:2612061100 stat:UNDELIV"
        " err:001 text:x"
    ),
    "id with a dash": deliver(STANDARD.replace("00000000A1B2C3D4", "A1-B2")),
    "no id, TLV id": deliver(
        STANDARD.replace("id:00000000A1B2C3D4", "id:"), tlvs=receipt_tlvs("B7", "DELIVRD")
    ),
    "no id at all": deliver(STANDARD.replace("id:00000000A1B2C3D4 ", "")),
    "nothing": deliver(""),
    "TLV only": deliver("", tlvs=receipt_tlvs("00AB", "EXPIRED")),
    "TLV id of spaces": deliver(STANDARD, tlvs=codec.encode_tlv(0x001E, b"  \0")),
    "TLV id without NUL": deliver(STANDARD, tlvs=codec.encode_tlv(0x001E, b"ABC")),
    "TLVs the other way round": deliver(
        STANDARD, tlvs=codec.encode_tlv(0x0427, b"\x02") + codec.encode_tlv(0x001E, b"AB\0")
    ),
    "three TLVs": deliver(
        STANDARD, tlvs=receipt_tlvs("AB", "DELIVRD") + codec.encode_tlv(0x0423, b"\0\0\0")
    ),
    "message_payload": deliver("", tlvs=codec.encode_tlv(PAYLOAD, STANDARD.encode())),
    "message_payload and TLVs": deliver(
        "", tlvs=receipt_tlvs("A1", "DELIVRD") + codec.encode_tlv(PAYLOAD, STANDARD.encode())
    ),
    "UCS-2 text": deliver(STANDARD.encode("utf-16-be"), data_coding=8),
    "UCS-2 text, TLVs": deliver(
        STANDARD.encode("utf-16-be"), data_coding=8, tlvs=receipt_tlvs("A1", "DELIVRD")
    ),
    "GSM text with @ and escapes": deliver(
        encode_gsm7(STANDARD + "@{€}"), tlvs=receipt_tlvs("A1", "DELIVRD")
    ),
    "GSM octets in the id": deliver(STANDARD.replace("A1B2", "A\x00B").encode("latin-1")),
    "latin-1 text": deliver((STANDARD + "é").encode("latin-1"), data_coding=3),
    "octets above 0x7F in the id": deliver(
        STANDARD.replace("A1", "\xc1").encode("latin-1"), data_coding=3
    ),
    "UDHI set": deliver(STANDARD, esm_class=0x44),
    "store and forward mode bits": deliver(STANDARD, esm_class=0x07),
    "intermediate notification": deliver(STANDARD, esm_class=0x20),
    "a subscriber's message": deliver("STOP", esm_class=0x00),
    "service_type": deliver(STANDARD, service_type="CMT"),
    "20-digit source": deliver(STANDARD, source_addr="1" * 20),
    "empty source": deliver(STANDARD, source_addr=""),
    "alphanumeric destination": deliver(STANDARD, destination_addr="A" * 11, dest_ton=5),
    "254 octets": deliver(STANDARD + "x" * (254 - len(STANDARD))),
}


@pytest.mark.parametrize("pdu", CASES.values(), ids=CASES.keys())
def test_every_receipt_and_deliver_sm_reads_as_by_the_strict_path(pdu: bytes) -> None:
    assert received(pdu) == reference(pdu)


def test_the_short_cut_declines_what_it_does_not_read_alike() -> None:
    assert codec.decode_receipt_fields(CASES["a subscriber's message"]) is None
    assert codec.decode_receipt_fields(CASES["intermediate notification"]) is None
    assert codec.decode_receipt_fields(CASES["TLV only"]) is not None
    source, data_coding, user_data, tlvs = codec.decode_receipt_fields(
        CASES["message_payload"]
    ) or (
        "",
        0,
        b"",
        {},
    )
    assert (source, data_coding, user_data) == ("33612345678", 0, STANDARD.encode())
    assert set(tlvs) == {PAYLOAD}


def _strict_receipt(pdu: bytes) -> Receipt | None:
    """The receipt the strict path reads in `pdu` (None: none, or not a receipt)."""
    _, events = reference(pdu)
    (event,) = events
    return event if isinstance(event, Receipt) else None


@pytest.mark.parametrize("pdu", CASES.values(), ids=CASES.keys())
def test_the_one_match_reader_reads_as_the_strict_path_or_declines(pdu: bytes) -> None:
    got = read_receipt_pdu(pdu)
    assert got is None or got == _strict_receipt(pdu)


def test_the_one_match_reader_takes_the_usual_receipts_and_declines_the_rest() -> None:
    """It must take what SMSCs send for nearly every part (else the time is not saved), and
    decline what it does not read alike: the long way then reads it (tests above)."""
    for config in MOCK_CONFIGS[:-1]:  # the mock's, but TLV-only (no text to match)
        for pdu in mock_pdus(config):
            assert read_receipt_pdu(pdu) == _strict_receipt(pdu) is not None
    taken = {
        "decimal text id, hex TLV",
        "lower-case stat and alias",
        "no stat, message_state TLV",
        "no stat, no TLV",
        "empty counts and dates",
        "odd date",
        "GSM text with @ and escapes",
        "latin-1 text",
        "UDHI set",
        "store and forward mode bits",
        "service_type",
        "20-digit source",
        "empty source",
        "alphanumeric destination",
        "254 octets",
    }
    assert {name for name, pdu in CASES.items() if read_receipt_pdu(pdu) is not None} == taken
    for pdu in MALFORMED.values():
        assert read_receipt_pdu(_with_length(pdu)) is None
    assert read_receipt_pdu(GOOD[:-1]) is None and read_receipt_pdu(GOOD + b"\0") is None


# -- malformed deliver_sm: the same status and event as the strict path ---------------------------


def _patched(pdu: bytes, at: int, value: bytes) -> bytes:
    return pdu[:at] + value + pdu[at + len(value) :]


GOOD = deliver(tlvs=receipt_tlvs("00000000A1B2C3D4", "DELIVRD"))
SM_LENGTH = codec.HEADER_LENGTH + 1 + 2 + 12 + 2 + 7 + 3 + 2 + 4
"""Where sm_length sits in `GOOD` (empty service_type, source of 11 digits, "ALERTE")."""
assert GOOD[SM_LENGTH] == len(STANDARD)

MALFORMED = {
    "sm_length past the end": _patched(GOOD, SM_LENGTH, b"\xf0"),
    "sm_length 255": _patched(deliver("x" * 254, tlvs=b"\0"), SM_LENGTH, b"\xff"),
    "sm_length short: the text runs into the TLVs": _patched(GOOD, SM_LENGTH, b"\x10"),
    "TLV length past the end": GOOD[:-5] + b"\x04\x27\x00\x09\x02",
    "message_state of 2 octets": GOOD[:-5] + b"\x04\x27\x00\x02\x02\x02",
    "receipted_message_id of 66 octets": deliver(
        STANDARD, tlvs=codec.encode_tlv(0x001E, b"A" * 65 + b"\0")
    ),
    "receipted_message_id empty": deliver(
        STANDARD, tlvs=codec.encode_tlv(0x001E, b"") + receipt_tlvs("A", "DELIVRD")[-5:]
    ),
    "stray octets after the TLVs": GOOD + b"\0\0",
    "non-ASCII source": _patched(GOOD, codec.HEADER_LENGTH + 3, b"\xe9"),
    "source of 21 octets": deliver(STANDARD)[:19] + b"1" * 21 + deliver(STANDARD)[30:],
    "non-ASCII service_type": deliver(STANDARD, service_type="CMT")[:16]
    + b"\xc3"
    + deliver(STANDARD, service_type="CMT")[17:],
    "a schedule_delivery_time": _patched(GOOD, SM_LENGTH - 6, b"2"),
    "cut inside the mandatory fields": GOOD[:30],
}


def _with_length(pdu: bytes) -> bytes:
    """The PDU with its command_length fixed (as the frame buffer would cut it)."""
    return struct.pack("!I", len(pdu)) + pdu[4:]


@pytest.mark.parametrize("pdu", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_receipt_gets_the_same_status_and_event(pdu: bytes) -> None:
    pdu = _with_length(pdu)
    replies, events = reference(pdu)
    assert isinstance(events[0], DeliverSmMalformed) and replies[8:12] != b"\0\0\0\0"
    assert received(pdu) == (replies, events)


def test_a_pdu_whose_length_disagrees_is_not_taken() -> None:
    assert codec.decode_receipt_fields(GOOD[:-1]) is None
    assert codec.decode_receipt_fields(GOOD + b"\0") is None
    assert codec.decode_receipt_fields(GOOD[:10]) is None


def test_the_deliver_sm_resp_is_the_same_octets() -> None:
    for sequence, status in ((1, 0), (0x7FFFFFFF, 0), (42, 0x45), (7, 0xFFFFFFFF)):
        assert codec.encode_deliver_sm_resp(sequence, status) == (
            codec.HEADER.pack(17, CommandId.DELIVER_SM_RESP, status, sequence) + b"\0"
        )


# -- read_receipt: parse_receipt of the decoded text, quicker ------------------------------------


TEXTS = [v for v in CASES.values()] + [GOOD]


@pytest.mark.parametrize("data_coding", [0, 1, 3, 4, 8])
def test_read_receipt_is_parse_receipt_of_the_decoded_text(data_coding: int) -> None:
    for pdu in TEXTS:
        message = codec.decode_short_message_pdu(pdu)
        text = decode_short_message(message.user_data, data_coding)
        expected = parse_receipt(text, message.tlvs, message.source_addr)
        got = read_receipt(message.user_data, data_coding, message.tlvs, message.source_addr)
        assert got == (text if expected is None else expected)


# -- the recorder's rows --------------------------------------------------------------------------


def test_a_receipt_the_recorder_cannot_read_loses_only_itself() -> None:
    recorder = ReceiptRecorder(None, [SmscConfig(name="s", receipt_ids="same")])  # type: ignore[arg-type]
    unreadable = Receipt(None, "DELIVRD")  # type: ignore[arg-type]  # no id: .upper() fails
    with structlog.testing.capture_logs() as logs:
        recorder.received([Receipt("0A1", "DELIVRD"), unreadable, Receipt("0B2", "UNDELIV")], "s")
    assert [(row[1], row[4]) for row in recorder._rows] == [("0A1", "DELIVRD"), ("0B2", "UNDELIV")]
    assert [entry["event"] for entry in logs] == ["receipt_unrecorded"]


@pytest.mark.parametrize("form", ["same", "decimal", "hex", "auto"])
def test_the_recorders_row_holds_the_keys_and_times_of_before(form: str) -> None:
    recorder = ReceiptRecorder(None, [SmscConfig(name="s", receipt_ids=form)])  # type: ignore[arg-type]
    receipts = [
        Receipt("000A1F", "DELIVRD", "000", WHEN, WHEN, 1, 1, None, "33612345678"),
        Receipt("0A1F", "UNDELIV", None, None, None, None, None, "2591", None),
        Receipt("000", "EXPIRED"),
        Receipt("12", "DELIVRD", done_date=datetime(2026, 12, 6, 11, 0, 30)),
    ]
    before = time.time()
    for receipt in receipts:
        recorder(receipt, "s")
    after = time.time()
    for receipt, row in zip(receipts, recorder._rows, strict=True):
        assert len(row) == len(store.STAGED_COLUMNS)
        columns = dict(zip(store.STAGED_COLUMNS, row, strict=True))
        done = receipt.done_date
        assert columns["done_epoch"] == (
            None if done is None else done.replace(tzinfo=UTC).timestamp()
        )
        received_epoch = columns["received_epoch"]
        assert isinstance(received_epoch, float) and before <= received_epoch <= after
        expected = keys((receipt.message_id, receipt.text_message_id), form)
        assert columns["first_key"] == (expected[0] if expected else None)
        assert columns["more_keys"] == (expected[1:] or None)
        assert (columns["message_id"], columns["text_message_id"], columns["reported_msisdn"]) == (
            receipt.message_id,
            receipt.text_message_id,
            receipt.source,
        )


def test_staged_rows_from_datetimes_and_keys() -> None:
    at = datetime(2026, 12, 6, 10, 0, 0, 123456, tzinfo=UTC)
    row = store.staged("s", "A1", None, "336", "DELIVRD", None, None, at, ["A1", "161"])
    assert row == ("s", "A1", None, "336", "DELIVRD", None, None, at.timestamp(), "A1", ["161"])
    assert store.key_columns([]) == (None, None)
    assert store.key_columns(["X"]) == ("X", None)
    assert datetime.fromtimestamp(row[7], UTC) == at  # float seconds keep the microseconds


def test_the_recorder_flushes_often_while_an_auto_smsc_is_learnt_and_for_a_while_only() -> None:
    """Every `LEARNING_INTERVAL` from an `auto` SMSC's first receipt to its form being settled,
    or to `LEARNING_WINDOW_S` after that receipt (an SMSC whose receipts name no part is never
    settled: the held receipts are tried again at the interval, not 20 times a second); at
    the interval for an SMSC whose form is configured, and for an `auto` one that sent this
    process no receipt (none asked for: it would have set the pace for ever)."""
    configured = ReceiptRecorder(None, [SmscConfig(name="s", receipt_ids="same")], interval=0.5)  # type: ignore[arg-type]
    configured(Receipt("0A1", "DELIVRD"), "s")
    assert configured._every() == 0.5
    smscs = [SmscConfig(name="s"), SmscConfig(name="quiet", registered_delivery=0)]
    recorder = ReceiptRecorder(None, smscs, interval=0.5)  # type: ignore[arg-type]
    assert recorder._every() == 0.5  # two auto SMSCs, no receipt yet
    recorder(Receipt("0A1", "DELIVRD"), "s")
    assert recorder._every() == receipts_module.LEARNING_INTERVAL
    recorder._learning_from["s"] -= receipts_module.LEARNING_WINDOW_S + 1
    assert recorder._every() == 0.5  # never settled: back to the interval
    recorder._learning_from["s"] = time.monotonic()
    recorder.ids.forms["s"] = "decimal"  # settled
    assert recorder._every() == 0.5
