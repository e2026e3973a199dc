"""Drill schedules and drill runs in the database (the SQL of `broadcaster.drills`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

Row = asyncpg.Record

# -- schedules -------------------------------------------------------------------------------


async def insert_schedule(conn: Conn, *values: Any) -> Row | None:
    """Store a checked schedule (the columns of `insert_drill_schedule`, in order); None when
    one with that name exists."""
    row: Row | None = await conn.fetchrow(queries["insert_drill_schedule"], *values)
    return row


async def schedule_by_id(conn: Conn, schedule_id: int) -> Row | None:
    row: Row | None = await conn.fetchrow(queries["drill_schedule_by_id"], schedule_id)
    return row


async def schedule_by_name(conn: Conn, name: str) -> Row | None:
    row: Row | None = await conn.fetchrow(queries["drill_schedule_by_name"], name)
    return row


async def schedules(conn: Conn) -> list[Row]:
    return list(await conn.fetch(queries["list_drill_schedules"]))


async def delete_schedule(conn: Conn, schedule_id: int) -> Row | None:
    row: Row | None = await conn.fetchrow(queries["delete_drill_schedule"], schedule_id)
    return row


async def set_schedule_enabled(
    conn: Conn, schedule_id: int, enabled: bool, next_run_at: datetime
) -> Row | None:
    row: Row | None = await conn.fetchrow(
        queries["set_drill_schedule_enabled"], schedule_id, enabled, next_run_at
    )
    return row


async def due_schedules(conn: Conn, now: datetime) -> list[Row]:
    """Enabled schedules due at `now`, locked (SKIP LOCKED) until the transaction ends."""
    return list(await conn.fetch(queries["due_drill_schedules"], now))


async def set_schedule_next(conn: Conn, schedule_id: int, next_run_at: datetime) -> None:
    await conn.execute(queries["set_drill_schedule_next"], schedule_id, next_run_at)


async def next_due(conn: Conn) -> datetime | None:
    due: datetime | None = await conn.fetchval(queries["next_drill_due"])
    return due


# -- runs ------------------------------------------------------------------------------------


async def insert_run(
    conn: Conn,
    schedule: Row | None,
    trigger: str,
    due_at: datetime | None,
    now: datetime,
    outcome: str,
    reason: str | None,
    broadcast_id: int | None,
    thresholds: dict[str, Any],
    webhook_url: str | None,
    smscs: Sequence[str] | None = None,
) -> int | None:
    """A run row; None when that schedule's fire time has a run already."""
    run_id = await conn.fetchval(
        queries["insert_drill_run"],
        schedule["id"] if schedule else None,
        schedule["name"] if schedule else None,
        trigger,
        due_at,
        now,
        outcome,
        reason,
        broadcast_id,
        json.dumps(thresholds),
        webhook_url,
        sorted(set(smscs)) if smscs else None,
    )
    return None if run_id is None else int(run_id)


async def runs(conn: Conn, limit: int, schedule_id: int | None = None) -> list[Row]:
    return list(await conn.fetch(queries["list_drill_runs"], limit, schedule_id))


async def run_of_broadcast(conn: Conn, broadcast_id: int) -> Row | None:
    row: Row | None = await conn.fetchrow(queries["drill_run_by_broadcast"], broadcast_id)
    return row


async def unreported_runs(conn: Conn, run_id: int | None = None) -> list[Row]:
    """Started runs without a report (or just `run_id`), locked (SKIP LOCKED)."""
    return list(await conn.fetch(queries["unreported_drill_runs"], run_id))


async def set_run_settle(conn: Conn, run_id: int, at: datetime) -> None:
    await conn.execute(queries["set_drill_run_settle"], run_id, at)


async def set_run_report(
    conn: Conn, run_id: int, verdict: str, report: dict[str, Any], at: datetime
) -> None:
    await conn.execute(queries["set_drill_run_report"], run_id, verdict, json.dumps(report), at)


async def set_run_alarm(
    conn: Conn, run_id: int, reason: str, at: datetime, webhook_status: str | None
) -> None:
    await conn.execute(queries["set_drill_run_alarm"], run_id, reason, at, webhook_status)


async def set_run_webhook(conn: Conn, run_id: int, status: str) -> None:
    await conn.execute(queries["set_drill_run_webhook"], run_id, status)


async def receipts_pending(conn: Conn, broadcast_id: int, final_stats: Sequence[str]) -> int:
    """Accepted parts of the broadcast without a final receipt yet."""
    return int(
        await conn.fetchval(queries["drill_receipts_pending"], broadcast_id, list(final_stats))
    )


async def drill_broadcast(conn: Conn, broadcast_id: int) -> Row | None:
    row: Row | None = await conn.fetchrow(queries["drill_broadcast"], broadcast_id)
    return row


async def report_rows(conn: Conn, broadcast_id: int, final_stats: Sequence[str]) -> list[Row]:
    return list(await conn.fetch(queries["drill_report_rows"], broadcast_id, list(final_stats)))


async def engine_refusal(conn: Conn, broadcast_id: int) -> str | None:
    """Why the engine refused the drill (its audit entry's reason), if it did."""
    reason: str | None = await conn.fetchval(queries["drill_engine_refusal"], broadcast_id)
    return reason


# -- metrics ---------------------------------------------------------------------------------


async def metrics_runs(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(queries["drill_metrics_runs"])]


async def metrics_latest(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(queries["drill_metrics_latest"])]
