"""The sans-I/O SMPP connection as byte scripts: what it writes, what it makes of what it reads.

Plain synchronous tests in the manner of h11's: the SMSC's side is a few PDUs built with the
codec, fed to `receive_data` whole, split or glued; no socket, no event loop, the clock given.
The same behaviours over TCP, through the pool, are in tests/integration/test_session_protocol.py.
"""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import pytest

from broadcaster.smpp import codec, policy
from broadcaster.smpp import connection as connection_module
from broadcaster.smpp.connection import (
    MAX_SEQUENCE,
    TRANSITIONS,
    AlertNotified,
    BindAccepted,
    BindRefused,
    ConnectionState,
    DeliverSmMalformed,
    EnquireLinkAnswered,
    Event,
    GenericNack,
    LateResponse,
    LocalProtocolError,
    MessageIdUnreadable,
    MoMessage,
    ReceiptUnreadable,
    Received,
    SmppConnection,
    StreamCorrupt,
    UnbindAnswered,
    UnbindRequested,
    UnexpectedResponse,
    UnknownCommand,
)
from broadcaster.smpp.constants import CommandId, Status
from broadcaster.smpp.receipts import format_receipt, receipt_tlvs
from broadcaster.text.encoding import encode_message

TEMPLATES = tuple(
    codec.submit_templates(
        encode_message("Numeros d'urgence perturbes", reference=1),
        source_addr=source,
        source_ton=5,
        source_npi=0,
    )[0]
    for source in ("PARIS", "LYON")
)
"""One template per SMSC: the same text, each SMSC its own sender."""


class Part:
    """What the pool gives a connection: templates, a destination, a tag to recognise it."""

    __slots__ = ("destination", "submitted_at", "tag", "templates")

    def __init__(self, tag: int) -> None:
        self.templates = TEMPLATES
        self.destination = f"336{tag:08d}".encode()
        self.submitted_at = -1.0
        self.tag = tag

    def __repr__(self) -> str:
        return f"Part({self.tag})"


Connection = SmppConnection[Part]


# -- helpers: the SMSC's side ---------------------------------------------------------------------


def connect(**overrides: object) -> Connection:
    values: dict[str, object] = {"system_id": "prefecture75", "password": "secret"}
    values.update(overrides)
    return SmppConnection(**values)  # type: ignore[arg-type]


def bind_resp(sequence: int = 1, status: int = 0, mode: str = "transceiver") -> bytes:
    command = {
        "transceiver": CommandId.BIND_TRANSCEIVER_RESP,
        "transmitter": CommandId.BIND_TRANSMITTER_RESP,
        "receiver": CommandId.BIND_RECEIVER_RESP,
    }[mode]
    return codec.encode_bind_resp(command, sequence, status, "SMSC")


def bound(**overrides: object) -> Connection:
    """A connection past its bind (sequence 1), at time 0."""
    connection = connect(**overrides)
    connection.bind()
    received = connection.receive_data(bind_resp(), now=0.0)
    assert received.events == [BindAccepted()]
    return connection


def submitted(connection: Connection, count: int, now: float = 1.0) -> tuple[list[Part], bytes]:
    parts = [Part(i) for i in range(count)]
    return parts, connection.submit(parts, now)


def sequences_of(data: bytes) -> list[int]:
    """The sequence numbers of the submit_sm PDUs in `data`, in order."""
    pdus = codec.FrameBuffer().feed(data)
    assert {codec.decode_header(p).command_id for p in pdus} == {CommandId.SUBMIT_SM}
    return [codec.decode_header(p).sequence for p in pdus]


def resp(sequence: int, status: int = 0, message_id: str | None = None) -> bytes:
    """A submit_sm_resp; message_id defaults to the sequence in hex."""
    return codec.encode_submit_sm_resp(
        sequence, status, f"{sequence:X}" if message_id is None else message_id
    )


def outcomes(received: Received[Part]) -> list[tuple[int, int, str | None]]:
    return [(part.tag, status, message_id) for part, status, message_id in received.outcomes]


