"""A process with binds says it is alive (the `workers` table), every few seconds, until it stops.

`status` reads it: whether a worker runs that a waiting broadcast can count on, and how many binds
are up to receive the receipts still awaited. A worker takes any runnable broadcast; a one-shot
`send` only its own, so it says so (`takes_work` false): counted for its binds, not as a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog

from broadcaster.engine.engine import Engine
from broadcaster.store import workers
from broadcaster.store.database import DATABASE_UNAVAILABLE

log = structlog.get_logger(__name__)

HEARTBEAT_S = 5.0
"""How often a process says it is alive (`store.workers.ALIVE_S` later, it is taken for gone)."""


@contextlib.asynccontextmanager
async def alive(engine: Engine, *, takes_work: bool) -> AsyncIterator[None]:
    """Beat for `engine` (started) while the block runs; leave at its end (a process killed
    instead ages out after `store.workers.ALIVE_S`)."""
    beating = asyncio.create_task(_beat(engine, takes_work))
    try:
        yield
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating
        with contextlib.suppress(*DATABASE_UNAVAILABLE):
            async with engine.db.acquire() as conn:
                await workers.gone(conn, engine.name)


async def _beat(engine: Engine, takes_work: bool) -> None:
    """Until cancelled; a database that does not answer costs a missed beat, not the process."""
    while True:
        try:
            receivers, problems = bind_facts(engine)
            async with engine.db.acquire() as conn:
                await workers.heartbeat(
                    conn, engine.name, engine.running, receivers, problems, takes_work
                )
        except DATABASE_UNAVAILABLE as exc:
            log.warning("worker_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(HEARTBEAT_S)


def bind_facts(engine: Engine) -> tuple[int, list[str]]:
    """Binds up that get receipts, and what is wrong with the SMSCs, for the heartbeat."""
    pool = engine.pool
    if pool is None:
        return 0, []
    health = pool.health()
    problems = [f"smsc {h.name}: {p}" for h in health for p in h.problems]
    return sum(h.receivers_up for h in health), problems
