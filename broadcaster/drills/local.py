"""Send one drill from this process and stay bound for its receipts (`broadcaster drill run`).

A worker closes its binds when its broadcast ends, but receipts come minutes later, on those
binds; a drill measured without them proves nothing. So this keeps its own pool and receipt
recorder open until every accepted part has its receipt or the wait is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg

from broadcaster.drills.runs import FINAL_RECEIPT_STATS
from broadcaster.engine.receipts import ReceiptRecorder
from broadcaster.engine.runner import BroadcastRunner, RunStats
from broadcaster.settings import SmscConfig
from broadcaster.smpp.pool import SmppPool
from broadcaster.store.queries import queries

RECEIPT_POLL_S = 0.25


async def send_drill(
    db: asyncpg.Pool[asyncpg.Record],
    smscs: Sequence[SmscConfig],
    broadcast_id: int,
    wait_s: float,
) -> tuple[RunStats, int]:
    """Run the drill to its end, then wait up to `wait_s` for its final receipts (an ENROUTE
    one does not end the wait); (run statistics, accepted parts still without one)."""
    recorder = ReceiptRecorder(db, interval=RECEIPT_POLL_S)
    pool = SmppPool(smscs, on_outcome=lambda *a: None, on_receipt=recorder)
    await pool.start()
    recorder.start()
    pending = 0
    try:
        first = smscs[0]
        runner = BroadcastRunner(
            db,
            pool,
            broadcast_id,
            sender=(first.source_addr, first.source_ton, first.source_npi),
            registered_delivery=1,  # a drill measures delivery: it always asks for receipts
        )
        stats = await runner.run()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while True:
            await recorder.flush()
            async with db.acquire() as conn:
                pending = await conn.fetchval(
                    queries["drill_receipts_pending"], broadcast_id, FINAL_RECEIPT_STATS
                )
            if not pending or loop.time() >= deadline:
                break
            await asyncio.sleep(RECEIPT_POLL_S)
    finally:
        await pool.close()
        await recorder.stop()
    return stats, pending
