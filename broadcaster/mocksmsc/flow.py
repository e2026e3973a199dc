"""Flow control per bind: what a client must pace under, and the answers it waits for.

Window (`QueueFull`): a submit_sm arriving while `window` submit_sm of this bind are still
unanswered gets ESME_RMSGQFUL. Unanswered means its submit_sm_resp has not been written yet
(`Answers`): with a response latency, until the latency has elapsed; without latency, answers
are written once per read, so the count is the submit_sm received earlier in the same read. The
server never counts more than the client has outstanding, so a client that keeps to its window
never sees it.

TPS (`Throttling`): a `TokenBucket` (rate = tps * throttle_above parts/s, depth
max(1, rate * tps_burst_s) parts, starts full, refilled continuously at each read's arrival
time). Each submit_sm that passed validation and the window takes one token; without a whole
token it is answered ESME_RTHROTTLED and takes nothing. A client pacing at or under `rate` with
bursts under the depth (0.1 s of the rate by default) is never throttled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from broadcaster.mocksmsc.hooks import Fault
from broadcaster.mocksmsc.timers import DueQueue
from broadcaster.smpp.constants import Status

_RMSGQFUL: Final = int(Status.ESME_RMSGQFUL)
_RTHROTTLED: Final = int(Status.ESME_RTHROTTLED)

_WHOLE_TOKEN: Final = 1.0 - 1e-9
"""A token, give or take float rounding (a client pacing exactly at the rate must pass)."""


class TokenBucket:
    """Per-bind TPS enforcement, in parts.

    `rate` tokens per second flow into a bucket holding at most `capacity` (starts full);
    `take(now)` first adds `(now - last) * rate` (capped), then takes one token if a whole one
    is there. `now` is the arrival time of the read that carried the part.
    """

    __slots__ = ("capacity", "last", "rate", "tokens")

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.last) * self.rate
        self.tokens = tokens if tokens < self.capacity else self.capacity
        self.last = now
        if self.tokens >= _WHOLE_TOKEN:
            self.tokens -= 1.0
            return True
        return False


class Answers:
    """The answers of one connection's submit_sm, written with the read that carried them or,
    with a latency, once it has elapsed; `unanswered` counts those not written yet."""

    __slots__ = ("_delay", "_queue", "_released", "unanswered")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        delay: Callable[[], float] | None,
        released: Callable[[list[bytes]], None],
    ) -> None:
        """`delay()`: seconds an answer waits (None: no latency); `released(answers)`: write
        answers whose delay has elapsed (called from a timer, in due order)."""
        self.unanswered = 0
        self._delay = delay
        self._released = released
        self._queue: DueQueue[tuple[bytes, int]] | None = (
            None if delay is None else DueQueue(loop, self._release)
        )

    @property
    def delayed(self) -> int:
        """Answers waiting for their latency."""
        return len(self._queue) if self._queue is not None else 0

    def read_starts(self) -> None:
        """Without latency, the answers of the previous read are all written."""
        if self._queue is None:
            self.unanswered = 0

    def add(self, response: bytes, append: Callable[[bytes], None], counts: int = 1) -> None:
        """An answer: to this read's batch (`append`), or delayed. `counts`: submit_sm it
        answers (0 for octets that answer nothing)."""
        self.unanswered += counts
        queue, delay = self._queue, self._delay
        if queue is None or delay is None:
            append(response)
        else:
            queue.push(delay(), (response, counts))

    def flush(self, append: Callable[[bytes], None]) -> None:
        """Every delayed answer now, in due order (before an unbind_resp or a generic_nack)."""
        if self._queue is not None:
            for response, _ in self._queue.drain():
                append(response)
        self.unanswered = 0

    def cancel(self) -> None:
        """The connection is gone: delayed answers are never written."""
        if self._queue is not None:
            self._queue.cancel()

    def _release(self, due: list[tuple[bytes, int]]) -> None:
        self.unanswered -= sum(counts for _, counts in due)
        self._released([response for response, _ in due])


class QueueFull(Fault):
    """`window`: ESME_RMSGQFUL while `window` submit_sm of the bind are unanswered."""

    def __init__(self, window: int) -> None:
        self.window = window

    def status(self, now: float, unanswered: int) -> int:
        return _RMSGQFUL if unanswered >= self.window else 0


class Throttling(Fault):
    """`tps` * `throttle_above`: ESME_RTHROTTLED without a whole token in the bind's bucket."""

    def __init__(self, bucket: TokenBucket) -> None:
        self.bucket = bucket

    def status(self, now: float, unanswered: int) -> int:
        return 0 if self.bucket.take(now) else _RTHROTTLED
