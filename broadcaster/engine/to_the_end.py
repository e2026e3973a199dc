"""Database writes that a cancellation must not cut in two.

A flush commits a batch, then still awaits (the commit's answer, the connection's release). A
task cancelled in that moment used to put the batch back as unrecorded, and the next flush
recorded it a second time (receipts stored twice, outcomes counted twice). `to_the_end` lets
the write finish whatever happens to the caller, and only then passes the cancellation on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def to_the_end(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end; if the caller is cancelled meanwhile, wait for the end, then
    raise CancelledError (the work's own failure, if any, is raised instead)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        if task.done() and task.cancelled():
            raise  # cancelled itself (the loop is closing)
        await asyncio.wait([task])  # (cancelling this wait leaves the work running)
        task.result()  # its failure, if it failed
        raise
