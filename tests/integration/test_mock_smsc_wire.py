"""The mock SMSC's strictness, from the stream's side: fuzzed PDUs, framing cut anywhere, faults
back to back, and broken lengths wherever they fall.

The targeted suites (test_mock_smsc_malformed, _flow, _scenarios) check one behaviour each; this
one checks properties over many PDUs. Above all: the fast path (no scenario knob) answers every
PDU exactly as the strict path does, on thousands of seeded fuzzed submit_sm.
"""

from __future__ import annotations

import random
import re
import struct
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from smsc_fixtures import RawEsme, raw_submit, submit_pdus, tlv

from broadcaster.errors import SmppProtocolError
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId, Status
from broadcaster.text.encoding import encode_message

SUBMIT_SM = int(CommandId.SUBMIT_SM)
SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
GENERIC_NACK = int(CommandId.GENERIC_NACK)


@pytest.fixture
async def mock() -> AsyncIterator[MockSmsc]:
    async with MockSmsc(MockConfig(seed=1)) as smsc:
        yield smsc


def malformed(mock: MockSmsc) -> int:
    """Malformed PDUs counted so far (`stats_json()["malformed"]`: a total or by reason)."""
    value = mock.stats_json()["malformed"]
    return value if isinstance(value, int) else sum(value.values())


def statuses(replies: list[bytes]) -> list[int]:
    return [codec.decode_submit_sm_resp(r)[1] for r in replies]


def with_length(pdu: bytes) -> bytes:
    """The PDU with its command_length fixed to its size (after cutting it short)."""
    return struct.pack("!I", len(pdu)) + pdu[4:]


# (name, submit_sm sent with sequence 7 on a bound transmitter, status of its submit_sm_resp):
# the faults the targeted malformed suite does not already send.
FAULTS: list[tuple[str, bytes, int]] = [
    ("mandatory_fields_cut_short", with_length(raw_submit()[:25]), Status.ESME_RINVCMDLEN),
    ("source_addr_unterminated", with_length(raw_submit()[:24]), Status.ESME_RINVCMDLEN),
    ("source_addr_over_20_octets", raw_submit(source=b"A" * 25), Status.ESME_RINVSRCADR),
    ("destination_not_digits", raw_submit(destination=b"336ABC45678"), Status.ESME_RINVDSTADR),
    ("destination_with_plus", raw_submit(destination=b"+33612345678"), Status.ESME_RINVDSTADR),
    ("destination_empty", raw_submit(destination=b""), Status.ESME_RINVDSTADR),
    ("empty_message", raw_submit(short_message=b""), Status.ESME_RINVMSGLEN),
    ("ucs2_odd_length", raw_submit(data_coding=8, short_message=b"\0H\0"), Status.ESME_RINVDCS),
    (
        "udh_part_zero",
        raw_submit(esm_class=0x40, short_message=b"\x05\x00\x03\x01\x02\x00Hi"),
        Status.ESME_RINVESMCLASS,
    ),
    (
        "udh_only",
        raw_submit(esm_class=0x40, short_message=b"\x05\x00\x03\x01\x02\x01"),
        Status.ESME_RINVMSGLEN,
    ),
    (
        "tlv_past_the_end",
        raw_submit(tlvs=b"\x04\x24\x00\x50abc"),
        Status.ESME_RINVOPTPARSTREAM,
    ),
    (
        "short_message_and_message_payload",
        raw_submit(tlvs=tlv(0x0424, b"payload")),
        Status.ESME_RINVMSGLEN,
    ),
]


@pytest.mark.parametrize(("pdu", "status"), [pytest.param(p, s, id=name) for name, p, s in FAULTS])
async def test_fault_gets_its_status_and_is_counted(
    mock: MockSmsc, pdu: bytes, status: int
) -> None:
    async with await RawEsme.connect(mock.port) as esme:
        assert (await esme.bind(CommandId.BIND_TRANSMITTER)).status == 0
        esme.send(pdu)
        sequence, answered, message_id = codec.decode_submit_sm_resp(await esme.read_pdu())
        assert (sequence, answered, message_id) == (7, status, "")
        assert malformed(mock) == 1
        assert mock.record.parts_received == 0
        assert statuses(await esme.submit("then a valid one", "33612345678", sequence=8)) == [0]


