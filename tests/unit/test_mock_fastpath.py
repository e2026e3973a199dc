"""The mock SMSC's fast path: runs of common valid parts answered in one pass (pure)."""

from __future__ import annotations

from smsc_fixtures import raw_submit, submit_pdus, tlv

from broadcaster.mocksmsc.fastpath import answer_concatenated_parts, answer_single_parts
from broadcaster.mocksmsc.record import ConcatKey, Record
from broadcaster.smpp import codec

UDH_1_OF_2 = b"\x05\x00\x03\x2a\x02\x01"


def test_a_run_of_single_parts_is_answered_with_consecutive_ids_and_kept() -> None:
    pdus = [raw_submit(sequence=s, short_message=b"part %d" % s) for s in (5, 6, 7)]
    out: list[bytes] = []
    kept: list[bytes] = []
    pos, last = answer_single_parts(b"".join(pdus), 0, out.append, kept.append, 0x0FFF)
    assert (pos, last) == (sum(map(len, pdus)), 0x1002)
    assert b"".join(out) == b"".join(
        codec.encode_submit_sm_resp(seq, 0, f"{mid:016X}")
        for seq, mid in ((5, 0x1000), (6, 0x1001), (7, 0x1002))
    )
    assert kept == pdus


def test_a_single_part_run_stops_at_the_first_pdu_it_does_not_take() -> None:
    first = raw_submit(sequence=1)
    stoppers = [
        raw_submit(sequence=2, tlvs=tlv(0x0204, b"\0\1")),  # a TLV: the strict path's
        raw_submit(sequence=2, sm_length=4),  # sm_length short of the PDU end
        raw_submit(sequence=2, esm_class=0x40, short_message=UDH_1_OF_2 + b"x"),  # concatenated
        codec.encode_enquire_link(2),
        raw_submit(sequence=2)[:-1],  # incomplete: the rest is in the next read
        raw_submit(sequence=0),  # sequence_number out of range
    ]
    for stopper in stoppers:
        out: list[bytes] = []
        pos, last = answer_single_parts(first + stopper, 0, out.append, None, 0)
        assert (pos, last) == (len(first), 1), stopper
        assert len(out) == 2  # header and message id of the first part only


def test_concatenated_parts_are_taken_by_the_record_which_may_refuse_one() -> None:
    record = Record()
    pdus = submit_pdus("Numéros d'urgence perturbés. " * 10, "33612345678", reference=9)
    assert len(pdus) == 2
    out: list[bytes] = []
    pos, last = answer_concatenated_parts(b"".join(pdus), 0, out.append, record.add_part, 41)
    assert (pos, last) == (sum(map(len, pdus)), 43)
    assert record.messages == {"33612345678": ["Numéros d'urgence perturbés. " * 10]}
    # A part that contradicts one pending under its key stops the run, recording nothing.
    calls: list[tuple[ConcatKey, int, int]] = []

    def refuse(key: ConcatKey, total: int, seq: int, data_coding: int, data: bytes) -> str:
        calls.append((key, total, seq))
        return "udh_part_conflicts"

    out.clear()
    pos, last = answer_concatenated_parts(pdus[0], 0, out.append, refuse, 7)
    assert (pos, last, out) == (0, 7, [])
    assert calls == [((b"ALERTE", b"33612345678", 9), 2, 1)]


def test_the_concatenated_run_leaves_single_parts_and_odd_udhs_alone() -> None:
    sixteen_bit = b"\x06\x08\x04\x12\x34\x02\x01"
    out: list[bytes] = []
    for pdu in (
        raw_submit(),
        raw_submit(esm_class=0x40, short_message=sixteen_bit + b"x"),
        raw_submit(esm_class=0x40, short_message=b"\x05\x00\x03\x2a\x02\x03x"),  # part 3 of 2
    ):
        assert answer_concatenated_parts(pdu, 0, out.append, Record().add_part, 0) == (0, 0)
    assert out == []
