"""The mock SMSC's receipts: draws, routing to a receiver bind, deliver_sm; its timers (no
network: receivers are stand-ins, the event loop's clock drives the delays)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pytest

from broadcaster.mocksmsc.fastpath import receipt_fields
from broadcaster.mocksmsc.flow import Answers
from broadcaster.mocksmsc.receipts import (
    DueReceipt,
    ReceiptRun,
    ReceiptScheduler,
    ReceiptTemplates,
    as_written,
    encode_receipt,
    receipt_text,
    receiver_for,
)
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.mocksmsc.timers import DueQueue
from broadcaster.mocksmsc.validation import Part, validate_submit_sm
from broadcaster.smpp import codec
from broadcaster.smpp.receipts import parse_receipt
from broadcaster.text.encoding import encode_message

PART = Part(b"ALERTE", b"33612345678", 0, 1, 0, b"Numero {urgence}: 112", None)


@dataclass(eq=False)
class Receiver:
    index: int
    system_id: str = "broadcaster"
    receiving: bool = True
    got: list[DueReceipt] = field(default_factory=list)

    def send_receipts(self, receipts: Sequence[DueReceipt | ReceiptRun]) -> None:
        for receipt in receipts:
            if isinstance(receipt, ReceiptRun):
                self.got.extend(receipt.due_receipts())
            else:
                self.got.append(receipt)


def due(origin: Receiver, stat: str = "DELIVRD", malformed: bool = False) -> DueReceipt:
    return DueReceipt(
        system_id=origin.system_id,
        origin=origin,
        message_id="000000000000002A",
        source="33612345678",
        destination="ALERTE",
        stat=stat,
        submitted=datetime(2026, 1, 2, 3, 4, 5),
        text=receipt_text(PART),
        malformed=malformed,
    )


def test_a_receipt_goes_to_its_bind_or_the_first_receiver_of_its_system_id() -> None:
    origin = Receiver(1, receiving=False)
    other_system = Receiver(2, system_id="other")
    third, second = Receiver(4), Receiver(3)
    assert receiver_for(due(origin), [third, other_system, second, origin]) is second
    assert receiver_for(due(origin), [other_system, origin]) is None
    assert receiver_for(due(third), [second, third]) is third


def test_the_deliver_sm_carries_the_id_unless_malformed() -> None:
    done = datetime(2026, 1, 2, 3, 5, 0)
    pdu = encode_receipt(due(Receiver(1)), 5, done, twelve_digit_dates=True, tlv=True)
    deliver = codec.decode_short_message_pdu(pdu)
    assert (deliver.source_addr, deliver.destination_addr, deliver.esm_class) == (
        "33612345678",
        "ALERTE",
        0x04,
    )
    text = deliver.user_data.decode("ascii")
    assert "done date:260102030500 " in text  # 12 digits: with seconds
    receipt = parse_receipt(text, {})
    assert receipt is not None and receipt.message_id == "000000000000002A"
    assert receipt.stat == "DELIVRD"
    from_tlvs = parse_receipt("", deliver.tlvs)  # receipted_message_id, message_state
    assert from_tlvs is not None and from_tlvs.message_id == "000000000000002A"
    assert receipt_text(PART) == "Numero .urgence.: 11"
    broken = codec.decode_short_message_pdu(
        encode_receipt(due(Receiver(1), malformed=True), 6, done, False, tlv=True)
    )
    assert not broken.tlvs and b"id:" not in broken.user_data
    assert parse_receipt(broken.user_data.decode("ascii"), broken.tlvs) is None


async def test_receipts_are_drawn_delayed_and_wait_for_a_receiver() -> None:
    released: list[int] = []
    config = MockConfig(receipts=True, receipt_delay_ms=20, receipt_mix={"UNDELIV": 1.0})
    receivers: set[Receiver] = set()
    scheduler = ReceiptScheduler(config, random.Random(1), receivers, lambda: released.append(1))
    transmitter = Receiver(1, receiving=False)
    scheduler.schedule(transmitter, PART, "01")
    scheduler.schedule(transmitter, PART._replace(registered_delivery=0), "02")  # none asked
    scheduler.schedule(transmitter, PART._replace(registered_delivery=2), "03")  # on failure
    assert scheduler.scheduled == 2
    await asyncio.sleep(0.05)
    assert (scheduler.scheduled, scheduler.waiting, released) == (0, 2, [1])
    receiver = Receiver(2)
    receivers.add(receiver)
    scheduler.flush_pending(receiver)
    assert [r.message_id for r in receiver.got] == ["01", "03"]
    assert {r.stat for r in receiver.got} == {"UNDELIV"} and scheduler.waiting == 0


async def test_delivered_receipts_asked_on_failure_only_or_dropped_are_not_sent() -> None:
    config = MockConfig(receipts=True, receipt_drop_rate=1.0)
    scheduler = ReceiptScheduler(config, random.Random(1), set(), lambda: None)
    scheduler.schedule(Receiver(1), PART, "01")
    scheduler.schedule(Receiver(1), PART._replace(registered_delivery=2), "02")  # DELIVRD
    assert (scheduler.scheduled, scheduler.dropped) == (0, 1)


async def test_due_items_are_released_in_due_order_by_one_timer() -> None:
    batches: list[list[str]] = []
    queue: DueQueue[str] = DueQueue(asyncio.get_running_loop(), batches.append)
    queue.push(0.03, "late")
    queue.push(0.01, "early")
    queue.push(0.01, "early too")
    await asyncio.sleep(0.02)
    assert batches == [["early", "early too"]] and len(queue) == 1
    queue.push(0.5, "last")
    assert queue.drain() == ["late", "last"]
    await asyncio.sleep(0.04)
    assert batches == [["early", "early too"]]  # drained: the timer was cancelled


async def test_answers_count_as_unanswered_until_written() -> None:
    written: list[bytes] = []
    now: list[bytes] = []
    instant = Answers(asyncio.get_running_loop(), None, written.extend)
    instant.add(b"a", now.append)
    instant.add(b"x", now.append, counts=0)
    assert (now, instant.unanswered) == ([b"a", b"x"], 1)
    instant.read_starts()
    assert instant.unanswered == 0
    delayed = Answers(asyncio.get_running_loop(), lambda: 0.01, written.extend)
    delayed.add(b"b", now.append)
    delayed.add(b"c", now.append)
    delayed.read_starts()  # with a latency, answers wait their turn, not the next read
    assert (delayed.unanswered, delayed.delayed, written) == (2, 2, [])
    await asyncio.sleep(0.03)
    assert (delayed.unanswered, delayed.delayed, written) == (0, 0, [b"b", b"c"])
    delayed.add(b"d", now.append)
    delayed.flush(now.append)
    assert (now[-1], delayed.unanswered) == (b"d", 0)


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"receipt_12_digit_dates": True},
        {"receipt_tlv": False},
        {"receipt_pdu": "data_sm"},
        {"receipt_text": False},
        {"receipt_decimal_ids": True},
    ],
)
def test_the_receipts_of_a_run_are_the_octets_encode_receipt_writes(
    knobs: dict[str, object],
) -> None:
    """Templates are a shortcut, not another encoder: each receipt of a run (texts with '%',
    malformed ones, handsets of two lengths, sequence numbers wrapping) is what
    `encode_receipt` writes for it."""
    config = MockConfig(receipts=True).replace(**knobs)
    done = datetime(2026, 1, 2, 3, 9, 59)
    origin = Receiver(1)
    run = ReceiptRun(
        "broadcaster",
        origin,
        datetime(2026, 1, 2, 3, 4, 5),
        [
            (0x2A, b"33612345678", b"ALERTE", "DELIVRD", "Taux 50% %s ok", False),
            (0xFFFFFFFFFFFFFFF, b"33612345679", b"ALERTE", "DELIVRD", "Taux 50% %s ok", False),
            (0x2C, b"262692000001", b"ALERTE", "UNDELIV", "autre", False),
            (0x2D, b"33612345670", b"ALERTE", "EXPIRED", "Taux 50% %s ok", True),
            (0x2E, b"33612345671", b"20123", "DELIVRD", "", False),
        ],
    )
    out: list[bytes] = []
    ReceiptTemplates(config, done).encode_run(run, 0x7FFFFFFD, out)
    sequences = [0x7FFFFFFE, 0x7FFFFFFF, 1, 2, 3]
    expected = [
        encode_receipt(
            receipt,
            sequence,
            done,
            config.receipt_12_digit_dates,
            config.receipt_tlv,
            config.receipt_decimal_ids,
            pdu=config.receipt_pdu,
            with_text=config.receipt_text,
        )
        for receipt, sequence in zip(run.due_receipts(), sequences, strict=True)
    ]
    assert out == expected


async def test_a_run_draws_as_its_parts_one_by_one_would() -> None:
    """`schedule_run` (the fast path) and `schedule` (part by part) draw the same stats, drops
    and malformed receipts in the same order from the same seed."""
    config = MockConfig(
        receipts=True,
        receipt_mix={"DELIVRD": 0.5, "UNDELIV": 0.5},
        receipt_drop_rate=0.2,
        malformed_receipt_rate=0.2,
    )
    (template,) = codec.submit_templates(
        encode_message("Numero {urgence}: 112", 1),
        source_addr="ALERTE",
        source_ton=5,
        source_npi=0,
        registered_delivery=1,
    )
    pdus = [template.encode(n, codec.destination_bytes(f"3361234{n:04d}")) for n in range(1, 201)]
    seen = []
    for schedule_all in ("one by one", "by run"):
        origin = Receiver(1)
        scheduler = ReceiptScheduler(config, random.Random(5), {origin}, lambda: None)
        if schedule_all == "by run":
            scheduler.schedule_run(origin, len(pdus), [receipt_fields(p) for p in pdus])
        else:
            for n, pdu in enumerate(pdus, start=1):
                scheduler.schedule(origin, validate_submit_sm(pdu), f"{n:016X}")
        await asyncio.sleep(0.01)  # released (no delay) to the origin bind
        got = [(r.message_id, r.source, r.destination, r.stat, r.text) for r in origin.got]
        seen.append((got, [r.malformed for r in origin.got], scheduler.dropped))
    assert seen[0] == seen[1]
    assert 50 < len(seen[0][0]) < 200 and seen[0][2] > 0 and any(seen[0][1])


async def test_a_runs_receipts_go_to_a_receiver_of_its_system_id_or_wait_for_one() -> None:
    """The receipts of a fast-path run from a transmitter bind go to a receiver bind of the
    same system_id; with none open they wait (as receipts of the strict path do) and go to the
    first one that binds, each with its own message id."""
    (template,) = codec.submit_templates(
        encode_message("Numero {urgence}: 112", 1),
        source_addr="ALERTE",
        source_ton=5,
        source_npi=0,
        registered_delivery=1,
    )
    pdus = [template.encode(n, codec.destination_bytes(f"3361234{n:04d}")) for n in range(1, 4)]
    transmitter = Receiver(1, receiving=False)
    receivers: set[Receiver] = {transmitter}
    scheduler = ReceiptScheduler(
        MockConfig(receipts=True), random.Random(1), receivers, lambda: None
    )
    scheduler.schedule_run(transmitter, 0x2C, [receipt_fields(p) for p in pdus])
    await asyncio.sleep(0.01)
    assert scheduler.waiting == 3 and transmitter.got == []
    receiver = Receiver(2)
    receivers.add(receiver)
    scheduler.flush_pending(receiver)
    assert [r.message_id for r in receiver.got] == [f"{n:016X}" for n in (0x2A, 0x2B, 0x2C)]
    assert [r.source for r in receiver.got] == ["33612340001", "33612340002", "33612340003"]
    scheduler.schedule_run(transmitter, 0x2D, [receipt_fields(pdus[0])])
    await asyncio.sleep(0.01)
    assert [r.message_id for r in receiver.got][-1] == f"{0x2D:016X}" and scheduler.waiting == 0


@pytest.mark.parametrize("twelve_digit_dates", [False, True])
def test_kept_templates_serve_later_runs_with_their_own_dates(twelve_digit_dates: bool) -> None:
    """A session keeps its templates while the done date it writes stays the same: runs
    submitted at other instants of that minute share them (the text writes no finer), a run of
    another minute (or second, with 12-digit dates) gets its own, octet for octet right."""
    config = MockConfig(receipts=True, receipt_12_digit_dates=twelve_digit_dates)
    done = datetime(2026, 1, 2, 3, 9, 59, 123456)
    templates = ReceiptTemplates(config, done)
    assert templates.done == as_written(done, twelve_digit_dates)
    receipt = (0x2A, b"33612345678", b"ALERTE", "DELIVRD", "Taux 50%", False)
    instants = [
        datetime(2026, 1, 2, 3, 4, 5, 1),
        datetime(2026, 1, 2, 3, 4, 5, 999_999),
        datetime(2026, 1, 2, 3, 4, 59),
        datetime(2026, 1, 2, 3, 5, 0),
    ]
    for instant in instants:
        run = ReceiptRun("broadcaster", Receiver(1), instant, [receipt])
        out: list[bytes] = []
        templates.encode_run(run, 0, out)
        (due,) = run.due_receipts()
        assert out == [
            encode_receipt(due, 1, done, twelve_digit_dates, True, False, pdu="deliver_sm")
        ]
    # one template per instant the text tells apart: 2 minutes, or 3 seconds
    assert len(templates._templates) == (3 if twelve_digit_dates else 2)
