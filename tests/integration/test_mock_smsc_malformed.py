"""Malformed PDUs over raw sockets: each gets the right answer and is counted by reason, while
another bind of the same mock SMSC keeps being served throughout."""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator

import pytest
from smsc_fixtures import RawEsme, raw_submit

from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId, Status

UDH_1_OF_3 = b"\x05\x00\x03\x2a\x03\x01"
UDH_2_OF_2 = b"\x05\x00\x03\x2a\x02\x02"


@pytest.fixture
async def mock() -> AsyncIterator[MockSmsc]:
    async with MockSmsc(MockConfig(seed=1)) as smsc:
        yield smsc


async def still_serves(mock: MockSmsc, witness: RawEsme, n: int) -> None:
    """The other bind gets its part accepted, and the record has it."""
    destination = f"3369999{n:04d}"
    (answer,) = await witness.submit(f"witness {n}", destination, sequence=1000 + n)
    sequence, status, message_id = codec.decode_submit_sm_resp(answer)
    assert (sequence, status) == (1000 + n, 0) and len(message_id) == 16
    assert mock.record.messages[destination] == [f"witness {n}"]


def header(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return struct.pack("!IIII", 16 + len(body), command_id, status, sequence) + body


# (PDU sent on a bound transceiver, expected command_id, expected status, reason counted)
CASES = [
    pytest.param(
        header(0x00000099, 5),
        CommandId.GENERIC_NACK,
        Status.ESME_RINVCMDID,
        "command_id_unsupported",
        id="unknown-command-id",
    ),
    pytest.param(
        header(CommandId.DELIVER_SM, 5, b"\0" * 17),
        CommandId.GENERIC_NACK,
        Status.ESME_RINVCMDID,
        "command_id_unsupported",
        id="deliver_sm-from-an-esme",
    ),
    pytest.param(
        header(CommandId.ENQUIRE_LINK, 5, b"xx"),
        CommandId.GENERIC_NACK,
        Status.ESME_RINVCMDLEN,
        "enquire_link_with_body",
        id="enquire_link-with-a-body",
    ),
    pytest.param(
        raw_submit(sm_length=120, short_message=b"short", sequence=5),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVMSGLEN,
        "sm_length_past_end",
        id="sm_length-past-the-end",
    ),
    pytest.param(
        (lambda p: struct.pack("!I", len(p)) + p[4:])(raw_submit(sequence=5)[:35]),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVCMDLEN,
        "destination_addr_unterminated",
        id="pdu-ends-in-an-unterminated-string",
    ),
    pytest.param(
        raw_submit(destination=b"3" * 25, sequence=5),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVDSTADR,
        "destination_addr_too_long",
        id="destination-too-long",
    ),
    pytest.param(
        raw_submit(service_type=b"LONGSERVICE", sequence=5),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVSERTYP,
        "service_type_too_long",
        id="service_type-too-long",
    ),
    pytest.param(
        raw_submit(data_coding=0x0C, sequence=5),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVDCS,
        "data_coding_invalid",
        id="reserved-data_coding",
    ),
    pytest.param(
        raw_submit(short_message=b"caf\xe9", sequence=5),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVDCS,
        "gsm_septet_over_0x7f",
        id="latin-1-sent-as-gsm",
    ),
    pytest.param(
        raw_submit(esm_class=0x40, short_message=b"\x05\x00\x03\x2a\x03\x04abc", sequence=5),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVESMCLASS,
        "udh_sequence_out_of_range",
        id="udh-part-4-of-3",
    ),
    pytest.param(
        raw_submit(esm_class=0x40, short_message=b"\x07\x00\x03\x2aabc", sequence=5),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVESMCLASS,
        "udh_length_invalid",
        id="udh-length-past-the-end",
    ),
    pytest.param(
        raw_submit(short_message=b"a" * 161, sequence=5),
        CommandId.SUBMIT_SM_RESP,
        Status.ESME_RINVMSGLEN,
        "user_data_over_one_sms",
        id="161-septets",
    ),
    pytest.param(
        codec.encode_bind(CommandId.BIND_TRANSMITTER, 5, "again", "pw"),
        CommandId.BIND_TRANSMITTER_RESP,
        Status.ESME_RALYBND,
        None,
        id="bind-when-bound",
    ),
]


@pytest.mark.parametrize(("pdu", "command_id", "status", "reason"), CASES)
async def test_each_malformed_pdu_gets_its_answer_and_the_server_goes_on(
    mock: MockSmsc, pdu: bytes, command_id: int, status: int, reason: str | None
) -> None:
    async with (
        await RawEsme.connect(mock.port) as culprit,
        await RawEsme.connect(mock.port) as witness,
    ):
        assert (await culprit.bind()).status == 0
        assert (await witness.bind(CommandId.BIND_TRANSMITTER, "witness")).status == 0
        await still_serves(mock, witness, 1)
        culprit.send(pdu)
        answer = await culprit.header()
        assert (answer.command_id, answer.status, answer.sequence) == (command_id, status, 5)
        assert mock.malformed == ({reason: 1} if reason else {})
        # The culprit's bind stays up too: a valid part is accepted next.
        (ok,) = await culprit.submit("after the fault", "33612345678", sequence=6)
        assert codec.decode_submit_sm_resp(ok)[:2] == (6, 0)
        await still_serves(mock, witness, 2)
        assert mock.record.messages["33612345678"] == ["after the fault"]
        assert mock.bound() == 2


@pytest.mark.parametrize(
    "pdu",
    [
        pytest.param(struct.pack("!IIII", 8, 4, 0, 9), id="command_length-8"),
        pytest.param(struct.pack("!IIII", 1 << 20, 4, 0, 9), id="command_length-1MiB"),
    ],
)
async def test_a_broken_command_length_closes_only_that_connection(
    mock: MockSmsc, pdu: bytes
) -> None:
    async with (
        await RawEsme.connect(mock.port) as culprit,
        await RawEsme.connect(mock.port) as witness,
    ):
        await culprit.bind()
        await witness.bind(CommandId.BIND_TRANSMITTER, "witness")
        culprit.send(pdu)
        assert await culprit.closed_by_peer()
        nack = codec.decode_header(culprit.queue.popleft())
        assert (nack.command_id, nack.status) == (CommandId.GENERIC_NACK, Status.ESME_RINVCMDLEN)
        assert mock.malformed == {"command_length_invalid": 1}
        await still_serves(mock, witness, 1)
        await mock.wait_for(lambda: mock.bound() == 1)


async def test_submit_sm_outside_a_transmit_bind_is_refused(mock: MockSmsc) -> None:
    async with (
        await RawEsme.connect(mock.port) as unbound,
        await RawEsme.connect(mock.port) as receiver,
    ):
        unbound.send(raw_submit(sequence=3))
        answer = await unbound.header()
        assert (answer.command_id, answer.status) == (
            CommandId.SUBMIT_SM_RESP,
            Status.ESME_RINVBNDSTS,
        )
        assert (await receiver.bind(CommandId.BIND_RECEIVER)).status == 0
        receiver.send(raw_submit(sequence=4))
        assert (await receiver.header()).status == Status.ESME_RINVBNDSTS
        assert mock.malformed == {"submit_sm_not_bound_to_transmit": 2}
        assert mock.record.parts_received == 0


async def test_udh_parts_must_agree_across_pdus(mock: MockSmsc) -> None:
    async with await RawEsme.connect(mock.port) as esme:
        await esme.bind()
        first = raw_submit(esm_class=0x40, short_message=UDH_1_OF_3 + b"one ", sequence=2)
        total_changed = raw_submit(esm_class=0x40, short_message=UDH_2_OF_2 + b"two", sequence=3)
        conflicting = raw_submit(esm_class=0x40, short_message=UDH_1_OF_3 + b"ONE ", sequence=4)
        resent = raw_submit(esm_class=0x40, short_message=UDH_1_OF_3 + b"one ", sequence=5)
        esme.send(first, total_changed, conflicting, resent)
        answers = [codec.decode_submit_sm_resp(p)[:2] for p in await esme.read_pdus(4)]
        assert answers == [
            (2, 0),
            (3, Status.ESME_RINVESMCLASS),
            (4, Status.ESME_RINVESMCLASS),
            (5, 0),  # the same octets again: a resend, accepted, counted once
        ]
        assert mock.malformed == {"udh_total_changed": 1, "udh_part_conflicts": 1}
        assert (mock.record.incomplete(), mock.record.duplicate_parts) == (1, 1)


async def test_responses_nobody_asked_for_are_counted_not_answered(mock: MockSmsc) -> None:
    async with await RawEsme.connect(mock.port) as esme:
        await esme.bind()
        esme.send(
            codec.encode_submit_sm_resp(7, 0, "0001"),
            codec.encode_deliver_sm_resp(8),  # no deliver_sm was sent
            codec.encode_generic_nack(9, Status.ESME_RINVCMDID),
            header(CommandId.ENQUIRE_LINK, 10, status=0x58),  # a request with a status
            codec.encode_enquire_link(11),
        )
        answers = [await esme.header(), await esme.header()]
        assert [(a.command_id, a.sequence) for a in answers] == [
            (CommandId.ENQUIRE_LINK_RESP, 10),
            (CommandId.ENQUIRE_LINK_RESP, 11),
        ]
        assert mock.malformed == {
            "response_unexpected": 1,
            "deliver_sm_resp_unexpected": 1,
            "generic_nack_received": 1,
            "request_status_not_zero": 1,
        }
        assert await esme.silent_for(0.05)


async def test_bad_binds_get_a_header_only_bind_resp(mock: MockSmsc) -> None:
    async with await RawEsme.connect(mock.port) as esme:
        unterminated = header(CommandId.BIND_TRANSCEIVER, 2, b"no-nul-anywhere")
        esme.send(unterminated)
        raw = await esme.read_pdu()
        answer = codec.decode_header(raw)
        assert (answer.command_id, answer.status, answer.length) == (
            CommandId.BIND_TRANSCEIVER_RESP,
            Status.ESME_RINVCMDLEN,
            16,
        )
        assert mock.malformed == {"bind_malformed": 1}
        assert (await esme.bind(sequence=3)).status == 0
