"""Pacing for one bind: a token bucket counting parts, with AIMD adaptation (pure, clock given).

The operator contracts a rate per bind; the SMSC says "slow down" with ESME_RTHROTTLED or
ESME_RMSGQFUL when we exceed what it really accepts. On such a reply the rate is cut
multiplicatively; each run of accepted parts then adds back a little, up to the contracted rate.
Sending never stops: the rate has a floor, and the throttled part is retried.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DECREASE = 0.7
"""Multiplier applied to the rate on a throttle reply."""
INCREASE_EVERY = 1.0
"""Seconds of throttle-free sending before the rate is raised again."""
INCREASE_STEP = 0.05
"""Fraction of the contracted rate added back at each raise."""
THROTTLE_HOLDOFF = 0.1
"""Throttle replies closer together than this count as one (they describe the same burst)."""


@dataclass
class Pacer:
    """Token bucket whose rate adapts; `rate == 0` and `ceiling == 0` mean unlimited."""

    ceiling: float
    """The contracted parts per second (0: no contract, pace only after a throttle)."""
    burst_seconds: float = 0.02
    rate: float = field(init=False)
    tokens: float = field(init=False)
    updated: float = field(init=False, default=0.0)
    last_throttle: float = field(init=False, default=float("-inf"))
    last_raise: float = field(init=False, default=0.0)
    throttles: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self.rate = self.ceiling
        self.tokens = self._burst()

    def _burst(self) -> float:
        return max(1.0, self.rate * self.burst_seconds)

    @property
    def limited(self) -> bool:
        return self.rate > 0

    def available(self, now: float) -> int:
        """Whole parts that may be sent now."""
        if not self.limited:
            return 1 << 30
        self._refill(now)
        return int(self.tokens)

    def take(self, count: int) -> None:
        if self.limited:
            self.tokens -= count

    def delay_until_next(self, now: float) -> float:
        """Seconds until one more part may be sent."""
        if not self.limited:
            return 0.0
        self._refill(now)
        missing = 1.0 - self.tokens
        return max(0.0, missing / self.rate) if missing > 0 else 0.0

    def on_throttled(self, now: float, observed_rate: float) -> None:
        """Slow down: cut the rate (or start pacing below what we were doing if unlimited)."""
        self.throttles += 1
        if now - self.last_throttle < THROTTLE_HOLDOFF:
            return
        self.last_throttle = now
        base = self.rate if self.limited else max(observed_rate, 1.0)
        floor = max(1.0, 0.05 * (self.ceiling or base))
        self.rate = max(floor, base * DECREASE)
        self.tokens = min(self.tokens, self._burst())
        self.last_raise = now

    def on_accepted(self, now: float) -> None:
        """Probe back up after a quiet period, never above the contract."""
        if not self.limited or now - self.last_raise < INCREASE_EVERY:
            return
        self.last_raise = now
        if self.ceiling:
            self.rate = min(self.ceiling, self.rate + INCREASE_STEP * self.ceiling)
        else:
            self.rate *= 1.0 + INCREASE_STEP

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self._burst(), self.tokens + (now - self.updated) * self.rate)
            self.updated = now
