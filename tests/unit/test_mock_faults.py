"""The mock SMSC's scenario pieces, one per misbehaviour, and how a session asks them (pure)."""

from __future__ import annotations

import random

from broadcaster.mocksmsc.faults import (
    CorruptStream,
    DisconnectAfter,
    ErrorRates,
    Latency,
    MalformedReplies,
    RandomDisconnects,
    SlowDrain,
    StallAfter,
    connection_faults,
)
from broadcaster.mocksmsc.flow import QueueFull, Throttling, TokenBucket
from broadcaster.mocksmsc.hooks import Drop, Fault, Faults
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.smpp import codec
from broadcaster.smpp.constants import Status


def test_disconnects_and_stalls_count_submit_sm_of_the_connection() -> None:
    assert DisconnectAfter(3).drop(3) is None
    assert DisconnectAfter(3).drop(4) == Drop("disconnect_after 3", after_answers=True)
    stall = StallAfter(2)
    assert stall.drop(2) is None
    assert stall.drop(3) == Drop("stall_after 2", stall=True)
    assert stall.drop(4) is None  # once per connection
    assert RandomDisconnects(1.0, random.Random(1)).drop(1) == Drop("disconnect_rate")
    assert RandomDisconnects(0.0, random.Random(1)).drop(1) is None


def test_error_rates_pick_statuses_by_one_draw() -> None:
    rates = {0x58: 0.25, 0x401: 0.25}
    pieces = ErrorRates(rates, random.Random(5))
    draws = random.Random(5)
    for _ in range(200):
        draw = draws.random()
        expected = 0x58 if draw < 0.25 else 0x401 if draw < 0.5 else 0
        assert pieces.status(0.0, 0) == expected
    assert ErrorRates({0x58: 0.0}, random.Random(1)).thresholds == []


def test_window_and_tps_object_in_their_own_terms() -> None:
    assert QueueFull(2).status(0.0, 1) == 0
    assert QueueFull(2).status(0.0, 2) == Status.ESME_RMSGQFUL
    throttling = Throttling(TokenBucket(rate=10.0, capacity=1.0, now=0.0))
    assert throttling.status(0.0, 0) == 0
    assert throttling.status(0.05, 0) == Status.ESME_RTHROTTLED
    assert throttling.status(0.1, 0) == 0


def test_malformed_replies_replace_the_answer_with_unreadable_octets() -> None:
    rng = random.Random(3)
    replies = [MalformedReplies(1.0, rng).reply(9, 0, "00000000000000AB") for _ in range(40)]
    no_nul = codec.encode_pdu(0x80000004, 0, 9, b"00000000000000AB")
    unknown = codec.encode_pdu(0xFF, 0, 9, b"\xde\xad\xbe\xef")
    assert set(replies) == {no_nul, unknown}
    assert MalformedReplies(1.0, rng).reply(9, 0x58, "") in {
        codec.encode_pdu(0x80000004, 0x58, 9, b"X"),
        unknown,
    }
    assert MalformedReplies(0.0, rng).reply(9, 0, "1") is None


def test_corrupt_stream_latency_and_slow_drain() -> None:
    assert CorruptStream(2).after_answer(1, "#1") is None
    assert CorruptStream(2).after_answer(2, "#1") == b"\x00\x00\x00\x08\x80\x00\x00\x04"
    assert Latency(20, 0, random.Random(1)).answer_delay() == 0.020
    delays = [Latency(2, 5, random.Random(seed)).answer_delay() for seed in range(200)]
    assert min(delays) == 0.0 and 0.006 < max(delays) <= 0.007
    assert SlowDrain(250).read_pause() == 0.25


class _Objects(Fault):
    def __init__(self, status: int, asked: list[str], name: str) -> None:
        self.answer, self.asked, self.name = status, asked, name

    def status(self, now: float, unanswered: int) -> int:
        self.asked.append(self.name)
        return self.answer


def test_faults_ask_only_the_pieces_that_answer_and_stop_at_the_first_objection() -> None:
    asked: list[str] = []
    faults = Faults([_Objects(0, asked, "a"), _Objects(0x58, asked, "b"), _Objects(8, asked, "c")])
    assert faults.status(0.0, 0) == 0x58
    assert asked == ["a", "b"]
    assert faults.drop(1) is None and faults.reply(1, 0, "") is None
    assert faults.answer_delay() == 0.0 and not faults.delays_answers
    assert Faults([]).status(0.0, 0) == 0


def test_a_connection_gets_one_piece_per_knob_in_the_order_of_their_draws() -> None:
    config = MockConfig(
        disconnect_after=5,
        stall_after=3,
        disconnect_rate=0.1,
        window=4,
        tps=10,
        errors={0x58: 0.1},
        malformed_reply_rate=0.1,
        corrupt_stream_after=7,
        latency_ms=2,
        drain_delay_ms=1,
    )
    faults = connection_faults(config, random.Random(1), now=0.0)
    assert [type(piece) for piece in faults.pieces] == [
        DisconnectAfter,
        StallAfter,
        RandomDisconnects,
        QueueFull,
        Throttling,
        ErrorRates,
        MalformedReplies,
        CorruptStream,
        Latency,
        SlowDrain,
    ]
    assert faults.delays_answers
    assert faults.drop(6) == Drop("disconnect_after 5", after_answers=True)
    assert faults.status(0.0, 4) == Status.ESME_RMSGQFUL
    assert faults.read_pause() == 0.001
    assert connection_faults(MockConfig(), random.Random(1), now=0.0).pieces == ()
