"""Retention: what `broadcaster db purge` and serve's scheduler remove, per kind of data.

Outcomes and receipts leave by whole month partitions, once the month is older than their
retention and no unfinished broadcast has a row in it (a running broadcast is never touched);
audit entries and location records by age. The broadcasts stay, and so does each one's report:
saved before its outcomes leave, it is what `status` and `report` show afterwards. Not an API
operation: it runs from the CLI or the scheduler, and its outcome is audited.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from broadcaster.domain.caller import Caller
from broadcaster.settings import Settings
from broadcaster.store import audit
from broadcaster.store import retention as store

log = structlog.get_logger(__name__)


async def purge(
    db: asyncpg.Pool[asyncpg.Record],
    settings: Settings,
    caller: Caller,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Apply (or with `dry_run` only report) the retention settings; what went, what stays."""
    now = now or datetime.now(UTC)
    result: dict[str, Any] = {"dry_run": dry_run, "at": now.isoformat()}
    async with db.acquire() as conn:
        # Even in a dry run: rows waiting in DEFAULT get their month's partition (nothing leaves
        # the database), so the run can say which months would go.
        await store.ensure_partitions(conn)
        for kind, table, days in (
            ("outcomes", "deliveries", settings.retention_outcomes_days),
            ("receipts", "receipts", settings.retention_receipts_days),
        ):
            result[kind] = await _partitions(conn, table, days, now, dry_run)
        result["audit"] = await _audit(conn, settings.retention_audit_days, now, dry_run)
        result["locations"] = await _locations(
            conn, settings.retention_locations_hours, now, dry_run
        )
        if not dry_run and removed(result):
            await audit.record(conn, caller, "retention_purge", None, **_summary(result))
    log.info("retention_purge", action="retention_purge", dry_run=dry_run, **_summary(result))
    return result


async def _partitions(
    conn: Any, table: str, days: int, now: datetime, dry_run: bool
) -> dict[str, Any]:
    if days == 0:
        return {"retention_days": 0, "cutoff": None, "partitions": []}
    cutoff = now - timedelta(days=days)
    listed = []
    for part in await store.partitions(conn, table, cutoff):
        if part.rows is None:  # its month is not over before the cutoff
            continue
        entry: dict[str, Any] = {"partition": part.name, "rows": part.rows}
        if part.holds_active:
            entry["action"] = "kept: an unfinished broadcast has outcomes in it"
        elif dry_run:
            entry["action"] = "would drop"
        else:
            await store.save_reports(conn, part)
            dropped = await store.drop_partition(conn, part, cutoff)
            entry["action"] = "dropped" if dropped is not None else "kept: refused"
            entry["rows"] = dropped if dropped is not None else part.rows
        listed.append(entry)
    return {"retention_days": days, "cutoff": cutoff.isoformat(), "partitions": listed}


async def _audit(conn: Any, days: int, now: datetime, dry_run: bool) -> dict[str, Any]:
    if days == 0:
        return {"retention_days": 0, "cutoff": None, "rows": 0}
    cutoff = now - timedelta(days=days)
    rows = (
        await store.audit_older_than(conn, cutoff)
        if dry_run
        else await store.purge_audit(conn, cutoff)
    )
    return {"retention_days": days, "cutoff": cutoff.isoformat(), "rows": rows}


async def _locations(conn: Any, hours: int, now: datetime, dry_run: bool) -> dict[str, Any]:
    if not await store.locations_exist(conn):
        return {"retention_hours": hours, "cutoff": None, "rows": 0, "table": "absent"}
    if hours == 0:
        return {"retention_hours": 0, "cutoff": None, "rows": 0}
    cutoff = now - timedelta(hours=hours)
    rows = (
        await store.locations_older_than(conn, cutoff)
        if dry_run
        else await store.purge_locations(conn, cutoff)
    )
    return {"retention_hours": hours, "cutoff": cutoff.isoformat(), "rows": rows}


def _summary(result: dict[str, Any]) -> dict[str, int]:
    """Rows removed (or that would be) per kind."""
    summary = {}
    for kind in ("outcomes", "receipts"):
        summary[kind] = sum(
            p["rows"] for p in result[kind]["partitions"] if not p["action"].startswith("kept")
        )
    summary["audit"] = result["audit"]["rows"]
    summary["locations"] = result["locations"]["rows"]
    return summary


def removed(result: dict[str, Any]) -> bool:
    return any(_summary(result).values())


def describe(result: dict[str, Any]) -> str:
    """The text `broadcaster db purge` prints."""
    verb = "would remove" if result["dry_run"] else "removed"
    lines = []
    for kind in ("outcomes", "receipts"):
        section = result[kind]
        if section["cutoff"] is None:
            lines.append(f"{kind}: kept for ever (retention 0)")
            continue
        lines.append(f"{kind}: months ended before {section['cutoff'][:10]}")
        lines += [
            f"  {p['partition']}: {p['rows']} rows, {p['action']}" for p in section["partitions"]
        ]
        if not section["partitions"]:
            lines.append("  nothing that old")
    for kind, unit in (("audit", "entries"), ("locations", "records")):
        section = result[kind]
        if section.get("table") == "absent":
            lines.append(f"{kind}: no location table in this database")
        elif section["cutoff"] is None:
            lines.append(f"{kind}: kept for ever (retention 0)")
        else:
            lines.append(
                f"{kind}: {verb} {section['rows']} {unit} older than {section['cutoff'][:16]}"
            )
    return "\n".join(lines)
