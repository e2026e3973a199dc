"""The misbehaviours of `MockConfig`, one small `Fault` each, and a connection's set of them.

A submit_sm meets them in this order: `DisconnectAfter`, `StallAfter`, `RandomDisconnects`
(counted in submit_sm received on the connection), then, once it passed validation,
`QueueFull` (window), `Throttling` (tps), `ErrorRates`; once answered, `MalformedReplies` may
mangle its answer, `Latency` delays it, and `CorruptStream` follows it. `SlowDrain` acts on
every read. Refused binds are `binding.bind_refusal`; receipts are `receipts.ReceiptScheduler`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import structlog

from broadcaster.mocksmsc.flow import QueueFull, Throttling, TokenBucket
from broadcaster.mocksmsc.hooks import Drop, Fault, Faults
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.smpp.codec import encode_pdu
from broadcaster.smpp.constants import CommandId

log = structlog.get_logger("broadcaster.mocksmsc")

_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_UNKNOWN_COMMAND_ID = 0x000000FF
_CORRUPT_HEADER = b"\x00\x00\x00\x08\x80\x00\x00\x04"
"""8 octets claiming a command_length of 8: no client can resynchronise after it."""


class DisconnectAfter(Fault):
    """`disconnect_after`: close the connection instead of taking submit_sm number N + 1,
    once the N answers still delayed are written."""

    def __init__(self, count: int) -> None:
        self.count = count

    def drop(self, submits: int) -> Drop | None:
        if submits > self.count:
            return Drop(f"disconnect_after {self.count}", after_answers=True)
        return None


class StallAfter(Fault):
    """`stall_after`: once per connection, stop reading and answering at submit_sm N + 1 (for
    `stall_seconds`, then resume with it)."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.stalled = False

    def drop(self, submits: int) -> Drop | None:
        if self.stalled or submits <= self.count:
            return None
        self.stalled = True
        return Drop(f"stall_after {self.count}", stall=True)


class RandomDisconnects(Fault):
    """`disconnect_rate`: close the connection instead of taking a submit_sm, at random."""

    def __init__(self, rate: float, rng: random.Random) -> None:
        self.rate = rate
        self.rng = rng

    def drop(self, submits: int) -> Drop | None:
        return Drop("disconnect_rate") if self.rng.random() < self.rate else None


class ErrorRates(Fault):
    """`errors`: answer a valid part with each command_status at its rate (vendor codes too)."""

    def __init__(self, rates: Mapping[int, float], rng: random.Random) -> None:
        self.rng = rng
        self.thresholds: list[tuple[float, int]] = []
        """(cumulative rate, status): one draw picks a status, or none above the last."""
        cumulative = 0.0
        for status, rate in rates.items():
            if rate > 0:
                cumulative += rate
                self.thresholds.append((cumulative, status))

    def status(self, now: float, unanswered: int) -> int:
        draw = self.rng.random()
        for threshold, status in self.thresholds:
            if draw < threshold:
                return status
        return 0


class MalformedReplies(Fault):
    """`malformed_reply_rate`: answer with an unreadable PDU instead of the submit_sm_resp (the
    part itself is taken): the message_id without its NUL, or a command_id nobody knows."""

    def __init__(self, rate: float, rng: random.Random) -> None:
        self.rate = rate
        self.rng = rng

    def reply(self, sequence: int, status: int, message_id: str) -> bytes | None:
        if self.rng.random() >= self.rate:
            return None
        if self.rng.random() < 0.5:  # the message_id without its NUL: body unreadable
            body = message_id.encode("ascii") or b"X"
            return encode_pdu(_SUBMIT_SM_RESP, status, sequence, body)
        return encode_pdu(_UNKNOWN_COMMAND_ID, 0, sequence, b"\xde\xad\xbe\xef")


class CorruptStream(Fault):
    """`corrupt_stream_after`: after the answer to submit_sm number N, octets that break the
    framing of the stream for good."""

    def __init__(self, count: int) -> None:
        self.count = count

    def after_answer(self, submits: int, bind: str) -> bytes | None:
        if submits != self.count:
            return None
        log.info("mock_smsc_corrupting_stream", bind=bind)
        return _CORRUPT_HEADER


class Latency(Fault):
    """`latency_ms` ± `latency_jitter_ms`: each answer waits, drawn uniformly (never below 0)."""

    delays_answers = True

    def __init__(self, ms: float, jitter_ms: float, rng: random.Random) -> None:
        self.ms = ms
        self.jitter_ms = jitter_ms
        self.rng = rng

    def answer_delay(self) -> float:
        delay = self.ms
        if self.jitter_ms:
            delay = max(0.0, delay + self.rng.uniform(-self.jitter_ms, self.jitter_ms))
        return delay / 1000


class SlowDrain(Fault):
    """`drain_delay_ms`: stop reading for a while after every read (a slow consumer)."""

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def read_pause(self) -> float:
        return self.ms / 1000


def _drops(config: MockConfig, rng: random.Random) -> list[Fault]:
    pieces: list[Fault] = []
    if config.disconnect_after:
        pieces.append(DisconnectAfter(config.disconnect_after))
    if config.stall_after:
        pieces.append(StallAfter(config.stall_after))
    if config.disconnect_rate:
        pieces.append(RandomDisconnects(config.disconnect_rate, rng))
    return pieces


def _objections(config: MockConfig, rng: random.Random, now: float) -> list[Fault]:
    pieces: list[Fault] = []
    if config.window:
        pieces.append(QueueFull(config.window))
    if config.accepted_tps:
        pieces.append(Throttling(TokenBucket(config.accepted_tps, config.tps_capacity, now)))
    if config.errors:
        pieces.append(ErrorRates(config.errors, rng))
    return pieces


def _answering(config: MockConfig, rng: random.Random) -> list[Fault]:
    pieces: list[Fault] = []
    if config.malformed_reply_rate:
        pieces.append(MalformedReplies(config.malformed_reply_rate, rng))
    if config.corrupt_stream_after:
        pieces.append(CorruptStream(config.corrupt_stream_after))
    if config.latency_ms or config.latency_jitter_ms:
        pieces.append(Latency(config.latency_ms, config.latency_jitter_ms, rng))
    if config.drain_delay_ms:
        pieces.append(SlowDrain(config.drain_delay_ms))
    return pieces


def connection_faults(config: MockConfig, rng: random.Random, now: float) -> Faults:
    """The pieces of a new connection's scenario (its TPS bucket full at loop time `now`), in
    the order each question asks them: the order of their draws from `rng`."""
    return Faults([*_drops(config, rng), *_objections(config, rng, now), *_answering(config, rng)])
