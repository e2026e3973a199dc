"""A worker process: picks the most urgent runnable broadcast, runs it, repeats.

Any number of workers, on any hosts sharing the database, cooperate through chunk leases; the
only shared state is in PostgreSQL. One worker keeps one SMPP pool (its binds) for all the
broadcasts it runs, and records delivery receipts for as long as it lives.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Callable, Sequence

import asyncpg
import structlog

from broadcaster.engine.receipts import ReceiptRecorder
from broadcaster.engine.runner import BroadcastRunner, RunStats
from broadcaster.engine.states import RUNNABLE
from broadcaster.settings import SmscConfig
from broadcaster.smpp.pool import SmppPool
from broadcaster.store import broadcasts as store
from broadcaster.store.queries import queries

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
        self.smscs = tuple(smscs)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.on_progress = on_progress
        self.receipts = ReceiptRecorder(db)
        self.runs: list[RunStats] = []
        self.pool: SmppPool | None = None
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self, until_idle: bool = False, only: int | None = None) -> list[RunStats]:
        """Work until `stop()`; with `until_idle`, return when no runnable broadcast is left.

        `only` restricts the worker to one broadcast (the CLI `send` runs its own this way).
        """
        first = self.smscs[0]
        pool = SmppPool(self.smscs, on_outcome=lambda *a: None, on_receipt=self.receipts)
        self.pool = pool
        await pool.start()
        self.receipts.start()
        try:
            while not self._stop.is_set():
                broadcast_id = await self._next(only)
                if broadcast_id is None:
                    if until_idle or (only is not None and not await self._runnable(only)):
                        break  # (`only` paused, cancelled, expired...: nothing to wait for)
                    await self._idle()
                    continue
                runner = BroadcastRunner(
                    self.db,
                    pool,
                    broadcast_id,
                    sender=(first.source_addr, first.source_ton, first.source_npi),
                    registered_delivery=first.registered_delivery,
                    worker=self.name,
                    on_progress=self.on_progress,
                )
                stats = await runner.run()
                self.runs.append(stats)
                log.info("worker_run_done", broadcast_id=broadcast_id, state=stats.state)
                if only is not None:
                    if stats.state != "running":
                        break
                    await self._idle()  # other workers hold its last chunks: wait for them
        finally:
            await pool.close()
            await self.receipts.stop()
        return self.runs

    async def _next(self, only: int | None) -> int | None:
        async with self.db.acquire() as conn:
            await store.expire_overdue(conn)
            if only is not None:
                row = await conn.fetchrow(queries["get_state"], only)
                if row is None or row["state"] not in ("approved", "running"):
                    return None
                left = await conn.fetchrow(queries["chunks_left"], only)
                return only if left is not None and left["todo"] > 0 else None
            row = await conn.fetchrow(queries["next_runnable"])
        return None if row is None else int(row["id"])

    async def _runnable(self, broadcast_id: int) -> bool:
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(queries["get_state"], broadcast_id)
        return row is not None and row["state"] in RUNNABLE

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), IDLE_POLL)
