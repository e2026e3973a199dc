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

from broadcaster.engine import heartbeat
from broadcaster.engine.engine import Engine
from broadcaster.engine.runner import LEASE_SECONDS, RunStats
from broadcaster.settings import SmscConfig
from broadcaster.smpp.pool import SmppPool
from broadcaster.store import broadcasts as store
from broadcaster.store import chunks
from broadcaster.store.database import connection_lost, until_answered

log = structlog.get_logger(__name__)

IDLE_POLL = 0.5
MAX_CONCURRENT = 8
"""Broadcasts of one priority a worker sends side by side, at most."""


class Worker:
    """Runs broadcasts from the database until stopped (or, with `until_idle`, until none left)."""

    def __init__(
        self,
        db: asyncpg.Pool,
        smscs: Sequence[SmscConfig],
        *,
        name: str | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.db = db
        self.engine = Engine(db, smscs, name=name, lease_seconds=lease_seconds)
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
        """Bind, then work until `stop()` (with `until_idle`, until no runnable broadcast has
        work left: chunks other workers hold count, since a dead one's are taken up when their
        lease expires), then unbind. While it lives it says so (`heartbeat.alive`): a
        broadcast waiting for a worker can tell whether one is running."""
        async with self.engine, heartbeat.alive(self.engine, takes_work=True):
            await self._work(until_idle)
        return self.runs

    async def _work(self, until_idle: bool) -> None:
        """Run every runnable broadcast of the top priority at once (they share the binds,
        side by side: a second live alert does not queue behind the first); a more urgent one
        preempts the others (their runners halt and hand their chunks back)."""
        running: dict[int, tuple[asyncio.Task[RunStats], int]] = {}
        try:
            while not self._stop.is_set():
                try:
                    startable = await self._startable(running)
                    idle = not running and not (startable or await self._work_left())
                except Exception as exc:
                    if not connection_lost(exc):
                        raise
                    await self._ride_out(exc)
                    continue
                for broadcast_id, priority in startable:
                    self._preempt_below(priority, running)
                    if self._stop.is_set():
                        break
                    task = asyncio.create_task(self.engine.run(broadcast_id, self.on_progress))
                    running[broadcast_id] = (task, priority)
                if not running:
                    if until_idle and idle:
                        break
                    await self._idle()
                    continue
                tasks = [task for task, _priority in running.values()]
                done, _ = await asyncio.wait(
                    tasks, timeout=IDLE_POLL, return_when=asyncio.FIRST_COMPLETED
                )
                self._collect(running, done)
        finally:
            if running:
                self.engine.halt_all("the worker stops")
                tasks = [task for task, _priority in running.values()]
                await asyncio.wait(tasks)
                self._collect(running, set(tasks))

    def _preempt_below(
        self, priority: int, running: dict[int, tuple[asyncio.Task[RunStats], int]]
    ) -> None:
        """A more urgent broadcast starts here: halt this worker's runs of lower priority first
        (they hand their chunks back). Their controllers would notice only while the urgent one
        still had a chunk nobody held, and this worker claims them all at once."""
        for broadcast_id, (_task, other) in running.items():
            if other < priority:
                self.engine.halt(broadcast_id, "preempted")

    async def _startable(
        self, running: dict[int, tuple[asyncio.Task[RunStats], int]]
    ) -> list[tuple[int, int]]:
        """Broadcasts to start now: the runnable ones of the most urgent priority (counting the
        runs under way), up to MAX_CONCURRENT runs in all."""
        async with self.db.acquire() as conn:
            await store.expire_overdue(conn)
            for broadcast_id in await store.complete_finished(conn):
                log.info("broadcast_completed_after_its_run", broadcast_id=broadcast_id)
            runnable = await chunks.runnable(conn, limit=MAX_CONCURRENT)
        if not runnable:
            return []
        top = max([runnable[0][1], *(priority for _task, priority in running.values())])
        room = MAX_CONCURRENT - len(running)
        fresh = [(i, p) for i, p in runnable if p == top and i not in running]
        return fresh[: max(0, room)]

    def _collect(
        self,
        running: dict[int, tuple[asyncio.Task[RunStats], int]],
        done: set[asyncio.Task[RunStats]],
    ) -> None:
        for broadcast_id, (task, _priority) in list(running.items()):
            if task in done:
                del running[broadcast_id]
                if not task.cancelled() and task.exception() is not None:
                    # Never the worker's end: the broadcast is taken up again when it can be.
                    exc = task.exception()
                    log.error(
                        "worker_run_failed",
                        broadcast_id=broadcast_id,
                        error=f"{type(exc).__name__}: {exc}",
                        exc_info=exc,
                    )
                    continue
                stats = task.result()
                self.runs.append(stats)
                log.info("worker_run_done", broadcast_id=broadcast_id, state=stats.state)

    async def _work_left(self) -> bool:
        """Some runnable broadcast has a chunk not done (maybe leased by a worker that died:
        waiting for its lease to expire is how a restarted worker finishes the broadcast)."""
        async with self.db.acquire() as conn:
            return await chunks.unfinished(conn) > 0

    async def _ride_out(self, exc: BaseException) -> None:
        """The database went away between runs: wait until it answers (or the worker stops);
        the binds stay up meanwhile."""
        log.warning("worker_database_lost", error=f"{type(exc).__name__}: {exc}")
        answered = asyncio.ensure_future(until_answered(self.db))
        stopped = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({answered, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (answered, stopped):
            fut.cancel()
        if answered.done() and not answered.cancelled():
            log.info("worker_database_back", waited_s=round(answered.result(), 3))

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), IDLE_POLL)
