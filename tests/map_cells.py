"""Hand-built cells and last-seen locations for the console's map tests (fixtures_web's
SUBSCRIBERS: 33600000100-111 live in 75, 33600000200-202 in 92)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from broadcaster.domain.cells import parse_cell
from broadcaster.store.cells import import_cells
from broadcaster.store.locations import ingest

_SQUARE = "POLYGON(({0} {1}, {2} {1}, {2} {3}, {0} {3}, {0} {1}))"
CELLS = [
    # central Paris, inside AROUND_P1
    {"cell_id": "P1", "technology": "4G", "lat": "48.86", "lon": "2.34",
     "coverage": _SQUARE.format(2.335, 48.855, 2.345, 48.865)},
    # west Paris, outside it
    {"cell_id": "P2", "technology": "4G", "lat": "48.872", "lon": "2.305",
     "coverage": _SQUARE.format(2.300, 48.870, 2.310, 48.875)},
    # Boulogne-Billancourt (92)
    {"cell_id": "B1", "technology": "3G", "lat": "48.84", "lon": "2.24",
     "coverage": _SQUARE.format(2.235, 48.835, 2.245, 48.845)},
]  # fmt: skip
AROUND_P1 = "polygon:48.85,2.33 48.87,2.33 48.87,2.36 48.85,2.36 48.85,2.33"
"""Meets P1 only: 6 numbers seen there within the hour and a German visitor (7 present), one
seen there 10 h ago (stale)."""
VISITOR = 4915100000001


async def add_cells_and_locations(db: asyncpg.Pool[asyncpg.Record]) -> None:
    now = datetime.now(UTC)
    fresh, stale = (now - timedelta(hours=1)).isoformat(), (now - timedelta(hours=10)).isoformat()
    lines = [f"{33600000100 + i},P1,{fresh}" for i in range(6)]
    lines += [f"{33600000106 + i},P2,{fresh}" for i in range(3)]
    lines += [f"33600000109,P1,{stale}", f"33600000200,B1,{fresh}", f"{VISITOR},P1,{fresh}"]
    async with db.acquire() as conn:
        result = await import_cells(conn, [(n, parse_cell(c)) for n, c in enumerate(CELLS, 2)])
        assert result.rejects == []
        done = await ingest(conn, lines)
        assert done.rejects == []
