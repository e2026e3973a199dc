"""A worker: picks the most urgent runnable broadcast, runs it on its engine, repeats.

Any number of workers, on any hosts sharing the database, cooperate through chunk leases; the
only shared state is in PostgreSQL. One worker keeps one engine (its binds and its receipt
recorder) for all the broadcasts it runs, from the start of `run` to its end.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

import asyncpg
import structlog

from broadcaster.engine.engine import Engine
from broadcaster.engine.runner import RunStats
from broadcaster.settings import SmscConfig
from broadcaster.smpp.pool import SmppPool
from broadcaster.store import broadcasts as store
from broadcaster.store import chunks

log = structlog.get_logger(__name__)

IDLE_POLL = 0.5


class Worker:
    """Runs broadcasts from the database until stopped (or, with `until_idle`, until none left)."""

    def __init__(
        self,
        db: asyncpg.Pool,
        smscs: Sequence[SmscConfig],
        *,
        name: str | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
    ) -> None:
        self.db = db
        self.engine = Engine(db, smscs, name=name)
        self.on_progress = on_progress
        self.runs: list[RunStats] = []
        self._stop = asyncio.Event()

    @property
    def smscs(self) -> tuple[SmscConfig, ...]:
        return self.engine.smscs

    @property
    def pool(self) -> SmppPool | None:
        """The engine's SMPP pool while the worker runs (health and counters)."""
        return self.engine.pool

    def stop(self) -> None:
        self._stop.set()

    async def run(self, until_idle: bool = False) -> list[RunStats]:
        """Bind, then work until `stop()` (with `until_idle`, until no runnable broadcast is
        left), then unbind."""
        async with self.engine:
            while not self._stop.is_set():
                broadcast_id = await self._next()
                if broadcast_id is None:
                    if until_idle:
                        break
                    await self._idle()
                    continue
                stats = await self.engine.run(broadcast_id, self.on_progress)
                self.runs.append(stats)
                log.info("worker_run_done", broadcast_id=broadcast_id, state=stats.state)
        return self.runs

    async def _next(self) -> int | None:
        async with self.db.acquire() as conn:
            await store.expire_overdue(conn)
            return await chunks.next_runnable(conn)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), IDLE_POLL)