def throttled(received: Received[Part]) -> list[tuple[int, int]]:
    return [(part.tag, status) for part, status in received.throttled]


def headers(data: bytes) -> list[tuple[int, int, int]]:
    """(command_id, status, sequence) of each PDU the connection wants written."""
    return [
        (h.command_id, h.status, h.sequence)
        for h in map(codec.decode_header, codec.FrameBuffer().feed(data))
    ]


def state(connection: Connection) -> ConnectionState:
    """The state now (a call, so that type checkers do not keep an earlier narrowing)."""
    return connection.state


def events_of(received: Received[Part], kind: type[Event]) -> list[Event]:
    return [e for e in received.events if isinstance(e, kind)]


# -- bind ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["transmitter", "transceiver"])
def test_bind_writes_the_bind_pdu_and_an_answer_binds(mode: str) -> None:
    connection = connect(
        system_id="broadcaster-prefecture-75", password="x" * 24, system_type="VMA", bind_mode=mode
    )
    assert state(connection) is ConnectionState.CONNECTING
    data = connection.bind()
    bind = codec.decode_bind(data)
    expected = CommandId.BIND_TRANSMITTER if mode == "transmitter" else CommandId.BIND_TRANSCEIVER
    assert (bind.command_id, bind.sequence) == (expected, 1)
    assert (bind.system_id, bind.password, bind.system_type) == (
        "broadcaster-prefecture-75",
        "x" * 24,
        "VMA",
    )
    assert bind.interface_version == 0x34
    assert state(connection) is ConnectionState.BINDING
    assert connection.room(0.5) == 0  # nothing goes out before the bind is answered
    received = connection.receive_data(bind_resp(1, mode=mode), now=0.5)
    assert received.events == [BindAccepted()]
    assert received.to_send == b""
    assert state(connection) is ConnectionState.BOUND
    assert connection.waiting_since == 0.5
    assert connection.room(0.5) == connection.window


@pytest.mark.parametrize(
    ("status", "credentials"),
    [
        (Status.ESME_RINVPASWD, True),
        (Status.ESME_RINVSYSID, True),
        (Status.ESME_RBINDFAIL, True),
        (Status.ESME_RALYBND, True),
        (Status.ESME_RSYSERR, False),
        (0x401, False),  # a vendor's code
    ],
)
def test_a_refused_bind_says_with_which_status(status: int, credentials: bool) -> None:
    connection = connect()
    connection.bind()
    received = connection.receive_data(bind_resp(1, status), now=0.1)
    assert received.events == [BindRefused(status)]
    assert state(connection) is ConnectionState.CLOSED
    # Credentials and bind limits make the pool wait long; anything else is retried soon.
    assert policy.bind_refusal(status)[0] is credentials
    with pytest.raises(LocalProtocolError):
        connection.submit([Part(1)], now=0.2)


@pytest.mark.parametrize(
    ("nack_status", "refusal"),
    [(0, Status.ESME_RINVCMDID), (Status.ESME_RINVCMDLEN, Status.ESME_RINVCMDLEN)],
)
def test_a_bind_answered_by_generic_nack_is_refused(nack_status: int, refusal: int) -> None:
    connection = connect()
    connection.bind()
    received = connection.receive_data(codec.encode_generic_nack(1, nack_status), now=0.1)
    assert received.events == [BindRefused(refusal)]
    assert state(connection) is ConnectionState.CLOSED


def test_a_bind_answered_with_the_wrong_bind_resp_is_refused() -> None:
    connection = connect(bind_mode="transmitter")
    connection.bind()
    received = connection.receive_data(bind_resp(1, mode="transceiver"), now=0.1)
    assert received.events == [BindRefused(Status.ESME_RINVCMDID)]


def test_a_bind_resp_for_another_sequence_is_not_an_answer() -> None:
    connection = connect()
    connection.bind()
    received = connection.receive_data(bind_resp(7), now=0.1)
    assert received.events == [UnexpectedResponse(CommandId.BIND_TRANSCEIVER_RESP, 7)]
    assert state(connection) is ConnectionState.BINDING


