"""Send one drill from this process and stay bound for its receipts (`broadcaster drill run`).

A worker closes its binds when its broadcast ends, but receipts come minutes later, on those
binds; a drill measured without them proves nothing. So this keeps its own engine (pool and
receipt recorder) open until every accepted part has its receipt or the wait is over.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from broadcaster.engine.engine import RECEIPT_POLL_S, Engine
from broadcaster.engine.runner import RunStats
from broadcaster.settings import SmscConfig
from broadcaster.smpp.receipts import FINAL_STATS


async def send_drill(
    db: asyncpg.Pool[asyncpg.Record],
    smscs: Sequence[SmscConfig],
    broadcast_id: int,
    wait_s: float,
) -> tuple[RunStats, int]:
    """Run the drill to its end, then wait up to `wait_s` for its final receipts (an ENROUTE
    one does not end the wait); (run statistics, accepted parts still without one)."""
    async with Engine(db, smscs, receipt_interval=RECEIPT_POLL_S) as engine:
        stats = await engine.run(broadcast_id)
        pending = await engine.await_receipts(broadcast_id, sorted(FINAL_STATS), wait_s)
    return stats, pending
