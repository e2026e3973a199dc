"""Pacing of one bind: the token bucket and its adaptation, against a simulated SMSC (no loop)."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

import pytest

from broadcaster.smpp.pacing import (
    CUT,
    HOLD,
    PACE_FRACTION,
    PEAK_FRACTION,
    THROTTLE_SHARE,
    UNLIMITED,
    Pacer,
)


@dataclass
class SimSmsc:
    """An SMSC that accepts `capacity` parts/s with a bucket of `burst` parts (throttled parts
    do not consume it), answering each part `latency` seconds after it was sent."""

    capacity: float
    burst: float
    latency: float = 0.02
    tokens: float = field(init=False)
    updated: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def accepts(self, at: float) -> bool:
        if self.capacity <= 0:
            return True
        self.tokens = min(self.burst, self.tokens + (at - self.updated) * self.capacity)
        self.updated = at
        if self.tokens >= 1.0 - 1e-9:  # float dust must not decide
            self.tokens -= 1.0
            return True
        return False


@dataclass
class SimResult:
    accepted: int = 0
    throttled: int = 0
    accepted_in_span: int = 0
    throttled_in_span: int = 0
    span: float = 0.0

    @property
    def rate(self) -> float:
        return self.accepted_in_span / self.span


def simulate(
    pacer: Pacer,
    smsc: SimSmsc | list[tuple[float, SimSmsc]],
    *,
    seconds: float,
    measure_from: float,
    window: int = 64,
    step: float = 0.001,
) -> SimResult:
    """Drive `pacer` against an infinite backlog for `seconds`, the way a session does: every
    `step` it sends what window and tokens allow, and feeds back each batch of responses.
    `smsc` may be a schedule [(from_time, smsc), ...] to change the SMSC's behaviour mid-run."""
    schedule = smsc if isinstance(smsc, list) else [(0.0, smsc)]
    result = SimResult(span=seconds - measure_from)
    responses: list[tuple[float, int, bool, float]] = []  # (due, order, accepted, sent_at)
    order = 0
    inflight = 0
    ticks = round(seconds / step)
    for tick in range(ticks):
        now = tick * step
        current = next(s for start, s in reversed(schedule) if start <= now)
        accepted = 0
        while responses and responses[0][0] <= now:
            _due, _order, ok, sent_at = heapq.heappop(responses)
            inflight -= 1
            if ok:
                accepted += 1
                result.accepted += 1
                if now >= measure_from:
                    result.accepted_in_span += 1
            else:
                result.throttled += 1
                if now >= measure_from:
                    result.throttled_in_span += 1
                pacer.on_throttled(now, sent_at)
        if accepted:
            pacer.on_accepted(now, accepted)
        room = window - inflight
        allowed = pacer.available(now)
        count = min(room, allowed)
        if count < room:
            pacer.delay_until(now)
        if count <= 0:
            continue
        pacer.take(count, now)
        for _ in range(count):
            ok = current.accepts(now + current.latency / 2)
            order += 1
            heapq.heappush(responses, (now + current.latency, order, ok, now))
            inflight += 1
    return result


def throttle_until_cut(pacer: Pacer, now: float, sent_at: float) -> int:
    """Throttle replies (each for a part sent at `sent_at`) until one cuts; how many it took."""
    for count in range(1, 1000):
        if pacer.on_throttled(now, sent_at):
            return count
    raise AssertionError("a thousand throttles in a row never cut the rate")


def test_bucket_paces_just_under_the_contract_with_a_shallow_burst() -> None:
    pacer = Pacer(1000.0)
    assert pacer.ceiling == pytest.approx(1000.0 * PACE_FRACTION)
    assert pacer.limited
    assert not pacer.adapting
    assert pacer.available(10.0) == 1  # it starts with one part, not a burst
    pacer.take(1, 10.0)
    assert pacer.available(10.0) == 0
    assert pacer.delay_until(10.0) == pytest.approx(1 / pacer.ceiling)
    assert pacer.available(10.005) == 4
    assert pacer.available(11.0) == 10  # at once: 10 ms of the peak rate, no more