def test_calls_the_state_does_not_allow_are_our_mistake() -> None:
    connection = connect()
    with pytest.raises(LocalProtocolError, match="cannot submit while connecting"):
        connection.submit([Part(1)], now=0.0)
    with pytest.raises(LocalProtocolError, match="cannot enquire_link while connecting"):
        connection.enquire_link(0.0)
    with pytest.raises(LocalProtocolError, match="cannot send unbind while connecting"):
        connection.unbind()
    connection.bind()
    with pytest.raises(LocalProtocolError, match="cannot send bind while binding"):
        connection.bind()


def test_the_state_table_has_every_state_and_closed_is_final() -> None:
    assert set(TRANSITIONS) == set(ConnectionState)
    assert set(TRANSITIONS[ConnectionState.CLOSED].values()) == {ConnectionState.CLOSED}
    assert all(
        table.get(trigger) is ConnectionState.CLOSED
        for table in TRANSITIONS.values()
        for trigger in table
        if trigger.name == "CONNECTION_LOST"
    )


# -- submitting and the answers ------------------------------------------------------------------


def test_a_batch_is_one_write_with_consecutive_sequences_using_this_smscs_template() -> None:
    connection = bound(template_index=1)
    parts, data = submitted(connection, 3, now=2.0)
    assert sequences_of(data) == [2, 3, 4]
    decoded = [codec.decode_short_message_pdu(p) for p in codec.FrameBuffer().feed(data)]
    assert [d.source_addr for d in decoded] == ["LYON"] * 3  # templates[1], not the first's
    assert [d.destination_addr for d in decoded] == [p.destination.decode() for p in parts]
    assert data == b"".join(
        TEMPLATES[1].encode(s, p.destination) for s, p in zip((2, 3, 4), parts, strict=True)
    )
    assert list(connection.inflight.items()) == list(zip((2, 3, 4), parts, strict=True))
    assert all(p.submitted_at == 2.0 for p in parts)
    assert connection.room(2.0) == connection.window - 3


def test_answers_become_outcomes_and_throttles_in_order() -> None:
    connection = bound()
    _parts, _data = submitted(connection, 6, now=1.0)  # sequences 2..7
    received = connection.receive_data(
        resp(2, 0, "000A1F")  # accepted: the id kept as the exact string
        + resp(3, Status.ESME_RTHROTTLED, "")
        + resp(4, 0x401, "")  # a vendor's status: a failure, not a crash
        + resp(5, Status.ESME_RMSGQFUL, "")
        + codec.encode_pdu(CommandId.SUBMIT_SM_RESP, 0, 6)  # accepted, no message_id at all
        + resp(7, Status.ESME_RINVDSTADR, ""),
        now=1.25,
    )
    assert outcomes(received) == [
        (0, 0, "000A1F"),
        (2, 0x401, None),
        (4, 0, None),
        (5, Status.ESME_RINVDSTADR, None),
    ]
    assert throttled(received) == [(1, Status.ESME_RTHROTTLED), (3, Status.ESME_RMSGQFUL)]
    assert received.accepted == 2
    assert received.answered == 6
    assert received.events == [MessageIdUnreadable(6)]
    assert received.to_send == b""
    assert connection.inflight == {}
    assert connection.waiting_since == 1.25
    assert connection.latency == pytest.approx(0.25)


def test_an_empty_message_id_is_an_empty_string_not_a_missing_one() -> None:
    connection = bound()
    submitted(connection, 1)
    received = connection.receive_data(resp(2, 0, ""), now=1.1)
    assert outcomes(received) == [(0, 0, "")]
    assert received.events == []


def test_a_response_for_no_part_in_flight_is_late() -> None:
    connection = bound()
    submitted(connection, 1)
    received = connection.receive_data(resp(99) + resp(2), now=1.1)
    assert outcomes(received) == [(0, 0, "2")]
    assert received.events == [LateResponse(99)]


