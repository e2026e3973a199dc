"""Shapes against cells and locations (PostGIS): which cells a polygon or circle meets, how much
of their coverage spills outside it, and who was seen there recently, visitors included."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from broadcaster.domain.shapes import Circle, Shape
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.targeting import Target

OUTLINES = Path(__file__).resolve().parents[1] / "geodata" / "departements.geojson"


@dataclass(frozen=True)
class PresenceStats:
    """What a preview says of a present-mode target beyond its recipients."""

    stale: int
    """Numbers last seen in the selected cells before the window: not reached."""
    visitors: tuple[tuple[str, str, int], ...]
    """(country, language, numbers) of the visitors reached."""


async def ensure_outlines(conn: Conn) -> None:
    """Load the vendored département outlines once (cells are placed in them)."""
    if await conn.fetchval(queries["departement_shapes_loaded"]):
        return
    features = json.loads(OUTLINES.read_text(encoding="utf-8"))["features"]
    await conn.executemany(
        queries["insert_departement_shape"],
        [(f["properties"]["code"], json.dumps(f["geometry"])) for f in features],
    )


def _shape_args(shape: Shape) -> tuple[str | None, float, float, float]:
    if isinstance(shape, Circle):
        return None, shape.lat, shape.lon, shape.radius_km * 1000
    return shape.wkt(), 0.0, 0.0, 0.0


async def shape_cells(conn: Conn, shape: Shape) -> dict[str, str]:
    """Cell id -> its département, for every cell whose coverage meets the shape."""
    rows = await conn.fetch(queries["shape_cells"], *_shape_args(shape))
    return {r["cell_id"]: r["departement"] for r in rows}


@dataclass(frozen=True)
class CellsMet:
    """The cells a shape meets, with what a preview needs of them."""

    departements: dict[str, str]
    """Cell id -> its département."""
    area_m2: float
    inside_m2: float

    @property
    def overspill(self) -> float:
        """The share (0-1) of these cells' coverage that lies outside the shape."""
        return max(0.0, 1 - self.inside_m2 / self.area_m2) if self.area_m2 > 0 else 0.0


async def shape_cells_inside(conn: Conn, shape: Shape) -> CellsMet:
    """The cells whose coverage meets the shape, and how much of their coverage is inside."""
    rows = await conn.fetch(queries["shape_cells_inside"], *_shape_args(shape))
    return CellsMet(
        {r["cell_id"]: r["departement"] for r in rows},
        sum(r["area_m2"] for r in rows),
        sum(r["inside_m2"] or 0.0 for r in rows),
    )


async def meets_cells_flipped(conn: Conn, shape: Shape) -> bool:
    """Would the shape (a polygon, or a circle's centre) meet a cell with its latitudes and
    longitudes swapped? Only asked when it meets none, to say what the likely mistake is."""
    if isinstance(shape, Circle):
        if not -90 <= shape.lon <= 90:
            return False
        flipped = Circle(shape.lon, shape.lat, shape.radius_km)
        return bool(await conn.fetch(queries["shape_cells"], *_shape_args(flipped)))
    return bool(await conn.fetchval(queries["shape_meets_cells_flipped"], shape.wkt()))


async def departement_cells(conn: Conn, departements: Sequence[str]) -> dict[str, str]:
    """Cell id -> département, for the cells standing in these départements."""
    rows = await conn.fetch(queries["departement_cells"], list(departements))
    return {r["cell_id"]: r["departement"] for r in rows}


async def known_cells(conn: Conn, cells: Sequence[str]) -> dict[str, str]:
    """Cell id -> département, for those of these ids that are imported."""
    rows = await conn.fetch(queries["known_cells"], list(cells))
    return {r["cell_id"]: r["departement"] for r in rows}


async def presence(conn: Conn, target: Target) -> tuple[dict[tuple[str, str], int], PresenceStats]:
    """Numbers seen within the window in the target's present cells, per (département of their
    cell, language: a visitor's as the target overrides it for their country); and the stale
    ones and the visitors, from the same pass."""
    pairs = [(cell, dep) for dep, cells in target.present.items() for cell in sorted(cells)]
    if not pairs:
        return {}, PresenceStats(0, ())
    cells, deps = (list(column) for column in zip(*pairs, strict=True))
    rows = await conn.fetch(
        queries["presence_counts"], cells, deps, target.present_window_s, target.test_group_only
    )
    counts: dict[tuple[str, str], int] = {}
    visitors: dict[tuple[str, str], int] = {}
    stale = 0
    for r in rows:
        if not r["fresh"]:
            stale += r["n"]
            continue
        country = r["country"]
        lang = target.visitor_languages.get(country, r["lang"]) if country else r["lang"]
        counts[(r["departement"], lang)] = counts.get((r["departement"], lang), 0) + r["n"]
        if country:
            visitors[(country, lang)] = visitors.get((country, lang), 0) + r["n"]
    ranked = sorted(visitors.items(), key=lambda kv: (-kv[1], kv[0]))
    return counts, PresenceStats(stale, tuple((c, lang, n) for (c, lang), n in ranked))


async def resident_counts_absent(conn: Conn, target: Target) -> dict[tuple[str, str], int]:
    """The resident part's recipients per (département, language), without the subscribers
    its present part reaches (they get the present text: one message per MSISDN)."""
    present = target.present_cells
    counts: dict[tuple[str, str], int] = {}
    for dep, selection in target.selections():
        communes, cells, no_communes, no_cells = selection.columns()
        rows = await conn.fetch(
            queries["selection_counts_absent"],
            dep,
            communes,
            cells,
            no_communes,
            no_cells,
            target.test_group_only,
            present,
            target.present_window_s,
        )
        counts.update({(dep, r["lang"]): r["n"] for r in rows if r["n"] > 0})
    return counts