def test_time_lost_to_a_late_timer_is_made_up_gently() -> None:
    """The loop stalls 50 ms: the bind makes the time up within the second, a little above the
    contract (PEAK_FRACTION), so no sliding second holds much more than the contract."""
    contract = 300.0
    pacer = Pacer(contract)
    sent: list[float] = []
    now = 0.0
    while now < 3.0:
        if not 1.0 <= now < 1.05:  # the stall
            count = pacer.available(now)
            if count:
                pacer.take(count, now)
                sent.extend([now] * count)
        now = round(now + 0.001, 6)
    in_second = sum(1 for t in sent if 1.0 <= t < 2.0)
    assert in_second >= 0.975 * contract  # the 50 ms were made up
    busiest = max(
        sum(1 for t in sent if start <= t < start + 1.0) for start in [i / 100 for i in range(200)]
    )
    assert busiest <= PEAK_FRACTION * contract
    steady = sum(1 for t in sent if 2.0 <= t < 3.0)
    assert steady == pytest.approx(PACE_FRACTION * contract, abs=2)


def test_unpaced_without_contract_until_throttled() -> None:
    pacer = Pacer(0.0)
    assert not pacer.limited
    assert pacer.available(0.0) == UNLIMITED
    assert pacer.delay_until(0.0) == 0.0
    pacer.take(1000, 0.0)
    pacer.on_accepted(0.5, 1000)
    pacer.take(1000, 0.5)
    assert not pacer.on_throttled(0.6, sent_at=0.55)  # one in a thousand: noise
    assert not pacer.limited
    assert throttle_until_cut(pacer, 0.6, sent_at=0.55) > 10  # a share well above 5%: a limit
    assert pacer.adapting
    assert pacer.limited
    assert pacer.capacity > 0
    assert pacer.rate == pytest.approx(CUT * pacer.capacity)
    assert pacer.available(0.6) <= 1  # the bucket starts (nearly) empty after a cut


def test_a_throttle_before_any_measure_does_not_crawl_at_the_floor() -> None:
    """An SMSC throttling the very first parts of an uncontracted bind said nothing about its
    capacity: cutting to the floor (1 part/s) would make a national alert crawl for seconds."""
    pacer = Pacer(0.0)
    pacer.take(5, 0.0)
    assert not pacer.on_throttled(0.002, sent_at=0.0)
    assert not pacer.limited
    assert pacer.available(0.01) == UNLIMITED
    # Once enough has been sent to measure, a throttle cuts to a measured rate, not the floor.
    for i in range(1, 11):
        pacer.take(100, i * 0.05)
        pacer.on_accepted(i * 0.05 + 0.01, 100)
    throttle_until_cut(pacer, 0.6, sent_at=0.59)
    assert pacer.rate >= 1000  # 1,000 parts in 0.5 s were accepted


def test_rejects_a_negative_contract() -> None:
    with pytest.raises(ValueError, match="contract"):
        Pacer(-1.0)


def test_one_cut_per_episode() -> None:
    pacer = Pacer(300.0)
    pacer.take(10, 0.0)
    pacer.on_accepted(0.2, 60)
    before = throttle_until_cut(pacer, 0.3, sent_at=0.28)
    rate = pacer.rate
    # Replies for parts sent before the cut, or just after it, are the same episode.
    for _ in range(20):
        assert not pacer.on_throttled(0.31, sent_at=0.29)
        assert not pacer.on_throttled(0.45, sent_at=0.3 + HOLD - 0.01)
    assert pacer.rate == rate
    assert pacer.throttles == before + 40
    assert pacer.cuts == 1
    # Parts sent well after the cut and throttled again: a new episode (on new evidence).
    throttle_until_cut(pacer, 0.6, sent_at=0.3 + HOLD + 0.01)
    assert pacer.cuts == 2


def test_a_few_throttles_at_random_do_not_slow_the_pace() -> None:
    """2% of the parts throttled at random, whatever the rate (an SMSC's noise, not its
    limit): the pace stays at the contract; each throttled part is only sent again."""
    pacer = Pacer(1000.0)
    rng = random.Random(20)
    throttled = 0
    for i in range(2_000):  # 20 s at the contract, answered in batches of 10
        now = i * 0.01
        pacer.take(10, now)
        for _ in range(10):
            if rng.random() < 0.02:
                throttled += 1
                pacer.on_throttled(now + 0.005, sent_at=now)
            else:
                pacer.on_accepted(now + 0.005)
    assert throttled > 300
    assert pacer.cuts == 0
    assert pacer.rate == pacer.ceiling