def test_responses_split_across_reads_are_put_back_together() -> None:
    connection = bound()
    _parts, _data = submitted(connection, 3)
    stream = resp(2) + resp(3, 0, "ABCDEF0123") + resp(4)
    found: list[tuple[int, int, str | None]] = []
    for i in range(len(stream)):  # one byte per read: the worst a TCP stack can do
        found += outcomes(connection.receive_data(stream[i : i + 1], now=1.5))
    assert found == [(0, 0, "2"), (1, 0, "ABCDEF0123"), (2, 0, "4")]
    assert connection.inflight == {}


def test_many_responses_in_one_read_are_one_batch() -> None:
    connection = bound(window=500)
    _parts, _data = submitted(connection, 400)
    received = connection.receive_data(b"".join(resp(s) for s in range(2, 402)), now=1.5)
    assert [tag for tag, _status, _id in outcomes(received)] == list(range(400))
    assert received.accepted == 400


def test_sequence_numbers_wrap_at_the_smpp_maximum() -> None:
    connection = connect(last_sequence=MAX_SEQUENCE - 2)
    assert codec.decode_bind(connection.bind()).sequence == MAX_SEQUENCE - 1
    connection.receive_data(bind_resp(MAX_SEQUENCE - 1), now=0.0)
    _parts, data = submitted(connection, 3)
    assert sequences_of(data) == [MAX_SEQUENCE, 1, 2]
    received = connection.receive_data(resp(1) + resp(MAX_SEQUENCE) + resp(2), now=1.1)
    assert outcomes(received) == [(1, 0, "1"), (0, 0, f"{MAX_SEQUENCE:X}"), (2, 0, "2")]
    assert codec.decode_header(connection.enquire_link(1.2)).sequence == 3


def test_generic_nack_naming_a_part_is_its_outcome() -> None:
    connection = bound()
    _parts, _data = submitted(connection, 4)  # sequences 2..5
    received = connection.receive_data(
        codec.encode_generic_nack(2, Status.ESME_RINVCMDLEN)
        + codec.encode_generic_nack(3, 0)  # no reason given: a failure all the same
        + codec.encode_generic_nack(4, Status.ESME_RTHROTTLED)  # slow down: sent again
        + codec.encode_generic_nack(77, Status.ESME_RSYSERR)  # names nothing we sent
        + resp(5),
        now=1.5,
    )
    assert outcomes(received) == [
        (0, Status.ESME_RINVCMDLEN, None),
        (1, Status.ESME_RUNKNOWNERR, None),
        (3, 0, "5"),
    ]
    assert throttled(received) == [(2, Status.ESME_RTHROTTLED)]
    assert received.events == [
        GenericNack(Status.ESME_RINVCMDLEN, 2, named_part=True),
        GenericNack(0, 3, named_part=True),
        GenericNack(Status.ESME_RTHROTTLED, 4, named_part=True),
        GenericNack(Status.ESME_RSYSERR, 77, named_part=False),
    ]
    assert received.to_send == b""  # a generic_nack is never answered
    assert connection.inflight == {}


# -- requests from the SMSC ---------------------------------------------------------------------


def deliver(sequence: int, text: str, esm_class: int = 0x04, tlvs: bytes = b"") -> bytes:
    return codec.encode_deliver_sm(
        sequence,
        source_addr="33612345678",
        destination_addr="ALERTE",
        esm_class=esm_class,
        short_message=text.encode("ascii"),
        tlvs=tlvs,
    )


def test_receipts_are_acknowledged_and_parsed_tolerantly() -> None:
    connection = bound()
    when = datetime(2021, 6, 2, 12, 30, 45)
    twelve_digit_dates = format_receipt(
        message_id="000A1F", stat="DELIVRD", submit_date=when, done_date=when, seconds=True
    )
    received = connection.receive_data(
        deliver(10, twelve_digit_dates)
        + deliver(11, "id:2591 stat:UNDELIV err:001", tlvs=receipt_tlvs("000A1F", "UNDELIV"))
        + deliver(12, "no receipt here"),
        now=3.0,
    )
    assert headers(received.to_send) == [
        (CommandId.DELIVER_SM_RESP, 0, 10),
        (CommandId.DELIVER_SM_RESP, 0, 11),
        (CommandId.DELIVER_SM_RESP, 0, 12),
    ]
    first, second = received.receipts
    assert (first.message_id, first.stat) == ("000A1F", "DELIVRD")
    assert first.done_date == when
    # The TLV's id wins over the text's (a decimal rendering of it), which is kept aside.
    assert (second.message_id, second.text_message_id) == ("000A1F", "2591")
    assert received.events == [ReceiptUnreadable("no receipt here")]
    assert state(connection) is ConnectionState.BOUND


