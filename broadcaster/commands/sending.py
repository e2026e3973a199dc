"""Send a broadcast from this terminal (the CLI's `send`, the demo): plan, confirm, store, run
here, apply the operator's decisions, report.

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

from broadcaster.commands.access import authorize
from broadcaster.commands.broadcasts import act, create_planned
from broadcaster.commands.context import Context
from broadcaster.commands.planning import make_plan, plan_as_json, refuse_unsendable
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.domain.states import Action
from broadcaster.engine import heartbeat
from broadcaster.engine.engine import Engine
from broadcaster.engine.runner import RunStats
from broadcaster.errors import BroadcasterError, InputError
from broadcaster.planning import Plan
from broadcaster.settings import SmscConfig
from broadcaster.smpp.pool import contracted_capacity
from broadcaster.store import broadcasts as store

log = structlog.get_logger(__name__)

Decision = Literal["resume", "cancel", "leave"]


class Watcher(Protocol):
    """What a front end sees of a broadcast it sends, and what it decides."""

    async def confirm(self, recipients: int, preview: dict[str, Any]) -> bool:
        """False: nothing is stored, nothing sent."""

    def started(self, broadcast_id: int, plan: Plan, pause: Callable[[], Awaitable[str]]) -> None:
        """The broadcast is stored and about to run; `pause()` pauses it (InputError if it is
        already final)."""

    def attached(self, engine: Engine) -> None:
        """A run begins on this engine (again after a resume): its pool has the health."""

    def progress(self, stats: RunStats) -> None: ...

    async def halted(self, stats: RunStats) -> Decision | None:
        """The broadcast is paused. The watcher's own pause: what next. None: someone else
        paused it (it is left paused)."""

    def finished(self) -> None: ...


async def execute(
    ctx: Context,
    caller: Caller,
    smscs: Sequence[SmscConfig],
    request: BroadcastRequest,
    watcher: Watcher | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """Plan (refusing bad input before anything is stored), confirm, create, run, summarise."""
    db = ctx.db
    async with db.acquire() as conn:
        await authorize(conn, caller, "createBroadcast")
        plan = await make_plan(conn, ctx.settings, request)
    refuse_unsendable(request, plan)  # before the question: nobody confirms what is refused
    preview = plan_as_json(plan, contracted_capacity(smscs))
    if watcher is not None and not await watcher.confirm(plan.recipients, preview):
        raise InputError("not confirmed: nothing was sent")
    broadcast_id = await create_planned(ctx, caller, request, plan)

    async def decide(action: Action) -> str:
        async with db.acquire() as conn:
            return await act(conn, caller, broadcast_id, action)

    clock = _Clock()
    run = _Runs()
    try:
        if watcher is not None:
            watcher.started(broadcast_id, plan, lambda: decide("pause"))
        while True:
            await run.once(db, smscs, broadcast_id, watcher)
            async with db.acquire() as conn:
                state = await store.get_state(conn, broadcast_id)
            if state != "paused" or watcher is None:
                break
            decision = await watcher.halted(run.last)
            if decision == "resume":
                await decide("resume")
                run.interrupted = "resumed"
                continue
            if decision == "cancel":
                await decide("cancel")
                run.interrupted = "cancelled"
            elif decision == "leave":
                run.interrupted = "left_paused"
            break
    except Exception as exc:
        raise await _parked(db, caller, broadcast_id, exc) from exc
    finally:
        if watcher is not None:
            watcher.finished()
    async with db.acquire() as conn:
        summary = await store.summary(conn, broadcast_id)
        state = await store.get_state(conn, broadcast_id)
        watch = await store.receipt_watch(conn, broadcast_id)
    seconds = clock.seconds()
    report: dict[str, Any] = {
        "broadcast_id": broadcast_id,
        "state": state,
        "kind": request.kind,
        "recipients": plan.recipients,
        "parts": plan.parts,
        "submitted": run.parts_submitted,
        "accepted": summary.accepted,
        "failed": summary.failed,
        "duplicates": summary.duplicates,
        "resent_in_flight": summary.resent_in_flight,
        "possibly_sent_twice": summary.possibly_sent_twice,
        "failed_by_status": {
            f"0x{k & 0xFFFFFFFF:08X}": v for k, v in summary.failed_by_status.items()
        },
        "seconds": round(seconds, 3),
        "msgs_per_s": round(summary.recorded / seconds, 1) if seconds > 0 else 0.0,
        "first_submit_ms": run.first_submit_ms,
        "throttled": run.totals["throttled"],
        "requeued_inflight": run.totals["requeued_inflight"],
        "reconnects": run.totals["reconnects"],
        "receipts_recorded": run.totals["receipts_recorded"],
        "receipts_matched_in_memory": run.totals["receipts_matched_in_memory"],
        "interrupted": run.interrupted,
        "warnings": list(plan.warnings),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_seconds": clock.cpu_seconds(),
        **watch,
    }
    return plan, report


class _Clock:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.cpu_started = time.process_time()

    def seconds(self) -> float:
        return time.monotonic() - self.started

    def cpu_seconds(self) -> float:
        return round(time.process_time() - self.cpu_started, 3)


class _Runs:
    """The runs of one broadcast from this terminal (one, plus one after each resume)."""

    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.parts_submitted = 0
        self.first_submit_ms: float | None = None
        self.interrupted: str | None = None
        self.last = RunStats(0)

    async def once(
        self,
        db: asyncpg.Pool,
        smscs: Sequence[SmscConfig],
        broadcast_id: int,
        watcher: Watcher | None,
    ) -> None:
        """Bind, run the broadcast until it halts (completed, paused, cancelled...), unbind."""
        engine = Engine(db, smscs)
        if watcher is not None:
            watcher.attached(engine)
        # Alive for `status` (its binds receive the receipts), as a process taking no other work.
        async with engine, heartbeat.alive(engine, takes_work=False):
            runs = await engine.run_to_end(broadcast_id, watcher.progress if watcher else None)
        stats = runs[-1] if runs else RunStats(broadcast_id, state="not runnable")
        assert engine.pool is not None
        pool_stats = {k: v for k, v in vars(engine.pool.stats).items() if isinstance(v, int)}
        pool_stats["receipts_recorded"] = engine.receipts.recorded
        pool_stats["receipts_matched_in_memory"] = engine.receipts.matched_in_memory
        self.totals.update(pool_stats)
        self.parts_submitted += stats.parts_submitted
        if self.first_submit_ms is None and stats.first_submit is not None:
            self.first_submit_ms = round((stats.first_submit - stats.started) * 1000, 1)
        self.last = stats


async def _parked(
    db: asyncpg.Pool, caller: Caller, broadcast_id: int, exc: Exception
) -> BroadcasterError:
    """The run failed (no SMSC would bind, the database went away...) with the broadcast stored:
    pause it, so no worker sends it later behind the operator's back (perhaps after they
    retried, which would send it twice), and say so."""
    try:
        async with db.acquire() as conn:
            state = await act(conn, caller, broadcast_id, "pause")
    except InputError:
        async with db.acquire() as conn:
            state = await store.get_state(conn, broadcast_id) or "gone"
    except Exception as second:
        log.error("park_failed", broadcast_id=broadcast_id, error=str(second))
        state = "unknown (the database did not answer)"
    message = (
        f"{exc}; broadcast {broadcast_id} was stored and is now {state}, nothing more is sent: "
        f"once this is fixed, `broadcaster resume {broadcast_id}` approves it again and a "
        f"running worker (`broadcaster worker` or `broadcaster serve`) sends the rest; "
        f"`broadcaster cancel {broadcast_id}` drops it"
    )
    if isinstance(exc, BroadcasterError):
        error = BroadcasterError(message)
        error.exit_code = exc.exit_code
        return error
    return BroadcasterError(message)
