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
from broadcaster.store import chunks, workers
from broadcaster.store.database import DATABASE_UNAVAILABLE

log = structlog.get_logger(__name__)

IDLE_POLL = 0.5
HEARTBEAT_S = 5.0
"""How often a worker says it is alive (`store.workers.ALIVE_S` later, it is taken for gone)."""


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
        self._running: int | None = None
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
        left), then unbind. While it lives it says so (a heartbeat every HEARTBEAT_S): a
        broadcast waiting for a worker can tell whether one is running."""
        async with self.engine:
            beating = asyncio.create_task(self._heartbeat())
            try:
                await self._work(until_idle)
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
                await self._leave()
        return self.runs

    async def _work(self, until_idle: bool) -> None:
        while not self._stop.is_set():
            broadcast_id = await self._next()
            if broadcast_id is None:
                if until_idle:
                    break
                await self._idle()
                continue
            self._running = broadcast_id
            try:
                stats = await self.engine.run(broadcast_id, self.on_progress)
            finally:
                self._running = None
            self.runs.append(stats)
            log.info("worker_run_done", broadcast_id=broadcast_id, state=stats.state)

    async def _next(self) -> int | None:
        async with self.db.acquire() as conn:
            await store.expire_overdue(conn)
            runnable = await chunks.runnable(conn, limit=1)
        return runnable[0][0] if runnable else None

    async def _heartbeat(self) -> None:
        """Say this worker is alive, and what it sends, until cancelled; a database that does
        not answer costs a missed beat, not the worker."""
        while True:
            try:
                async with self.db.acquire() as conn:
                    running = [self._running] if self._running is not None else []
                    await workers.heartbeat(conn, self.engine.name, running)
            except DATABASE_UNAVAILABLE as exc:
                log.warning("worker_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(HEARTBEAT_S)

    async def _leave(self) -> None:
        with contextlib.suppress(*DATABASE_UNAVAILABLE):
            async with self.db.acquire() as conn:
                await workers.gone(conn, self.engine.name)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), IDLE_POLL)