def test_a_subscribers_message_is_acknowledged_and_only_noted() -> None:
    connection = bound()
    received = connection.receive_data(deliver(5, "STOP", esm_class=0), now=3.0)
    assert headers(received.to_send) == [(CommandId.DELIVER_SM_RESP, 0, 5)]
    assert received.events == [MoMessage()]


def test_a_malformed_deliver_sm_is_answered_with_why_and_the_bind_kept() -> None:
    connection = bound()
    malformed = bytearray(deliver(6, "id:88 stat:DELIVRD"))
    sm_length = codec.HEADER_LENGTH + 33  # after 9 fixed octets and 4 C-strings (22 octets)
    assert malformed[sm_length] == len("id:88 stat:DELIVRD")
    malformed[sm_length] = 200  # past the end of the PDU
    received = connection.receive_data(bytes(malformed) + deliver(7, "id:89"), now=3.0)
    assert headers(received.to_send) == [
        (CommandId.DELIVER_SM_RESP, Status.ESME_RINVMSGLEN, 6),
        (CommandId.DELIVER_SM_RESP, 0, 7),
    ]
    assert len(events_of(received, DeliverSmMalformed)) == 1
    assert len(received.receipts) == 1
    assert state(connection) is ConnectionState.BOUND


def test_enquire_link_from_the_smsc_is_answered() -> None:
    connection = bound()
    received = connection.receive_data(codec.encode_enquire_link(4242), now=5.0)
    assert received.to_send == codec.encode_enquire_link_resp(4242)
    assert received.events == []
    assert connection.last_received == 5.0


def test_our_enquire_link_waits_for_its_answer() -> None:
    connection = bound()
    data = connection.enquire_link(10.0)
    assert headers(data) == [(CommandId.ENQUIRE_LINK, 0, 2)]
    assert connection.enquire_sent_at == 10.0
    assert not connection.stalled(10.1)
    assert connection.stalled(10.0 + connection.stall_after + 0.01)  # unanswered too long
    assert connection.room(10.0 + connection.stall_after + 0.01) == 0
    received = connection.receive_data(codec.encode_enquire_link_resp(2), now=10.5)
    assert received.events == [EnquireLinkAnswered()]
    assert connection.enquire_sent_at is None
    assert not connection.stalled(10.5)


def test_unbind_from_the_smsc_is_answered_and_said() -> None:
    connection = bound()
    submitted(connection, 2)
    received = connection.receive_data(codec.encode_unbind(77), now=4.0)
    assert received.to_send == codec.encode_unbind_resp(77)
    assert received.events == [UnbindRequested()]
    assert state(connection) is ConnectionState.UNBINDING
    assert connection.room(4.0) == 0
    assert [p.tag for p in connection.connection_lost()] == [0, 1]  # handed back, oldest first
    assert state(connection) is ConnectionState.CLOSED
    assert connection.inflight == {}


def test_answers_after_the_smscs_unbind_still_count_and_only_the_rest_is_handed_back() -> None:
    connection = bound()
    submitted(connection, 3)
    connection.receive_data(codec.encode_unbind(77), now=4.0)
    received = connection.receive_data(resp(2) + resp(3), now=4.5)
    assert outcomes(received) == [(0, 0, "2"), (1, 0, "3")]
    assert connection.room(4.5) == 0  # no new part on an unbinding bind
    assert [p.tag for p in connection.connection_lost()] == [2]  # only the unanswered one


