"""The engine of one process: its SMPP pool (the binds), its receipt recorder, and the runs of
the broadcasts it sends — several at once share the binds, each keeping its share of the
backlog.

Every way of sending goes through it: a `Worker` (`broadcaster worker`, `serve`) runs whatever
is runnable; `send` runs the one broadcast it created; `drill run` runs its drill and stays
bound for the receipts. The pool is created with the engine's own outcome handler, which hands
each part's outcome to the runner named in the part's tag: runs never rewire the pool.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import cast

import asyncpg
import structlog

from broadcaster.domain.states import RUNNABLE
from broadcaster.engine.receipts import ReceiptRecorder
from broadcaster.engine.runner import LEASE_SECONDS, BroadcastRunner, PartTag, RunStats
from broadcaster.settings import SmscConfig
from broadcaster.smpp.pool import Lane, SmppPool
from broadcaster.store import broadcasts as store
from broadcaster.store import chunks
from broadcaster.store import drills as store_drills
from broadcaster.store.database import connection_lost, until_answered

log = structlog.get_logger(__name__)

RECEIPT_POLL_S = 0.25
IDLE_POLL = 0.5
"""How often a run waiting for other workers' chunks looks again."""


def _lane_of(tag: object) -> Lane:
    """The lane of a part's run (halted with it, closed at its expiry), for the pool."""
    return cast(PartTag, tag)[0].runner.lane


class Engine:
    """Binds to the configured SMSCs and runs broadcasts through them."""

    def __init__(
        self,
        db: asyncpg.Pool,
        smscs: Sequence[SmscConfig],
        *,
        name: str | None = None,
        receipt_interval: float = 0.5,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        self.smscs = tuple(smscs)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        """How this process signs its chunk leases."""
        self.receipts = ReceiptRecorder(db, self.smscs, interval=receipt_interval)
        self.receipts.outcomes_first = self._record_outcomes
        self._receipts_asked = {s.name for s in self.smscs if s.registered_delivery & 3}
        """SMSCs whose parts ask for a receipt (a drill's always do: `group_parts`)."""
        self._pool: SmppPool | None = None
        self._runners: set[BroadcastRunner] = set()

    @property
    def pool(self) -> SmppPool | None:
        """The SMPP pool, once `start` has bound (None before): health and counters."""
        return self._pool

    async def start(self) -> None:
        """Bind (BindError, saying why per bind, unless one bind came up) and record receipts."""
        pool = SmppPool(
            self.smscs,
            on_outcome=self._on_outcome,
            on_receipts=self.receipts.received,
            lane_of=_lane_of,
            on_lost=self.receipts.sent.forget,
        )
        await pool.start()
        self._pool = pool
        self.receipts.start()

    async def close(self) -> None:
        """Unbind (parts in flight get a moment for their answers) and flush the receipts."""
        if self._pool is not None:
            await self._pool.close()
        await self.receipts.stop()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def run(
        self, broadcast_id: int, on_progress: Callable[[RunStats], None] | None = None
    ) -> RunStats:
        """Run the broadcast until it halts: every chunk this engine could claim is done, or it
        was cancelled, paused, expired or preempted."""
        assert self._pool is not None, "start the engine first"
        runner = BroadcastRunner(
            self.db,
            self._pool,
            broadcast_id,
            worker=self.name,
            on_progress=on_progress,
            sharing=lambda: len(self._runners),
            lease_seconds=self.lease_seconds,
        )
        self._runners.add(runner)
        try:
            return await runner.run()
        finally:
            self._runners.discard(runner)

    def halt(self, broadcast_id: int, reason: str) -> None:
        """Stop this engine's run of one broadcast now (a more urgent one starts here)."""
        for runner in list(self._runners):
            if runner.broadcast_id == broadcast_id:
                runner.halt(reason)

    def halt_all(self, reason: str) -> None:
        """Stop every run of this engine now (the worker stops): each hands its unfinished
        chunks back at once, so that another worker takes them up."""
        for runner in list(self._runners):
            runner.halt(reason)

    @property
    def running(self) -> list[int]:
        """The broadcasts this engine is sending now."""
        return sorted(r.broadcast_id for r in self._runners)

    async def run_to_end(
        self, broadcast_id: int, on_progress: Callable[[RunStats], None] | None = None
    ) -> list[RunStats]:
        """Run one broadcast here until it halts or is done everywhere: while other workers
        hold its last chunks, wait, and take over any chunk they hand back (`send` runs the
        broadcast it created this way). The runs made, in order."""
        runs: list[RunStats] = []
        while True:
            try:
                async with self.db.acquire() as conn:
                    await store.expire_overdue(conn)
                    state = await store.get_state(conn, broadcast_id)
                    todo, _total = await chunks.chunks_left(conn, broadcast_id)
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                log.warning("database_lost", error=f"{type(exc).__name__}: {exc}")
                await until_answered(self.db)  # (the binds stay up meanwhile)
                continue
            if state not in RUNNABLE:
                return runs  # (paused, cancelled, expired, completed...: nothing to wait for)
            if todo:
                stats = await self.run(broadcast_id, on_progress)
                runs.append(stats)
                if stats.state != "running":
                    return runs
            await asyncio.sleep(IDLE_POLL)  # other workers hold its last chunks

    async def _record_outcomes(self, broadcasts: set[int]) -> set[int]:
        """The outcomes held by the runs of these broadcasts, recorded now; those of which
        could not be (`ReceiptRecorder.outcomes_first`: their receipts wait)."""
        unrecorded: set[int] = set()
        for runner in list(self._runners):
            if runner.broadcast_id in broadcasts:
                try:
                    await runner.flush_outcomes()
                except Exception as exc:
                    log.warning("outcomes_before_receipts_failed", error=str(exc))
                    unrecorded.add(runner.broadcast_id)
        return unrecorded

    async def await_receipts(
        self, broadcast_id: int, final_stats: Sequence[str], wait: float
    ) -> int:
        """Stay bound until every accepted part of the broadcast has a final receipt, or `wait`
        seconds; the parts still without one."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            await self.receipts.flush()
            async with self.db.acquire() as conn:
                pending = await store_drills.receipts_pending(conn, broadcast_id, final_stats)
            if not pending or loop.time() >= deadline:
                return pending
            await asyncio.sleep(RECEIPT_POLL_S)

    def _on_outcome(
        self,
        tag: object,
        status: int,
        message_id: str | None,
        smsc: str,
        submitted_at: float,
        answered_at: float,
        possible_duplicates: int = 0,
    ) -> None:
        """Each part's outcome, to the runner that submitted it (its tag is a `PartTag`);
        `possible_duplicates`: copies beyond one the SMSC may have received (the pool's
        count, recorded per broadcast and reported as "possibly sent twice"). An accepted
        part that asked for a receipt is remembered for it (`sent_parts`)."""
        part = cast(PartTag, tag)
        progress, msisdn, number, _parts, _group = part
        runner = progress.runner
        runner.on_outcome(
            part, status, message_id, smsc, submitted_at, answered_at, possible_duplicates
        )
        if status == 0 and message_id and (smsc in self._receipts_asked or runner.kind == "drill"):
            self.receipts.sent.add(
                message_id.upper().lstrip("0"),  # receipt_ids.normalise, inlined: every part
                (smsc, runner.broadcast_id, msisdn, number, submitted_at, progress.departement),
            )
