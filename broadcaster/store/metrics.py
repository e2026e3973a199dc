"""What /metrics reads from the database: small tables, never a scan of the outcomes."""

from __future__ import annotations

from typing import Any

from broadcaster.domain.states import ACTIVE
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries


async def broadcasts_by_state(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(queries["broadcasts_by_state"])]


async def active_progress(conn: Conn) -> list[dict[str, Any]]:
    """Unfinished broadcasts with their chunk progress."""
    return [dict(r) for r in await conn.fetch(queries["active_progress"], sorted(ACTIVE))]


async def sightings_pending(conn: Conn) -> int:
    """Location sightings not yet compacted, as of the last ingest, compaction or autovacuum
    (their ANALYZE; no count(*) scan at each scrape)."""
    return int(await conn.fetchval(queries["metrics_sightings_pending"]))