def test_a_throttle_share_above_the_threshold_cuts() -> None:
    """The same SMSC throttling one part in eight: too fast, the rate is cut."""
    pacer = Pacer(1000.0)
    for i in range(200):
        now = i * 0.01
        pacer.take(8, now)
        pacer.on_accepted(now + 0.005, 7)
        pacer.on_throttled(now + 0.005, sent_at=now)
    assert pacer.cuts >= 1
    assert pacer.rate < pacer.ceiling


def test_rate_never_falls_below_the_floor() -> None:
    pacer = Pacer(200.0)
    now = 0.0
    for _ in range(1000):
        now += 0.5
        pacer.on_throttled(now, sent_at=now)
    assert pacer.rate == pytest.approx(0.02 * pacer.ceiling)
    assert pacer.available(now + 1.0) >= 1  # never stops the world


def test_contract_respected_without_throttles() -> None:
    """The SMSC accepts exactly the contract: the pacer uses nearly all of it, never throttled,
    even by an SMSC whose bucket holds a hundredth of a second's worth."""
    for burst in (3.0, 15.0):
        result = simulate(
            Pacer(300.0), SimSmsc(capacity=300.0, burst=burst), seconds=4.0, measure_from=1.0
        )
        assert result.throttled == 0
        assert result.rate >= 0.98 * 300


@pytest.mark.parametrize(
    ("ceiling", "capacity"),
    [(500.0, 300.0), (300.0, 180.0), (1000.0, 100.0), (200.0, 190.0)],
)
def test_settles_near_a_lower_real_capacity(ceiling: float, capacity: float) -> None:
    """The SMSC accepts less than contracted: the rate settles just under what it accepts."""
    result = simulate(
        Pacer(ceiling),
        SimSmsc(capacity=capacity, burst=capacity * 0.05),
        seconds=8.0,
        measure_from=2.0,
    )
    assert result.rate >= 0.9 * capacity
    assert result.rate <= 1.01 * capacity
    # Once settled, throttles are probes, not a way of life: a small fraction of what is sent
    # (up to about the share the pacer takes for noise, THROTTLE_SHARE, before it cuts).
    assert result.throttled_in_span < 1.6 * THROTTLE_SHARE * result.accepted_in_span


def test_unpaced_bind_learns_the_capacity() -> None:
    result = simulate(
        Pacer(0.0),
        SimSmsc(capacity=2000.0, burst=100.0, latency=0.005),
        seconds=6.0,
        measure_from=2.0,
        window=64,
    )
    assert result.rate >= 0.9 * 2000
    assert result.throttled_in_span < 0.02 * result.accepted_in_span


def test_follows_capacity_down_and_back_up() -> None:
    pacer = Pacer(400.0)
    schedule = [
        (0.0, SimSmsc(capacity=400.0, burst=20.0)),
        (2.0, SimSmsc(capacity=100.0, burst=5.0)),
        (5.0, SimSmsc(capacity=400.0, burst=20.0)),
    ]
    low = simulate(pacer, schedule, seconds=5.0, measure_from=3.0)
    assert 0.85 * 100 <= low.rate <= 1.01 * 100
    # Back to the full contract within a few seconds once the SMSC recovers.
    pacer2 = Pacer(400.0)
    result = simulate(pacer2, schedule, seconds=12.0, measure_from=9.0)
    assert result.rate >= 0.9 * 400
    assert pacer2.rate == pytest.approx(pacer2.ceiling)


def test_reaching_the_contract_stops_adapting() -> None:
    pacer = Pacer(100.0)
    pacer.on_accepted(0.0, 10)
    pacer.on_accepted(0.4, 40)
    throttle_until_cut(pacer, 0.5, sent_at=0.45)
    assert pacer.adapting
    now = 0.5
    while pacer.adapting and now < 60:
        now += 0.1
        pacer.delay_until(now)
        pacer.on_accepted(now, 10)
    assert pacer.rate == pacer.ceiling
    assert not pacer.adapting
