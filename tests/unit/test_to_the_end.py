"""`to_the_end`: a write the caller's cancellation must not cut in two."""

from __future__ import annotations

import asyncio

import pytest

from broadcaster.engine.to_the_end import to_the_end


async def test_a_cancelled_caller_waits_for_the_work_then_is_cancelled() -> None:
    steps: list[str] = []
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(0.05)  # the commit's answer, the connection's release...
        steps.append("recorded")

    caller = asyncio.create_task(to_the_end(work()))
    await started.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert steps == ["recorded"]  # finished before the caller saw its cancellation


async def test_the_work_failing_while_its_caller_is_cancelled_raises_the_failure() -> None:
    started = asyncio.Event()

    async def work() -> None:
        started.set()
        await asyncio.sleep(0.05)
        raise OSError("connection lost")

    caller = asyncio.create_task(to_the_end(work()))
    await started.wait()
    caller.cancel()
    with pytest.raises(OSError, match="connection lost"):
        await caller


async def test_the_result_is_returned() -> None:
    async def work() -> int:
        await asyncio.sleep(0)
        return 42

    assert await to_the_end(work()) == 42