def data_sm(sequence: int, text: str = "", tlvs: bytes = b"", esm_class: int = 0x04) -> bytes:
    payload = codec.encode_tlv(0x0424, text.encode()) if text else b""
    return codec.encode_data_sm(
        sequence,
        source_addr="33612345678",
        destination_addr="ALERTE",
        esm_class=esm_class,
        tlvs=tlvs + payload,
    )


def test_receipts_by_data_sm_are_answered_with_data_sm_resp_tlv_only_or_text() -> None:
    connection = bound()
    received = connection.receive_data(
        data_sm(20, tlvs=receipt_tlvs("000A1F", "DELIVRD"))
        + data_sm(21, text="id:2592 sub:001 dlvrd:001 stat:UNDELIV err:001")
        + data_sm(22, text="hello", esm_class=0),
        now=3.0,
    )
    assert headers(received.to_send) == [
        (CommandId.DATA_SM_RESP, 0, 20),
        (CommandId.DATA_SM_RESP, 0, 21),
        (CommandId.DATA_SM_RESP, 0, 22),
    ]
    tlv_only, text = received.receipts
    assert (tlv_only.message_id, tlv_only.stat) == ("000A1F", "DELIVRD")
    assert tlv_only.source == "33612345678"
    assert (text.message_id, text.stat) == ("2592", "UNDELIV")
    assert received.events == [MoMessage()]
    assert state(connection) is ConnectionState.BOUND


def test_a_tlv_only_deliver_sm_receipt_counts() -> None:
    connection = bound()
    received = connection.receive_data(deliver(9, "", tlvs=receipt_tlvs("7", "EXPIRED")), now=3.0)
    (receipt,) = received.receipts
    assert (receipt.message_id, receipt.stat) == ("7", "EXPIRED")
    assert received.events == []


def test_a_malformed_data_sm_is_answered_with_why() -> None:
    connection = bound()
    broken = codec.encode_pdu(int(CommandId.DATA_SM), 0, 30, b"\0\1\1" + b"9" * 30 + b"\0")
    received = connection.receive_data(broken, now=3.0)
    assert headers(received.to_send) == [(CommandId.DATA_SM_RESP, Status.ESME_RINVSRCADR, 30)]
    assert len(events_of(received, DeliverSmMalformed)) == 1


def test_alert_notification_gets_no_answer_never_a_generic_nack() -> None:
    connection = bound()
    received = connection.receive_data(
        codec.encode_alert_notification(40, "33612345678", "ALERTE"), now=3.0
    )
    assert received.to_send == b""
    assert received.events == [AlertNotified("33612345678")]
    assert state(connection) is ConnectionState.BOUND


def test_a_receiver_bind_binds_receives_receipts_and_never_submits() -> None:
    connection = connect(bind_mode="receiver")
    assert headers(connection.bind()) == [(CommandId.BIND_RECEIVER, 0, 1)]
    received = connection.receive_data(bind_resp(mode="receiver"), now=0.0)
    assert received.events == [BindAccepted()]
    assert connection.room(1.0) == 0
    with pytest.raises(LocalProtocolError):
        connection.submit([Part(1)], 1.0)
    received = connection.receive_data(deliver(3, "id:5 stat:DELIVRD"), now=2.0)
    assert [r.message_id for r in received.receipts] == ["5"]


def test_our_unbind_is_answered_by_its_unbind_resp_only() -> None:
    connection = bound()
    data = connection.unbind()
    assert headers(data) == [(CommandId.UNBIND, 0, 2)]
    assert state(connection) is ConnectionState.UNBINDING
    stray = connection.receive_data(codec.encode_unbind_resp(9), now=1.0)
    assert stray.events == [UnexpectedResponse(CommandId.UNBIND_RESP, 9)]
    answered = connection.receive_data(codec.encode_unbind_resp(2), now=1.0)
    assert answered.events == [UnbindAnswered()]


