"""A whole broadcast as the CLI runs it: plan, confirm, store, run, report."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg

from broadcaster.engine.runner import RunStats
from broadcaster.errors import InputError
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
from broadcaster.store.database import create_pool, database, ensure_migrated

Confirm = Callable[[int, dict[str, Any]], bool]


async def execute(
    db: asyncpg.Pool,
    settings: Settings,
    smscs: Sequence[SmscConfig],
    request: BroadcastRequest,
    confirm: Confirm | None = None,
    on_progress: Callable[[RunStats], None] | None = None,
) -> tuple[Plan, dict[str, Any]]:
    """Plan (refusing bad input before anything is stored), confirm, create, run, summarise."""
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
    preview = plan_as_json(plan, contracted_capacity(smscs))
    if confirm is not None and not confirm(plan.recipients, preview):
        raise InputError("not confirmed: nothing was sent")
    async with db.acquire() as conn:
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    started = time.monotonic()
    cpu_started = time.process_time()
    stats, pool_stats = await run_broadcast(db, smscs, broadcast_id, on_progress)
    seconds = time.monotonic() - started
    async with db.acquire() as conn:
        summary = await store.summary(conn, broadcast_id)
    report: dict[str, Any] = {
        "broadcast_id": broadcast_id,
        "state": stats.state,
        "kind": request.kind,
        "recipients": plan.recipients,
        "parts": plan.parts,
        "submitted": stats.parts_submitted,
        "accepted": summary.accepted,
        "failed": summary.failed,
        "duplicates": summary.duplicates,
        "failed_by_status": {
            f"0x{k & 0xFFFFFFFF:08X}": v for k, v in summary.failed_by_status.items()
        },
        "seconds": round(seconds, 3),
        "msgs_per_s": round(summary.recorded / seconds, 1) if seconds > 0 else 0.0,
        "first_submit_ms": (
            round((stats.first_submit - stats.started) * 1000, 1)
            if stats.first_submit is not None
            else None
        ),
        "throttled": pool_stats["throttled"],
        "requeued_inflight": pool_stats["requeued_inflight"],
        "reconnects": pool_stats["reconnects"],
        "warnings": list(plan.warnings),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 3),
    }
    return plan, report


async def send(
    settings: Settings,
    request: BroadcastRequest,
    confirm: Confirm | None,
    on_progress: Callable[[RunStats], None] | None = None,
) -> dict[str, Any]:
    async with database(settings) as dsn:
        await ensure_migrated(dsn, settings.sql_dir)
        db = await create_pool(dsn, min_size=2, max_size=6)
        try:
            _plan, report = await execute(
                db, settings, settings.smscs, request, confirm, on_progress
            )
        finally:
            await db.close()
    return report