async def test_faults_back_to_back_while_another_bind_sends(mock: MockSmsc) -> None:
    """Every fault in one write on one bind, each answered in order, while a second bind's
    parts keep being accepted between them; the faulty bind still works at the end."""
    async with (
        await RawEsme.connect(mock.port) as culprit,
        await RawEsme.connect(mock.port) as witness,
    ):
        assert (await culprit.bind(CommandId.BIND_TRANSMITTER, "culprit")).status == 0
        assert (await witness.bind(CommandId.BIND_TRANSMITTER, "witness")).status == 0
        culprit.send(*(pdu for _, pdu, _ in FAULTS))
        for number, (_, _, status) in enumerate(FAULTS):
            assert statuses([await culprit.read_pdu()]) == [status]
            destination = f"3369999{number:04d}"
            assert statuses(await witness.submit(f"w{number}", destination, 100 + number)) == [0]
        assert malformed(mock) == len(FAULTS)
        assert statuses(await culprit.submit("still bound", "33612345678", 50)) == [0]
        assert mock.record.parts_received == len(FAULTS) + 1
        assert len(mock.record.messages) == len(FAULTS) + 1


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(struct.pack("!IIII", 15, SUBMIT_SM, 0, 9), id="15-in-a-full-header"),
        pytest.param(struct.pack("!IIII", 0xFFFFFFFF, SUBMIT_SM, 0, 9), id="4GiB"),
        pytest.param(b"\x00\x00\x00\x08abcd", id="8-octets-claiming-8"),
        pytest.param(b"\x00\x00\x00\x00", id="zero-alone"),
        pytest.param(b"\x7f\xff\xff\xff\x00\x00", id="2GiB-in-6-octets"),
    ],
)
async def test_impossible_command_length_anywhere_closes_that_connection(
    mock: MockSmsc, tail: bytes
) -> None:
    """Detected as soon as its 4 octets are in, even when fewer than a header follow (a
    corrupt stream's last octets); what came before it in the same write is answered first."""
    async with (
        await RawEsme.connect(mock.port) as culprit,
        await RawEsme.connect(mock.port) as witness,
    ):
        assert (await culprit.bind(CommandId.BIND_TRANSMITTER, "culprit")).status == 0
        assert (await witness.bind(CommandId.BIND_TRANSMITTER, "witness")).status == 0
        valid = submit_pdus("before", "33612345678", first_sequence=2)
        culprit.send(*valid, tail)
        assert await culprit.closed_by_peer(2.0), "the connection was left open"
        replies = list(culprit.queue)
        assert statuses(replies[:1]) == [0]
        for reply in replies[1:]:  # the bad length at most gets a generic_nack
            header = codec.decode_header(reply)
            assert (header.command_id, header.status) == (GENERIC_NACK, Status.ESME_RINVCMDLEN)
        assert malformed(mock) == 1
        assert statuses(await witness.submit("after", "33687654321", 3)) == [0]
        assert mock.record.messages == {"33612345678": ["before"], "33687654321": ["after"]}


async def test_a_stream_cut_at_every_octet(mock: MockSmsc) -> None:
    """Framing: a bind and three messages (one concatenated) written one octet at a time."""
    async with await RawEsme.connect(mock.port) as esme:
        stream = codec.encode_bind(CommandId.BIND_TRANSMITTER, 1, "slow", "pw")
        texts = {"33611111111": "un", "33622222222": "deux " * 50, "33633333333": "trois"}
        sequence = 2
        for destination, text in texts.items():
            pdus = submit_pdus(text, destination, first_sequence=sequence)
            stream += b"".join(pdus)
            sequence += len(pdus)
        for octet in range(len(stream)):
            esme.send(stream[octet : octet + 1])
            await esme.writer.drain()
        assert (await esme.header()).status == 0
        assert statuses(await esme.read_pdus(sequence - 2)) == [0] * (sequence - 2)
        assert mock.record.messages == {d: [t] for d, t in texts.items()}


