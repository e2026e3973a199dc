"""Window and TPS enforcement per bind, over TCP: what a client must pace under, exactly."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from smsc_fixtures import RawEsme, raw_submit

from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId, Status

OK, QUEUE_FULL, THROTTLED = 0, Status.ESME_RMSGQFUL, Status.ESME_RTHROTTLED


def burst(first: int, count: int) -> bytes:
    """`count` valid submit_sm in one write (one read at the mock, on loopback)."""
    return b"".join(
        raw_submit(sequence=first + i, destination=b"3361%07d" % (first + i)) for i in range(count)
    )


async def statuses(esme: RawEsme, count: int) -> list[tuple[int, int]]:
    return [codec.decode_submit_sm_resp(p)[:2] for p in await esme.read_pdus(count)]


async def test_window_with_latency_counts_unanswered_submits() -> None:
    async with (
        MockSmsc(MockConfig(window=4, latency_ms=60, seed=1)) as mock,
        await RawEsme.connect(mock.port) as esme,
    ):
        await esme.bind()
        sent = time.monotonic()
        esme.send(burst(1, 6))
        answers = await statuses(esme, 6)
        assert time.monotonic() - sent >= 0.055  # answered after the latency
        assert sorted(answers) == [
            (1, OK),
            (2, OK),
            (3, OK),
            (4, OK),
            (5, QUEUE_FULL),
            (6, QUEUE_FULL),
        ]
        # Everything answered: the window is free again.
        esme.send(burst(7, 4))
        assert {s for _, s in await statuses(esme, 4)} == {OK}
        assert mock.statuses == {OK: 8, QUEUE_FULL: 2}


async def test_a_client_keeping_to_the_window_never_overflows_it() -> None:
    async with (
        MockSmsc(MockConfig(window=5, latency_ms=5, latency_jitter_ms=4, seed=2)) as mock,
        await RawEsme.connect(mock.port) as esme,
    ):
        await esme.bind()
        sequence, outstanding, answered = 1, 0, 0
        while answered < 60:
            while outstanding < 5 and sequence <= 60:
                esme.send(raw_submit(sequence=sequence))
                sequence, outstanding = sequence + 1, outstanding + 1
            answer = codec.decode_submit_sm_resp(await esme.read_pdu())
            assert answer[1] == OK
            outstanding, answered = outstanding - 1, answered + 1
        assert mock.statuses == {OK: 60}


async def test_window_without_latency_counts_the_submits_of_one_read() -> None:
    async with MockSmsc(MockConfig(window=3)) as mock, await RawEsme.connect(mock.port) as esme:
        await esme.bind()
        esme.send(burst(1, 5))  # 5 unanswered at once: 2 beyond the window
        assert await statuses(esme, 5) == [
            (1, OK),
            (2, OK),
            (3, OK),
            (4, QUEUE_FULL),
            (5, QUEUE_FULL),
        ]
        esme.send(burst(6, 3))  # the first 5 were answered: 3 are fine
        assert {s for _, s in await statuses(esme, 3)} == {OK}
        assert mock.record.parts_received == 6


async def test_a_burst_beyond_the_tps_bucket_is_throttled() -> None:
    # tps 50: the bucket holds max(1, 50 x 0.1) = 5 parts and starts full.
    async with MockSmsc(MockConfig(tps=50)) as mock, await RawEsme.connect(mock.port) as esme:
        await esme.bind()
        esme.send(burst(1, 20))
        answers = Counter(s for _, s in await statuses(esme, 20))
        assert answers == {OK: 5, THROTTLED: 15}
        assert mock.record.parts_received == 5


async def test_sending_faster_than_the_tps_is_throttled_and_under_it_is_not() -> None:
    tps = 100.0
    async with MockSmsc(MockConfig(tps=tps)) as mock, await RawEsme.connect(mock.port) as esme:
        await esme.bind()
        await asyncio.sleep(0.1)  # let the bucket settle full
        # 3x the rate for 0.3 s: about half is throttled.
        started = time.monotonic()
        for i in range(90):
            esme.send(raw_submit(sequence=i + 1))
            await asyncio.sleep(1 / (3 * tps))
        answers = Counter(s for _, s in await statuses(esme, 90))
        elapsed = time.monotonic() - started
        assert answers[THROTTLED] > 0
        assert answers[OK] <= 10 + elapsed * tps + 1  # bucket depth + refill
        # Paced at 80% of the rate, one part at a time: never throttled.
        await asyncio.sleep(0.2)
        for i in range(40):
            esme.send(raw_submit(sequence=1000 + i))
            await asyncio.sleep(1 / (0.8 * tps))
        assert {s for _, s in await statuses(esme, 40)} == {OK}
        assert mock.statuses[THROTTLED] == answers[THROTTLED]


async def test_throttle_above_accepts_a_fraction_of_the_rate_per_bind() -> None:
    # tps 100 but only 60% accepted: 60 parts/s, a bucket of 6 parts, on each bind.
    async with (
        MockSmsc(MockConfig(tps=100, throttle_above=0.6)) as mock,
        await RawEsme.connect(mock.port) as one,
        await RawEsme.connect(mock.port) as two,
    ):
        await one.bind()
        await two.bind(CommandId.BIND_TRANSMITTER)
        one.send(burst(1, 10))
        two.send(burst(1, 10))
        for esme in (one, two):
            assert Counter(s for _, s in await statuses(esme, 10)) == {OK: 6, THROTTLED: 4}
        assert [b.parts for b in mock.binds] == [6, 6]
