"""Cells in the database: a checked import (staged with COPY, placed in their département by
PostGIS, coverage computed from the sector when not given) and synthetic cells for demos and
load tests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from broadcaster.domain.cells import CellRow
from broadcaster.store.database import Conn
from broadcaster.store.geo import ensure_outlines
from broadcaster.store.queries import queries

MAX_OFFSHORE_KM = 25.0
"""A site farther than this from every département outline is refused (lat/lon swapped?)."""
STAGING_COLUMNS = (
    "line",
    "cell_id",
    "technology",
    "lat",
    "lon",
    "azimuth",
    "beam",
    "range_m",
    "coverage",
    "departement",
)


@dataclass
class CellImport:
    imported: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    """(line, cell id, reason)."""


async def import_cells(conn: Conn, rows: Sequence[tuple[int, CellRow]]) -> CellImport:
    """Upsert checked cells in one transaction; lines that cannot be placed are rejected."""
    result = CellImport()
    first: dict[str, int] = {}
    unique: list[tuple[int, CellRow]] = []
    for line, row in rows:
        if row.cell_id in first:
            result.rejects.append((line, row.cell_id, f"duplicate of line {first[row.cell_id]}"))
            continue
        first[row.cell_id] = line
        unique.append((line, row))
    async with conn.transaction():
        await ensure_outlines(conn)
        await conn.execute(queries["create_cell_staging"])
        # Staged neighbours first: consecutive sites fall in the same outline, whose prepared
        # geometry PostGIS then reuses (several times faster than a random order).
        nearby = sorted(unique, key=lambda lr: (round(lr[1].lon * 2), round(lr[1].lat * 2)))
        await conn.copy_records_to_table(
            "cell_staging",
            records=[row.copy_row(line) for line, row in nearby],
            columns=STAGING_COLUMNS,
        )
        placed = {r["line"]: r for r in await conn.fetch(queries["cell_staging_placed"])}
        lines: list[int] = []
        deps: list[str] = []
        for line, row in unique:
            where = placed.get(line)
            if where is None:
                result.rejects.append((line, row.cell_id, f"unknown département {row.departement}"))
            elif where["km"] > MAX_OFFSHORE_KM:
                result.rejects.append(
                    (
                        line,
                        row.cell_id,
                        f"the site is {where['km']:.0f} km from département {where['departement']}"
                        " (lat and lon swapped?)",
                    )
                )
            else:
                lines.append(line)
                deps.append(where["departement"])
        await conn.execute(queries["upsert_cells"], lines, deps)
        result.imported = len(lines)
    result.rejects.sort()
    return result


async def synth_cells(conn: Conn, sites: int, city_share: float = 0.6) -> int:
    """Add about 3 x `sites` synthetic sectors, by population, `city_share` of the sites
    around a city point of each département; returns the cells now in the table."""
    async with conn.transaction():
        await ensure_outlines(conn)
        await conn.execute(queries["synth_cells"], sites, city_share)
    return int(await conn.fetchval(queries["count_cells"]))