# -- the fast path agrees with the strict one -----------------------------------------------


def fuzzed_submits(count: int, seed: int) -> list[bytes]:
    """Valid submit_sm of every shape the broadcaster sends (GSM 03.38 with escapes, UCS-2,
    concatenated, validity periods, receipts asked or not), most with 1 to 3 body octets
    changed; the header stays intact so that framing holds and every PDU gets its answer."""
    rng = random.Random(seed)
    shapes: list[codec.SubmitTemplate] = []
    for text, validity in (
        ("Numéros d'urgence perturbés: appelez le 01 23 45 67 89 {€}", ""),
        ("أرقام الطوارئ معطلة", codec.smpp_relative_time(timedelta(hours=2))),
        ("x" * 400, ""),  # 3 parts with a UDH
        ("緊急" * 60, "260601120000000+"),  # 2 UCS-2 parts, absolute validity
    ):
        shapes += codec.submit_templates(
            encode_message(text, rng.randrange(256)),
            source_addr="ALERTE",
            source_ton=5,
            source_npi=0,
            registered_delivery=rng.choice((0, 1)),
            validity_period=validity,
        )
    interesting = (0x00, 0x01, 0x05, 0x08, 0x30, 0x39, 0x40, 0x7F, 0x80, 0xFF)
    pdus = []
    for sequence in range(1, count + 1):
        template = rng.choice(shapes)
        raw = bytearray(template.encode(sequence, codec.destination_bytes(f"3361{sequence:07d}")))
        for _ in range(rng.randrange(0 if sequence % 10 == 0 else 1, 4)):
            position = rng.randrange(16, len(raw))
            raw[position] = rng.choice(interesting) if rng.random() < 0.5 else rng.randrange(256)
        pdus.append(bytes(raw))
    return pdus


async def test_fast_path_agrees_with_the_strict_path() -> None:
    """The same 3,000 fuzzed submit_sm to the fast mock and to one forced onto the strict path
    (an unreachable window): the same answer to every PDU, the same texts recorded, the same
    malformed count."""
    pdus = fuzzed_submits(3000, seed=20)
    results = []
    for config in (MockConfig(seed=1), MockConfig(seed=1, window=1_000_000)):
        assert config.fast == (config.window == 0)
        async with MockSmsc(config) as smsc, await RawEsme.connect(smsc.port) as esme:
            assert (await esme.bind(CommandId.BIND_TRANSMITTER)).status == 0
            esme.send(*pdus)
            answers = {}
            for reply in await esme.read_pdus(len(pdus)):
                header = codec.decode_header(reply)
                assert header.command_id == SUBMIT_SM_RESP
                answers[header.sequence] = header.status
            results.append((answers, smsc.record.messages, malformed(smsc)))
    (fast, fast_texts, fast_malformed), (strict, strict_texts, strict_malformed) = results
    assert {s: (fast[s], strict[s]) for s in strict if fast[s] != strict[s]} == {}
    assert fast_texts == strict_texts
    assert fast_malformed == strict_malformed
    accepted = sum(1 for status in strict.values() if status == 0)
    assert 500 < accepted < 2500  # valid and malformed both well represented
    assert len({status for status in strict.values()}) >= 8  # many kinds of fault


RECEIPT_SCENARIO = MockConfig(
    seed=1,
    receipts=True,
    receipt_mix={"DELIVRD": 0.7, "UNDELIV": 0.2, "EXPIRED": 0.1},
    receipt_drop_rate=0.1,
    malformed_receipt_rate=0.1,
)


Seen = tuple[dict[int, int], list[bytes], int, dict[str, int], bool]


