"""Pacing for one bind: a token bucket counting parts, adapting to what the SMSC accepts.

Pure: every method takes the clock (`time.monotonic()` seconds) as an argument, so the
behaviour is tested with a simulated SMSC and no event loop.

The operator contracts a rate per bind (`contract`). Two buckets release parts: a sustained
one at `PACE_FRACTION` of it (the `ceiling`), deep enough to make up for a late timer, and a
peak one at `PEAK_FRACTION` of it, a hundredth of a second deep, so the SMSC never receives a
burst and, in steady state, sees 98.5% of what it allows (the mock SMSC's bucket, 0.1 s deep,
never throttles this). An SMSC that accepts less says so with ESME_RTHROTTLED or
ESME_RMSGQFUL. Then:

0. **Follow the evidence, not every throttle.** A throttle is counted against the responses
   of the last `EVIDENCE` to 2 x `EVIDENCE` parts (a two-block sliding window, reset at each
   cut): the rate is cut only when the throttles are clearly more than `THROTTLE_SHARE` of
   them (by `NOISE_SIGMAS` standard deviations of that share, and at least `MIN_THROTTLES`:
   3 throttles out of 60 responses are noise, 3 out of 5 are not). An SMSC throttling a few
   parts at random (2%, seen on real SMSCs) costs those parts' retries, not the pace: cutting
   on each of them slowed 200k recipients to 46 minutes (issue 20). An SMSC really over its
   capacity throttles the excess, which soon passes the threshold; settled under such an
   SMSC, a few percent of the parts are throttled (and sent again).
1. **Cut once per episode.** A throttle reply that passes the threshold, for a part sent more
   than `HOLD` after the last cut, sets the rate to `CUT` x the rate the SMSC was actually
   accepting (measured since the last cut when it is recent, else over the last
   `MEASURE_SPAN`), never below `MAX_CUT` x the current rate in one step; earlier replies
   describe the old rate and are only counted. No measurement yet: the rate is multiplied by
   `FALLBACK_CUT`.
2. **Recover quickly** to `RECOVER_TO` x that estimate, by `RECOVER_STEP` of it per
   `PROBE_INTERVAL`, while parts are waiting for tokens.
3. **Probe gently** above it: +`PROBE_START` of the estimate per interval up to `PROBE_ZONE` x
   the estimate, then faster (a relative step doubled every quiet interval, up to `PROBE_MAX`),
   until the ceiling is reached or the SMSC throttles again, which starts a new episode with a
   fresh estimate.

Sending never stops: the rate has a floor (`FLOOR_FRACTION` of the ceiling, at least
`FLOOR_RATE`), and the throttled part itself is retried by the session. A bind without a
contract is not paced until its first throttle, and is unpaced again once it has probed to
`UNPACED_AFTER` x the estimate without a throttle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

PACE_FRACTION: Final = 0.985
"""Sustained pace, as a fraction of the contract: timers fire late and the network bunches
parts, and an SMSC counting strictly (a sliding second, a shallow bucket) must never see more
than it allows."""
CATCH_UP_SECONDS: Final = 0.1
"""Sending time lost to a late timer or a busy loop that the bind may make up afterwards (the
sustained bucket's depth), at no more than the peak rate..."""
PEAK_FRACTION: Final = 1.05
"""...the peak rate, as a fraction of the contract (of the throttled rate / PACE_FRACTION when
throttled): a 20 ms hiccup of our loop is made up within a third of a second, and only then may
a second hold up to 5% more than the contract; an SMSC whose bucket holds CATCH_UP_SECONDS of
the contract (the mock: 0.1 s) never throttles it. In steady state the SMSC sees PACE_FRACTION."""
BURST_SECONDS: Final = 0.01
"""Depth of the peak bucket, in seconds of the peak rate (at least one part): whatever we send
in a burst, the SMSC receives in a burst."""
CUT: Final = 0.9
"""After a throttle, pace at this fraction of the rate the SMSC was accepting."""
HOLD: Final = 0.2
"""Throttle replies for parts sent within this many seconds after a cut belong to the same
episode (the SMSC is still recovering from the old rate); a later one is a new episode, and
what the SMSC accepted since the cut measures its capacity."""
MAX_CUT: Final = 0.5
"""A single cut never goes below this fraction of the current rate (a noisy estimate)."""
THROTTLE_SHARE: Final = 0.05
"""Throttles above this share of the recent responses mean "too fast" (below it: noise)..."""
NOISE_SIGMAS: Final = 2.0
"""...by this many standard deviations (Poisson) of the throttles expected at that share..."""
MIN_THROTTLES: Final = 3
"""...and never fewer than this many throttles (one or two among the first responses after a
cut are noise too)."""
EVIDENCE: Final = 500
"""Responses per block of the sliding window over which the throttle share is measured."""
FALLBACK_CUT: Final = 0.7
"""After a throttle with no measurement of the accepted rate: multiply the rate by this."""
RECOVER_TO: Final = 0.97
"""Quick recovery goes up to this fraction of the estimated capacity."""
RECOVER_STEP: Final = 0.05
"""Fraction of the estimated capacity added per interval while recovering."""
PROBE_INTERVAL: Final = 0.25
PROBE_START: Final = 0.01
"""Increase per interval (fraction of the estimate) while probing near it..."""
PROBE_ZONE: Final = 1.1
"""...that is, up to this multiple of the estimate; beyond, the relative increase starts at
PROBE_START and doubles each quiet interval up to PROBE_MAX."""
PROBE_MAX: Final = 0.5
MEASURE_SPAN: Final = 0.25
"""Seconds per measurement span of the accepted and sent rates."""
MIN_SAMPLE: Final = 50
"""An unpaced bind ignores throttles (for its rate) until it has sent this many parts in the
measurement spans: fewer say nothing reliable about the SMSC's capacity."""
MIN_MEASURE: Final = 0.005
"""A span shorter than this (seconds) is too short to give a rate."""
FLOOR_FRACTION: Final = 0.02
FLOOR_RATE: Final = 1.0
UNPACED_AFTER: Final = 4.0
UNLIMITED: Final = 1 << 30
"""What `available` returns for an unpaced bind."""


@dataclass
class Pacer:
    """Two token buckets (sustained rate, peak rate) whose rate adapts to throttling; `rate == 0`
    means not paced.

    One per bind, owned by the pool: it outlives the bind's connections, so a bind that
    reconnects keeps the rate it had learnt.
    """

    contract: float
    """The contracted parts per second (0: no contract, pace only after a throttle)."""
    burst_seconds: float = BURST_SECONDS
    pace_fraction: float = PACE_FRACTION
    ceiling: float = field(init=False)
    """The highest rate used: `pace_fraction` of the contract."""
    rate: float = field(init=False)
    tokens: float = field(init=False)
    """Sustained bucket: up to CATCH_UP_SECONDS of the rate."""
    peak_tokens: float = field(init=False)
    """Peak bucket: up to BURST_SECONDS of the peak rate."""
    updated: float = field(init=False, default=-math.inf)
    capacity: float = field(init=False, default=0.0)
    """The SMSC's accepted rate measured at the last cut (0 before any throttle)."""
    cut_at: float = field(init=False, default=-math.inf)
    next_probe: float = field(init=False, default=0.0)
    probe_step: float = field(init=False, default=PROBE_START)
    wanted_more: bool = field(init=False, default=False)
    """Parts waited for tokens since the last probe: the rate, not demand, is the limit."""
    throttles: int = field(init=False, default=0)
    cuts: int = field(init=False, default=0)
    _episode_accepted: int = field(init=False, default=0)
    _span_start: float = field(init=False, default=-math.inf)
    _span_accepted: int = field(init=False, default=0)
    _span_sent: int = field(init=False, default=0)
    _prev_accepted: int = field(init=False, default=0)
    _prev_sent: int = field(init=False, default=0)
    _prev_span: float = field(init=False, default=0.0)
    _evidence: list[int] = field(init=False, default_factory=lambda: [0, 0, 0, 0])
    """[throttles, responses] of the current block, then of the previous one."""

    def __post_init__(self) -> None:
        if self.contract < 0:
            raise ValueError(f"contract {self.contract} must be 0 (none) or positive parts/s")
        self.ceiling = self.contract * self.pace_fraction
        self.rate = self.ceiling
        self.tokens = self.peak_tokens = 1.0  # one part at once, then the rate: no burst

    # -- the buckets --------------------------------------------------------------------------

    def _depth(self) -> float:
        return max(1.0, self.rate * CATCH_UP_SECONDS)

    @property
    def peak(self) -> float:
        """Highest instantaneous rate (making up lost time): PEAK_FRACTION of the contract."""
        return self.rate * (PEAK_FRACTION / self.pace_fraction)

    def _burst(self) -> float:
        return max(1.0, self.peak * self.burst_seconds)

    def _refill(self, now: float) -> None:
        if self.updated == -math.inf:
            self.updated = now  # the first call: the buckets hold what __post_init__ put there
        elif now > self.updated:
            elapsed = now - self.updated
            self.tokens = min(self._depth(), self.tokens + elapsed * self.rate)
            self.peak_tokens = min(self._burst(), self.peak_tokens + elapsed * self.peak)
            self.updated = now

    @property
    def limited(self) -> bool:
        """True while parts are paced (a contract, or a throttle not yet outgrown)."""
        return self.rate > 0

    @property
    def adapting(self) -> bool:
        """True while the rate is below the contract because of throttling."""
        return self.rate > 0 and self.rate != self.ceiling

    @property
    def exhausted(self) -> bool:
        """True when paced and out of tokens (as of the last refill)."""
        return self.rate > 0 and min(self.tokens, self.peak_tokens) < 1.0

    def available(self, now: float) -> int:
        """Whole parts that may be sent now."""
        if self.rate <= 0:
            return UNLIMITED
        self._refill(now)
        return int(min(self.tokens, self.peak_tokens))

    def take(self, count: int, now: float) -> None:
        """`count` parts were sent (after `available` allowed them)."""
        if self.rate > 0:
            self.tokens -= count
            self.peak_tokens -= count
        self._measure(now)
        self._span_sent += count

    def delay_until(self, now: float, count: int = 1) -> float:
        """Seconds until `count` more parts may be sent (capped at the burst); 0 if unpaced.

        Called when parts are waiting for tokens: that is the demand that justifies probing.
        """
        if self.rate <= 0:
            return 0.0
        self.wanted_more = True
        self._refill(now)
        sustained = (min(float(count), self._depth()) - self.tokens) / self.rate
        peak = (min(float(count), self._burst()) - self.peak_tokens) / self.peak
        return max(sustained, peak, 0.0)

    # -- adaptation ---------------------------------------------------------------------------

    def _measure(self, now: float) -> None:
        """Roll the measurement span when it is over (and forget it after an idle gap)."""
        elapsed = now - self._span_start
        if elapsed < MEASURE_SPAN:
            return
        if elapsed <= 3 * MEASURE_SPAN:
            self._prev_accepted = self._span_accepted
            self._prev_sent = self._span_sent
            self._prev_span = elapsed
        else:
            self._prev_accepted = self._prev_sent = 0
            self._prev_span = 0.0
        self._span_start = now
        self._span_accepted = self._span_sent = 0

    def _recent(self, now: float, previous: int, current: int) -> float:
        """The higher of the last complete span's rate and the current span's (0 if none).

        The higher: an over-estimate is corrected by the next episode a moment later, while
        an under-estimate would cost a slow climb.
        """
        self._measure(now)
        rate = previous / self._prev_span if self._prev_span > 0 else 0.0
        elapsed = now - self._span_start
        if elapsed >= MIN_MEASURE:
            rate = max(rate, current / elapsed)
        return rate

    def accepted_rate(self, now: float) -> float:
        """Parts/s the SMSC accepted recently (0 before any)."""
        self._measure(now)
        return self._recent(now, self._prev_accepted, self._span_accepted)

    def sent_rate(self, now: float) -> float:
        """Parts/s sent recently (0 before any)."""
        self._measure(now)
        return self._recent(now, self._prev_sent, self._span_sent)

    @property
    def floor(self) -> float:
        return max(FLOOR_RATE, FLOOR_FRACTION * (self.ceiling or self.capacity))

    def _responses(self, count: int, throttled: int) -> None:
        """`count` responses, `throttled` of them throttles, into the sliding window."""
        evidence = self._evidence
        evidence[0] += throttled
        evidence[1] += count
        if evidence[1] >= EVIDENCE:
            evidence[2:] = evidence[:2]
            evidence[0] = evidence[1] = 0

    def too_fast(self) -> bool:
        """The sliding window holds clearly more throttles than THROTTLE_SHARE of its
        responses: the SMSC says "too fast", not noise."""
        t0, n0, t1, n1 = self._evidence
        expected = THROTTLE_SHARE * (n0 + n1)
        throttles = t0 + t1
        return throttles >= MIN_THROTTLES and throttles > expected + NOISE_SIGMAS * math.sqrt(
            expected
        )

    def on_throttled(self, now: float, sent_at: float) -> bool:
        """A part sent at `sent_at` came back throttled; True if that cut the rate."""
        self.throttles += 1
        if sent_at < self.cut_at + HOLD:
            # Sent before the cut, or so soon after it that the SMSC had not recovered from
            # the old rate yet: the same episode, and no evidence against the new rate.
            return False
        self._responses(1, 1)
        if not self.too_fast():
            return False  # a few throttles among many acceptances: noise, not a limit
        if self.rate <= 0 and self._prev_sent + self._span_sent < MIN_SAMPLE:
            # Unpaced, and too few parts sent to measure anything: a cut now would pace at
            # the floor (1 part/s) and take many seconds to climb back. The part is retried;
            # the next throttle, after a measurable burst, estimates the capacity.
            return False
        current = self.rate if self.rate > 0 else self.sent_rate(now)
        since_cut = now - self.cut_at
        if since_cut < 4 * MEASURE_SPAN:
            # Throttled again soon after a cut: what the SMSC accepted since then is the
            # freshest measure of its capacity (it was saturated all along).
            accepted = self._episode_accepted / since_cut
        else:
            accepted = self.accepted_rate(now)
        if accepted > 0:
            estimate = min(accepted, current) if current > 0 else accepted
            rate = max(CUT * estimate, MAX_CUT * current)
        else:
            estimate = rate = FALLBACK_CUT * current
        self.capacity = max(estimate, FLOOR_RATE)
        self.rate = max(self.floor, rate)
        self.tokens = min(max(self.tokens, 0.0), 1.0)
        self.peak_tokens = min(max(self.peak_tokens, 0.0), 1.0)
        self.updated = now
        self.cut_at = now
        self._episode_accepted = 0
        self.next_probe = now + PROBE_INTERVAL
        self.probe_step = PROBE_START
        self.wanted_more = False
        self.cuts += 1
        self._evidence = [0, 0, 0, 0]  # the next cut needs evidence against the new rate
        return True

    def on_accepted(self, now: float, count: int = 1) -> None:
        """`count` parts were accepted (call once per batch of responses)."""
        self._measure(now)
        self._span_accepted += count
        self._episode_accepted += count
        self._responses(count, 0)
        if now < self.next_probe or not self.adapting or not self.wanted_more:
            return
        self.next_probe = now + PROBE_INTERVAL
        self.wanted_more = False
        capacity = self.capacity
        target = RECOVER_TO * capacity
        if self.rate < target:
            self.rate = min(target, self.rate + RECOVER_STEP * capacity)
        elif self.rate < PROBE_ZONE * capacity:
            self.rate += PROBE_START * capacity  # near the known limit: gently
        else:
            self.rate *= 1.0 + self.probe_step  # beyond it: the SMSC may have recovered
            self.probe_step = min(PROBE_MAX, 2 * self.probe_step)
        if self.ceiling and self.rate >= self.ceiling:
            self.rate = self.ceiling
        elif not self.ceiling and self.rate >= UNPACED_AFTER * self.capacity:
            self.rate = 0.0
