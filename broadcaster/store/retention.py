"""Retention: month partitions of the outcomes and receipts dropped whole, old audit entries and
location records deleted. The SQL functions (migration 0014) re-check every condition, so the
service's role can purge without owning a table or being able to alter the audit log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from broadcaster.domain.states import ACTIVE
from broadcaster.store import broadcasts
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

PARTITIONED = ("deliveries", "receipts")
MONTHS_AHEAD = 2
"""Partitions made ahead of time: this month and the next two (rows never wait in DEFAULT)."""


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    upper_bound: datetime
    holds_active: bool
    rows: int | None
    """Rows in it, counted only for a month that ended before the cutoff."""


async def ensure_partitions(conn: Conn) -> int:
    """This month's and the next months' partitions; how many were created."""
    return int(await conn.fetchval(queries["retention_ensure_partitions"], MONTHS_AHEAD))


async def partitions(conn: Conn, table: str, cutoff: datetime) -> list[Partition]:
    """The month partitions of `table`, oldest first."""
    rows = await conn.fetch(queries["retention_partitions"], table, sorted(ACTIVE), cutoff)
    return [
        Partition(table, r["partition_name"], r["upper_bound"], r["holds_active"], r["row_count"])
        for r in rows
    ]


async def drop_partition(conn: Conn, partition: Partition, cutoff: datetime) -> int | None:
    """Drop it (the rows it held), or None when the database refused: its month is not over
    before the cutoff, or an unfinished broadcast has a row in it."""
    dropped = await conn.fetchval(
        queries["retention_drop_partition"],
        partition.table,
        partition.name,
        cutoff,
        sorted(ACTIVE),
    )
    return None if dropped is None else int(dropped)


async def audit_older_than(conn: Conn, cutoff: datetime) -> int:
    return int(await conn.fetchval(queries["retention_audit_count"], cutoff))


async def purge_audit(conn: Conn, cutoff: datetime) -> int:
    return int(await conn.fetchval(queries["retention_purge_audit"], cutoff))


async def locations_exist(conn: Conn) -> bool:
    return bool(await conn.fetchval(queries["retention_locations_exist"]))


async def locations_older_than(conn: Conn, cutoff: datetime) -> int:
    return int(await conn.fetchval(queries["retention_locations_count"], cutoff))


async def purge_locations(conn: Conn, cutoff: datetime) -> int:
    return int(await conn.fetchval(queries["retention_purge_locations"], cutoff))


async def save_reports(conn: Conn, partition: Partition) -> int:
    """Save the report of each broadcast with outcomes in this deliveries partition (none of
    them unfinished: such a partition is kept), before the partition goes; how many saved."""
    if partition.table != "deliveries":
        return 0
    ids = [
        r[0] for r in await conn.fetch(queries["retention_partition_broadcasts"], partition.name)
    ]
    for broadcast_id in ids:
        report = await broadcasts.progress(conn, broadcast_id)
        await conn.execute(
            queries["retention_save_report"], broadcast_id, json.dumps(report, default=str)
        )
    return len(ids)
