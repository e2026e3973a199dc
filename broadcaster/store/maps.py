"""What the console's map draws: outlines of départements and regions (from the package's
vendored GeoJSON, simplified and dissolved by PostGIS), the coverage of selected cells, and how
far each area of a broadcast has got. Reads only: nothing here writes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.store.database import Conn
from broadcaster.store.geo import OUTLINES
from broadcaster.store.queries import queries

DRAW_TOLERANCE_DEG = 0.005
"""Simplification of the outlines drawn (about 500 m): enough for a map of France, and a
tenth of the vendored file's size."""


def _vendored() -> tuple[list[str], list[str]]:
    features = json.loads(OUTLINES.read_text(encoding="utf-8"))["features"]
    codes = [str(f["properties"]["code"]) for f in features]
    return codes, [json.dumps(f["geometry"]) for f in features]


def _collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features}


async def departement_outlines(conn: Conn) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the départements (code, name, region, region_name)."""
    codes, geometries = _vendored()
    rows = await conn.fetch(
        queries["map_departement_outlines"], codes, geometries, DRAW_TOLERANCE_DEG
    )
    return _collection(
        [
            {
                "type": "Feature",
                "properties": {
                    "code": r["code"],
                    "name": r["name"],
                    "region": r["region_code"],
                    "region_name": r["region_name"],
                },
                "geometry": json.loads(r["geometry"]),
            }
            for r in rows
        ]
    )


async def region_outlines(conn: Conn) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of the regions (code, name), dissolved from départements."""
    codes, geometries = _vendored()
    rows = await conn.fetch(queries["map_region_outlines"], codes, geometries, DRAW_TOLERANCE_DEG)
    return _collection(
        [
            {
                "type": "Feature",
                "properties": {"code": r["code"], "name": r["name"]},
                "geometry": json.loads(r["geometry"]),
            }
            for r in rows
        ]
    )


def spread(cells: Sequence[str], limit: int) -> list[str]:
    """At most `limit` of these cells, every k-th in id order: cell ids follow their sites, so
    the sample covers the whole shape (never its first corner only), and the same cells come
    back for the same selection (a map redrawn as a shape moves does not flicker)."""
    if limit < 1:
        return []
    ordered = sorted(cells)
    step = max(1, -(-len(ordered) // limit))
    return ordered[::step][:limit]


async def cell_outlines(conn: Conn, cells: Sequence[str], limit: int) -> dict[str, Any]:
    """The coverage of these cells (a spread sample of `limit` when there are more), GeoJSON."""
    rows = await conn.fetch(queries["map_cell_outlines"], spread(cells, limit))
    return _collection(
        [
            {
                "type": "Feature",
                "properties": {"cell": r["cell_id"], "departement": r["departement"]},
                "geometry": json.loads(r["geometry"]),
            }
            for r in rows
        ]
    )


@dataclass(frozen=True)
class AreaProgress:
    departement: str
    recipients: int
    chunks: int
    done: int
    parts: int = 0
    """Parts planned (recipients × parts of their group's text)."""
    delivered: int = 0
    """Parts with a DELIVRD receipt."""

    @property
    def share(self) -> float:
        """The share (0-1) of the area's chunks whose every recipient has an outcome."""
        return self.done / self.chunks if self.chunks else 0.0

    @property
    def delivered_share(self) -> float:
        """The share (0-1) of the area's planned parts delivered to a phone."""
        return min(1.0, self.delivered / self.parts) if self.parts else 0.0


async def areas_progress(conn: Conn, broadcast_id: int) -> list[AreaProgress]:
    """Each département of a broadcast: recipients, chunks, chunks done."""
    rows = await conn.fetch(queries["map_areas_progress"], broadcast_id)
    return [
        AreaProgress(
            r["departement"],
            int(r["recipients"]),
            r["chunks"],
            r["done"],
            int(r["parts"]),
            int(r["delivered"]),
        )
        for r in rows
    ]