def test_unknown_commands_get_generic_nack_and_unknown_responses_are_noted() -> None:
    connection = bound()
    received = connection.receive_data(
        codec.encode_pdu(0x00000099, 0, 4242)  # unknown
        + codec.encode_pdu(0x00000021, 0, 4243, b"\0" * 12)  # submit_multi: not supported
        + codec.encode_pdu(0x80000103, 0, 4244),  # a data_sm_resp we never asked for
        now=2.0,
    )
    assert headers(received.to_send) == [
        (CommandId.GENERIC_NACK, Status.ESME_RINVCMDID, 4242),
        (CommandId.GENERIC_NACK, Status.ESME_RINVCMDID, 4243),
    ]
    assert received.events == [
        UnknownCommand(0x00000099, 4242),
        UnknownCommand(0x00000021, 4243),
        UnexpectedResponse(0x80000103, 4244),
    ]
    assert state(connection) is ConnectionState.BOUND


# -- a corrupt stream ---------------------------------------------------------------------------


def test_a_broken_length_field_corrupts_the_stream_after_what_came_before() -> None:
    connection = bound()
    submitted(connection, 3)
    received = connection.receive_data(resp(2) + b"\x00\x00\x00\x05garbage" + resp(3), now=1.5)
    assert outcomes(received) == [(0, 0, "2")]  # answered before the break: kept
    (corrupt,) = received.events
    assert isinstance(corrupt, StreamCorrupt)
    assert "command_length 5" in corrupt.error
    assert state(connection) is ConnectionState.CLOSED
    assert connection.room(1.5) == 0
    again = connection.receive_data(resp(4), now=1.6)  # nothing is read past a break
    assert again.outcomes == []
    assert [type(e) for e in again.events] == [StreamCorrupt]
    assert [p.tag for p in connection.connection_lost()] == [1, 2]


def test_a_length_field_over_the_maximum_is_a_corrupt_stream() -> None:
    connection = bound()
    received = connection.receive_data(b"\x7f\xff\xff\xff" + b"\0" * 12, now=1.0)
    assert [type(e) for e in received.events] == [StreamCorrupt]


# -- liveness -----------------------------------------------------------------------------------


def test_a_silent_smsc_gets_no_more_parts_until_it_answers() -> None:
    connection = bound(window=10)
    submitted(connection, 4, now=1.0)
    assert connection.room(1.0) == 6
    assert not connection.silent(1.0 + policy.STALL_MIN)
    late = 1.0 + policy.STALL_MIN + 0.01
    assert connection.silent(late)
    assert connection.stalled(late)
    assert connection.room(late) == 0
    connection.receive_data(resp(2), now=late)
    assert connection.room(late) == 7


def test_expire_returns_the_parts_past_their_timeout_oldest_first() -> None:
    connection = bound()
    old, _ = submitted(connection, 2, now=1.0)
    young = [Part(9)]
    connection.submit(young, now=3.0)
    assert connection.oldest_inflight_sent() == 1.0
    assert connection.expire(now=4.0, timeout=2.5) == old
    assert list(connection.inflight.values()) == young
    assert connection.oldest_inflight_sent() == 3.0
    assert connection.expire(now=4.0, timeout=2.5) == []


def test_latency_is_learnt_and_sets_the_stall_threshold() -> None:
    connection = bound(response_timeout=2.0)
    for round_ in range(20):
        sent = 10.0 + round_
        connection.submit([Part(round_)], now=sent)
        connection.receive_data(resp(2 + round_), now=sent + 0.1)
    assert connection.latency == pytest.approx(0.1)
    assert connection.stall_after == pytest.approx(policy.stall_after(0.1))
    slow = bound(response_timeout=0.3)
    slow.submit([Part(1)], now=1.0)
    slow.receive_data(resp(2), now=2.0)  # one answer after a second
    assert slow.stall_after == 0.3  # never beyond the response timeout


def test_the_connection_does_no_io_and_reads_no_clock() -> None:
    tree = ast.parse(Path(connection_module.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module
    }
    assert "broadcaster" in imported  # the walk found the imports
    assert not imported & {"asyncio", "socket", "selectors", "time", "datetime", "threading"}
