"""Retried parts of long messages stay with the SMSC (site) that carried the rest of them.

A phone joins the parts of a concatenated message by (sender, UDH reference), and each SMSC
of a pool sends with its own sender: a part sent again through another SMSC would leave the
recipient with two broken halves. So a part of a multi-part message that comes back (throttled,
timed out, its connection lost) is pinned to its site: `SitePins` keeps one queue per site,
which the pool has that site's binds serve before any fresh part. Single-part messages are
never pinned, and a pinned part never holds up any other part: it waits in its own site's
queue, not at the head of the shared one.

A site may stay down for good, and its pinned parts must not hold the broadcast for ever: once
a site has had no bound session for longer than its patience (the pool gives its response
timeout), `release` hands its pinned parts back for any site to send. Their messages may then
arrive incomplete; the pool counts them.

Pure: no asyncio, no I/O; the clock is given.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class SitePins(Generic[T]):
    """One queue of pinned parts per site, and since when each site has been without a bind."""

    __slots__ = ("_last_up", "_patience", "count", "queues")

    def __init__(self, patience: Sequence[float], now: float) -> None:
        self.queues: tuple[deque[T], ...] = tuple(deque() for _ in patience)
        """Pinned parts of each site, oldest first."""
        self.count = 0
        """Parts pinned, over every site."""
        self._patience = tuple(patience)
        self._last_up = [now] * len(self._patience)
        """When each site was last seen with a bound session (by `release`)."""

    def pin(self, site: int, part: T) -> None:
        """Keep `part` for `site`: the site that carried the rest of its message."""
        self.queues[site].append(part)
        self.count += 1

    def take(self, site: int, most: int) -> list[T]:
        """Up to `most` of `site`'s pinned parts, oldest first, for one of its binds to send."""
        queue = self.queues[site]
        count = min(most, len(queue))
        self.count -= count
        return [queue.popleft() for _ in range(count)]

    def clear(self, which: Callable[[T], bool] | None = None) -> list[T]:
        """Every pinned part (or those `which` picks), forgotten (the pool's `cancel`)."""
        if which is None:
            parts = [part for queue in self.queues for part in queue]
            for queue in self.queues:
                queue.clear()
            self.count = 0
            return parts
        dropped: list[T] = []
        for queue in self.queues:
            kept = [part for part in queue if not which(part)]
            if len(kept) < len(queue):
                dropped.extend(part for part in queue if which(part))
                queue.clear()
                queue.extend(kept)
        self.count -= len(dropped)
        return dropped

    def release(self, now: float, up: Collection[int]) -> dict[int, list[T]]:
        """Note which sites have a bound session now (`up`); return, and forget, the pinned
        parts of each site that has had none for longer than its patience, oldest first."""
        released: dict[int, list[T]] = {}
        last_up = self._last_up
        for site, queue in enumerate(self.queues):
            if site in up:
                last_up[site] = now
            elif queue and now - last_up[site] > self._patience[site]:
                released[site] = list(queue)
                self.count -= len(queue)
                queue.clear()
        return released

    def down_for(self, site: int, now: float) -> float:
        """Seconds since `site` was last seen with a bound session."""
        return now - self._last_up[site]
