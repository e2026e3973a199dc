"""A whole broadcast as the CLI runs it: plan, confirm, store, run, report.

A `Watcher` is the front end's part (the terminal display of `send`): it confirms, watches the
run, asks for a pause (Ctrl-C) through the callback it is given, and when the run halts paused
decides: resume, cancel, or leave it paused. This module applies those decisions, so the state
changes (and their audit entries) happen in one place.
"""

from __future__ import annotations

import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, Protocol

import asyncpg
import structlog

from broadcaster.engine.runner import RunStats
from broadcaster.engine.states import Action
from broadcaster.engine.worker import Worker
from broadcaster.errors import BroadcasterError, InputError
from broadcaster.operations import (
    BroadcastRequest,
    create_broadcast,
    make_plan,
    plan_as_json,
    run_broadcast,
)
from broadcaster.planning import Plan
from broadcaster.settings import Settings, SmscConfig
from broadcaster.smpp.pool import contracted_capacity
from broadcaster.store import broadcasts as store
from broadcaster.store.database import create_pool, ensure_migrated
from broadcaster.store.queries import queries

log = structlog.get_logger(__name__)

Decision = Literal["resume", "cancel", "leave"]
ACTOR = "cli:send"


class Watcher(Protocol):
    """What a front end sees of a broadcast it sends, and what it decides."""

    async def confirm(self, recipients: int, preview: dict[str, Any]) -> bool:
        """False: nothing is stored, nothing sent."""

    def started(self, broadcast_id: int, plan: Plan, pause: Callable[[], Awaitable[str]]) -> None:
        """The broadcast is stored and about to run; `pause()` pauses it (InputError if it is
        already final)."""

    def attached(self, worker: Worker) -> None:
        """A run begins on this worker (again after a resume): its pool has the health."""

    def progress(self, stats: RunStats) -> None: ...

    async def halted(self, stats: RunStats) -> Decision | None:
        """The broadcast is paused. The watcher's own pause: what next. None: someone else
        paused it (it is left paused)."""

    def finished(self) -> None: ...


async def execute(
    db: asyncpg.Pool,
    settings: Settings,
    smscs: Sequence[SmscConfig],
    request: BroadcastRequest,
    watcher: Watcher | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """Plan (refusing bad input before anything is stored), confirm, create, run, summarise."""
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
    preview = plan_as_json(plan, contracted_capacity(smscs))
    if watcher is not None and not await watcher.confirm(plan.recipients, preview):
        raise InputError("not confirmed: nothing was sent")
    async with db.acquire() as conn:
        broadcast_id = await create_broadcast(conn, settings, request, plan)

    async def act(action: Action) -> str:
        async with db.acquire() as conn:
            return await store.act(conn, broadcast_id, action, ACTOR)

    started = time.monotonic()
    cpu_started = time.process_time()
    totals: Counter[str] = Counter()
    parts_submitted = 0
    first_submit_ms: float | None = None
    interrupted: str | None = None
    try:
        if watcher is not None:
            watcher.started(broadcast_id, plan, lambda: act("pause"))
        while True:
            stats, pool_stats = await run_broadcast(
                db,
                smscs,
                broadcast_id,
                on_progress=watcher.progress if watcher else None,
                on_worker=watcher.attached if watcher else None,
            )
            totals.update({k: v for k, v in pool_stats.items() if isinstance(v, int)})
            parts_submitted += stats.parts_submitted
            if first_submit_ms is None and stats.first_submit is not None:
                first_submit_ms = round((stats.first_submit - stats.started) * 1000, 1)
            async with db.acquire() as conn:
                state = await conn.fetchval(queries["get_state"], broadcast_id)
            if state != "paused" or watcher is None:
                break
            decision = await watcher.halted(stats)
            if decision == "resume":
                await act("resume")
                interrupted = "resumed"
                continue
            if decision == "cancel":
                await act("cancel")
                interrupted = "cancelled"
            elif decision == "leave":
                interrupted = "left_paused"
            break
    except Exception as exc:
        raise await _parked(db, broadcast_id, exc) from exc
    finally:
        if watcher is not None:
            watcher.finished()
    seconds = time.monotonic() - started
    async with db.acquire() as conn:
        summary = await store.summary(conn, broadcast_id)
        state = await conn.fetchval(queries["get_state"], broadcast_id)
    report: dict[str, Any] = {
        "broadcast_id": broadcast_id,
        "state": state,
        "kind": request.kind,
        "recipients": plan.recipients,
        "parts": plan.parts,
        "submitted": parts_submitted,
        "accepted": summary.accepted,
        "failed": summary.failed,
        "duplicates": summary.duplicates,
        "failed_by_status": {
            f"0x{k & 0xFFFFFFFF:08X}": v for k, v in summary.failed_by_status.items()
        },
        "seconds": round(seconds, 3),
        "msgs_per_s": round(summary.recorded / seconds, 1) if seconds > 0 else 0.0,
        "first_submit_ms": first_submit_ms,
        "throttled": totals["throttled"],
        "requeued_inflight": totals["requeued_inflight"],
        "reconnects": totals["reconnects"],
        "interrupted": interrupted,
        "warnings": list(plan.warnings),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 3),
    }
    return plan, report


async def send(
    settings: Settings, request: BroadcastRequest, watcher: Watcher | None
) -> dict[str, Any]:
    """Send on the configured database (the subscriber index lives there)."""
    assert settings.database_url, "send needs DATABASE_URL"
    await ensure_migrated(settings.database_url, settings.sql_dir)
    db = await create_pool(settings.database_url, min_size=2, max_size=6)
    try:
        _plan, report = await execute(db, settings, settings.smscs, request, watcher)
    finally:
        await db.close()
    return report


async def _parked(db: asyncpg.Pool, broadcast_id: int, exc: Exception) -> BroadcasterError:
    """The run failed (no SMSC would bind, the database went away...) with the broadcast stored:
    pause it, so no worker sends it later behind the operator's back (perhaps after they
    retried, which would send it twice), and say so."""
    try:
        async with db.acquire() as conn:
            state = await store.act(conn, broadcast_id, "pause", ACTOR)
    except InputError:
        async with db.acquire() as conn:
            state = await conn.fetchval(queries["get_state"], broadcast_id)
    except Exception as second:
        log.error("park_failed", broadcast_id=broadcast_id, error=str(second))
        state = "unknown (the database did not answer)"
    message = (
        f"{exc}; broadcast {broadcast_id} was stored and is now {state}: "
        f"`broadcaster resume {broadcast_id}` sends it once this is fixed, "
        f"`broadcaster cancel {broadcast_id}` drops it"
    )
    if isinstance(exc, BroadcasterError):
        error = BroadcasterError(message)
        error.exit_code = exc.exit_code
        return error
    return BroadcasterError(message)
