"""Things the mock does later: items released in due order by one timer, and one-shot timers
that a closing connection cancels all at once."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

EARLY_S = 0.0005
"""An item due within this much of a timer's firing goes with it (one write, not two)."""


class DueQueue(Generic[T]):
    """Items each due at its own time, released in due order (then order of arrival) to
    `release` by a single timer armed for the earliest: thousands of delayed answers or
    receipts cost one timer, not one each."""

    __slots__ = ("_heap", "_loop", "_release", "_seq", "_timer", "_timer_due")

    def __init__(self, loop: asyncio.AbstractEventLoop, release: Callable[[list[T]], None]):
        self._loop = loop
        self._release = release
        self._heap: list[tuple[float, int, T]] = []
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, delay_s: float, item: T) -> None:
        """Release `item` in `delay_s` seconds."""
        due = self._loop.time() + delay_s
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, item))
        if self._timer is None or due < self._timer_due:
            if self._timer is not None:
                self._timer.cancel()
            self._arm(due)

    def drain(self) -> list[T]:
        """Every item now, in due order; the timer is cancelled."""
        heap = self._heap
        items = [heapq.heappop(heap)[2] for _ in range(len(heap))]
        self.cancel()
        return items

    def cancel(self) -> None:
        """Stop the timer (the items stay: a closing connection's are never released)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, due: float) -> None:
        self._timer_due = due
        self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        heap = self._heap
        now = self._loop.time() + EARLY_S
        items: list[T] = []
        while heap and heap[0][0] <= now:
            items.append(heapq.heappop(heap)[2])
        if heap:
            self._arm(heap[0][0])
        self._release(items)


class Timers:
    """One-shot callbacks of one connection, all cancelled when it closes."""

    __slots__ = ("_handles", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handles: set[asyncio.TimerHandle] = set()

    def later(self, delay_s: float, callback: Callable[..., object], *args: Any) -> None:
        """`callback(*args)` in `delay_s` seconds, unless cancelled before."""
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            assert handle is not None
            self._handles.discard(handle)
            callback(*args)

        handle = self._loop.call_later(delay_s, fire)
        self._handles.add(handle)

    def cancel_all(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