async def _answers_and_receipts(config: MockConfig, pdus: list[bytes]) -> Seen:
    """Every answer by sequence number, and every receipt's PDU in the order sent (dates
    blanked: the two runs may straddle a minute), once the mock has no receipt left to send."""
    dates = re.compile(rb"date:[0-9]{10,12}")
    async with MockSmsc(config) as smsc, await RawEsme.connect(smsc.port) as esme:
        assert (await esme.bind(CommandId.BIND_TRANSCEIVER)).status == 0
        esme.send(*pdus)
        answers: dict[int, int] = {}
        receipts: list[bytes] = []
        while len(answers) < len(pdus) or smsc.receipts.scheduled or len(receipts) < sent(smsc):
            pdu = await esme.read_pdu()
            header = codec.decode_header(pdu)
            if header.command_id == SUBMIT_SM_RESP:
                answers[header.sequence] = header.status
            else:
                assert header.command_id == int(CommandId.DELIVER_SM)
                receipts.append(dates.sub(b"date:", pdu))
                esme.send(
                    codec.encode_pdu(int(CommandId.DELIVER_SM_RESP), 0, header.sequence, b"\0")
                )
        await smsc.wait_for(lambda: smsc.stats_json()["receipts"]["acked"] == len(receipts))
        stats = smsc.stats_json()
        return answers, receipts, malformed(smsc), stats["receipts"], stats["fast_path"]


def sent(smsc: MockSmsc) -> int:
    return int(smsc.receipts_sent)


async def test_fast_path_with_receipts_agrees_with_the_strict_path() -> None:
    """Receipts keep the fast path (scheduled by the run, written from templates): the same
    3,000 fuzzed submit_sm between 2,000 clean ones asking for a receipt, to it and to the
    strict path; the same
    answers, the same receipts octet for octet (ids, stats, drops and malformed ones drawn in
    the same order), the same acknowledgements, nothing malformed on either side."""
    (clean,) = codec.submit_templates(
        encode_message("Alerte: restez chez vous", 7),
        source_addr="ALERTE",
        source_ton=5,
        source_npi=0,
        registered_delivery=1,
    )
    runs = [clean.encode(n, codec.destination_bytes(f"3369{n:07d}")) for n in range(3001, 5001)]
    pdus = runs[:1000] + fuzzed_submits(3000, seed=22) + runs[1000:]
    fast = await _answers_and_receipts(RECEIPT_SCENARIO, pdus)
    strict = await _answers_and_receipts(RECEIPT_SCENARIO.replace(window=1_000_000), pdus)
    assert (fast[4], strict[4]) == (True, False)
    assert fast[0] == strict[0]
    assert fast[1] == strict[1]
    assert fast[2:4] == strict[2:4]
    stats = {m[1] for r in fast[1] if (m := re.search(rb"stat:([A-Z]+)", r))}
    assert len(fast[1]) > 1500 and len(stats) == 3


async def test_what_the_mock_accepts_the_codec_reads_too() -> None:
    """An independent oracle: every fuzzed submit_sm the mock accepts is one the project's own
    strict decoder reads, to a digits-only destination; the mock is never the more lenient."""
    pdus = fuzzed_submits(3000, seed=21)
    async with MockSmsc(MockConfig(seed=1)) as smsc, await RawEsme.connect(smsc.port) as esme:
        assert (await esme.bind(CommandId.BIND_TRANSMITTER)).status == 0
        esme.send(*pdus)
        answers = {codec.decode_header(r).sequence: r for r in await esme.read_pdus(len(pdus))}
    lenient = []
    for sequence, pdu in enumerate(pdus, start=1):
        if codec.decode_header(answers[sequence]).status:
            continue
        try:
            decoded = codec.decode_short_message_pdu(pdu)
        except SmppProtocolError as exc:
            lenient.append((sequence, str(exc)))
            continue
        if not decoded.destination_addr.isdigit():
            lenient.append((sequence, decoded.destination_addr))
    assert lenient == []
