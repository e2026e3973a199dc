"""Per-caller rate limits: a token bucket per key, in memory (pure; the clock is passed in).

Keys are `token:<id>` for authenticated callers and `ip:<address>` for failed authentications,
so a leaked token cannot flood the database and a guesser cannot try tokens quickly. One API
process holds its own buckets: with N processes behind a balancer a caller gets N times the rate,
which is fine for a limit meant to stop floods, not to meter use.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """`take(key, now)` returns 0.0 when allowed, else the seconds to wait before retrying."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = float(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str, now: float, cost: float = 1.0) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        else:
            elapsed = max(0.0, now - bucket.at)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate)
            bucket.at = now
        if bucket.tokens >= cost:
            bucket.tokens -= cost
            return 0.0
        return (cost - bucket.tokens) / self.rate

    def blocked(self, key: str, now: float, cost: float = 1.0) -> float:
        """Like `take`, without taking: 0.0 when a request would pass now."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket.tokens + max(0.0, now - bucket.at) * self.rate)
        return 0.0 if tokens >= cost else (cost - tokens) / self.rate

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled (they hold no information); else the oldest half."""
        full_after = self.burst / self.rate
        stale = [k for k, b in self._buckets.items() if now - b.at >= full_after]
        if not stale:
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k].at)
            stale = by_age[: len(by_age) // 2 or 1]
        for key in stale:
            del self._buckets[key]
