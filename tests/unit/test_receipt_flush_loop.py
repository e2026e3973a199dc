"""The recorder's flush loop keeps its pace start to start: a flush that took longer than the
interval is followed at once, not after another pause (the database would sit idle while
receipts pile up in memory)."""

from __future__ import annotations

import asyncio

from broadcaster.engine.receipts import ReceiptRecorder


class _Timed(ReceiptRecorder):
    """A recorder whose flushes only take time (no database: the loop's pace is the subject)."""

    def __init__(self, interval: float, takes: list[float]) -> None:
        super().__init__(None, interval=interval)  # type: ignore[arg-type]
        self.takes = takes
        self.spans: list[tuple[float, float]] = []

    async def flush(self, *, hold: bool = True) -> None:
        clock = asyncio.get_running_loop().time
        started = clock()
        await asyncio.sleep(self.takes[min(len(self.spans), len(self.takes) - 1)])
        self.spans.append((started, clock()))


async def test_a_slow_flush_is_followed_at_once_and_a_quick_one_after_the_interval() -> None:
    recorder = _Timed(interval=0.5, takes=[0.8, 0.05, 0.05])
    recorder._task = asyncio.get_running_loop().create_task(recorder._loop())
    while len(recorder.spans) < 3:
        await asyncio.sleep(0.02)
    recorder._task.cancel()
    (_s1, e1), (s2, e2), (s3, _e3) = recorder.spans[:3]
    assert s2 - e1 < 0.25  # the slow one (0.8 s > 0.5 s): the next at once, no pause of 0.5 s
    assert s3 - s2 >= 0.5 - 0.01  # a quick one: the next a whole interval after its start
    assert s3 - e2 >= 0.4  # ...that is, a pause after it
