"""A radio cell as a CSV line describes it (pure): checked field by field, so that a bad line
goes to the reject file with its reason and the rest is imported.

Columns (header required, any order): cell_id, technology (2G/3G/4G/5G), lat, lon, then either
azimuth (degrees from north), beam (width in degrees, 360 for an omnidirectional cell) and
range_m (metres), or coverage (a WKT POLYGON or a GeoJSON Polygon, lon/lat order); optionally
departement (else the one the site stands in).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from broadcaster.domain.shapes import ShapeError, check_ring, parse_polygon
from broadcaster.errors import InputError

REQUIRED = ("cell_id", "technology", "lat", "lon")
SECTOR = ("azimuth", "beam", "range_m")
TECHNOLOGIES = frozenset({"2G", "3G", "4G", "5G"})
CELL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,32}$")
DEPARTEMENT = re.compile(r"^(97[1-6]|2[AB]|\d{2})$")
MAX_RANGE_M = 100_000.0
_WKT = re.compile(r"^\s*POLYGON\s*\(\(\s*(?P<ring>[^()]*)\)\)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class CellRow:
    cell_id: str
    technology: str
    lat: float
    lon: float
    azimuth: float | None
    beam: float | None
    range_m: float | None
    coverage: str | None
    """WKT POLYGON (lon lat), checked closed and simple; None: computed from the sector."""
    departement: str | None

    def copy_row(self, line: int) -> tuple[object, ...]:
        return (
            line,
            self.cell_id,
            self.technology,
            self.lat,
            self.lon,
            self.azimuth,
            self.beam,
            self.range_m,
            self.coverage,
            self.departement,
        )


def check_header(columns: list[str]) -> None:
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InputError(
            f"the cells file lacks the column(s) {', '.join(missing)}; the header needs "
            f"{', '.join(REQUIRED)} and either {', '.join(SECTOR)} or coverage"
        )
    if "coverage" not in columns and not all(c in columns for c in SECTOR):
        raise InputError(
            f"the cells file needs either the columns {', '.join(SECTOR)} or a coverage column"
        )


def parse_cell(row: Mapping[str, str | None]) -> CellRow:
    """One line, checked; InputError saying what is wrong with it."""
    cell_id = (row.get("cell_id") or "").strip()
    if not CELL_ID.match(cell_id):
        raise InputError(f"cell id {cell_id!r}: letters, digits and ._:- , at most 32")
    technology = (row.get("technology") or "").strip().upper()
    if technology not in TECHNOLOGIES:
        raise InputError(f"technology {technology!r} is not one of 2G, 3G, 4G, 5G")
    lat, lon = _float(row, "lat"), _float(row, "lon")
    if lat is None or lon is None:
        raise InputError("lat and lon are required")
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise InputError(f"lat {lat:g} / lon {lon:g} out of range (lat and lon swapped?)")
    coverage = _coverage((row.get("coverage") or "").strip())
    azimuth, beam, range_m = (_float(row, c) for c in SECTOR)
    if coverage is None:
        _check_sector(azimuth, beam, range_m)
    departement = (row.get("departement") or "").strip().upper() or None
    if departement is not None and not DEPARTEMENT.match(departement):
        raise InputError(f"departement {departement!r} is not a département code")
    return CellRow(cell_id, technology, lat, lon, azimuth, beam, range_m, coverage, departement)


def _check_sector(azimuth: float | None, beam: float | None, range_m: float | None) -> None:
    if azimuth is None or beam is None or range_m is None:
        raise InputError("azimuth, beam and range_m are required when no coverage is given")
    if not 0 <= azimuth < 360:
        raise InputError(f"azimuth {azimuth:g} is not within [0, 360)")
    if not 0 < beam <= 360:
        raise InputError(f"beam {beam:g} is not within (0, 360]")
    if not 0 < range_m <= MAX_RANGE_M:
        raise InputError(f"range_m {range_m:g} is not within (0, {MAX_RANGE_M:g}]")


def _float(row: Mapping[str, str | None], name: str) -> float | None:
    text = (row.get(name) or "").strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError(f"{name} {text!r} is not a number") from None


def _coverage(text: str) -> str | None:
    """A given coverage as checked WKT (lon lat order), or None."""
    if not text:
        return None
    try:
        if text.startswith("{"):
            return parse_polygon(text).wkt()
        match = _WKT.match(text)
        if match is None:
            raise InputError("coverage is neither a WKT POLYGON((...)) nor a GeoJSON Polygon")
        ring = []
        for pair in match["ring"].split(","):
            lon_text, _, lat_text = pair.strip().partition(" ")
            ring.append((float(lat_text), float(lon_text)))
        return check_ring(ring).wkt()
    except ShapeError as exc:
        raise InputError(f"coverage: {exc}") from None
    except ValueError:
        raise InputError("coverage has a coordinate that is not a number") from None
