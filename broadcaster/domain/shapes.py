"""Shapes an authority draws (a polygon, a circle), parsed and checked before any database sees
them (pure): a ring that is open or crosses itself, a latitude out of range (often lat and lon
swapped), a radius of zero or of a whole country are refused with a sentence saying what to fix.

Forms: `circle:LAT,LON,RADIUS_KM`; `polygon:LAT,LON LAT,LON ...` (CAP 1.2's order: latitude
first, the ring closed by repeating the first point), or `polygon:` followed by a GeoJSON Polygon
(or a Feature holding one; GeoJSON's order is lon,lat). The CLI turns `polygon:FILE` into the
file's GeoJSON.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any

from broadcaster.errors import InputError

MAX_RADIUS_KM = 500.0
"""A circle wider than this is a country, not an incident: name départements or regions."""
MAX_POINTS = 20_000

Point = tuple[float, float]  # (lat, lon)


class ShapeError(InputError):
    """A polygon or circle that cannot be targeted as given (code `bad_shape`)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="bad_shape")


@dataclass(frozen=True)
class Circle:
    lat: float
    lon: float
    radius_km: float

    def describe(self) -> str:
        return f"circle {self.lat:g},{self.lon:g} r={self.radius_km:g} km"


@dataclass(frozen=True)
class Polygon:
    ring: tuple[Point, ...]
    """Closed: the last point repeats the first."""

    def wkt(self) -> str:
        return "POLYGON((" + ", ".join(f"{lon!r} {lat!r}" for lat, lon in self.ring) + "))"

    def describe(self) -> str:
        return f"polygon of {len(self.ring) - 1} points"


Shape = Circle | Polygon


def parse_circle(text: str) -> Circle:
    """`LAT,LON,RADIUS_KM` (CAP's `lat,lon radius` is accepted too)."""
    fields = text.replace(" ", ",").split(",")
    fields = [f for f in fields if f.strip()]
    if len(fields) != 3:
        raise ShapeError(f"circle {text!r} is not LAT,LON,RADIUS_KM (e.g. circle:48.85,2.35,5)")
    lat, lon, radius = (_number(f, "circle") for f in fields)
    _check_point(lat, lon, "the circle's centre")
    if not 0 < radius <= MAX_RADIUS_KM:
        raise ShapeError(
            f"the circle's radius must be above 0 and at most {MAX_RADIUS_KM:g} km, not "
            f"{radius:g} km"
        )
    return Circle(lat, lon, radius)


def parse_polygon(text: str) -> Polygon:
    """An inline `LAT,LON LAT,LON ...` ring, or a GeoJSON Polygon; checked (see module)."""
    stripped = text.strip()
    ring = _geojson_ring(stripped) if stripped.startswith("{") else _inline_ring(stripped)
    return check_ring(ring)


def check_ring(ring: list[Point]) -> Polygon:
    """A closed, simple ring of valid WGS84 points, else a ShapeError."""
    if len(ring) > MAX_POINTS:
        raise ShapeError(f"the polygon has {len(ring)} points; at most {MAX_POINTS} are accepted")
    for n, (lat, lon) in enumerate(ring, 1):
        _check_point(lat, lon, f"point {n} of the polygon")
    if len(ring) < 4:
        raise ShapeError(
            f"a polygon needs at least 3 distinct points and the first repeated at the end "
            f"(a closed ring); got {len(ring)} point(s)"
        )
    if ring[0] != ring[-1]:
        raise ShapeError(
            f"the polygon is not closed: its last point {_fmt(ring[-1])} must repeat its first "
            f"{_fmt(ring[0])} (CAP 1.2 and GeoJSON both require a closed ring)"
        )
    crossing = _self_intersection(ring)
    if crossing is not None:
        i, j = crossing
        raise ShapeError(
            f"the polygon crosses itself (edge {i + 1} meets edge {j + 1}): a self-intersecting "
            "shape has no clear inside; redraw it so that its edges do not cross"
        )
    if abs(_signed_area(ring)) < 1e-12:
        raise ShapeError("the polygon has no area (all its points are on one line)")
    return Polygon(tuple(ring))


def _inline_ring(text: str) -> list[Point]:
    ring: list[Point] = []
    for pair in text.replace(";", " ").split():
        lat_text, sep, lon_text = pair.partition(",")
        if not sep or "," in lon_text:
            raise ShapeError(
                f"polygon point {pair!r} is not LAT,LON (points are separated by spaces: "
                "polygon:48.80,2.25 48.90,2.25 48.90,2.42 48.80,2.25)"
            )
        ring.append((_number(lat_text, "polygon"), _number(lon_text, "polygon")))
    return ring


def _geojson_ring(text: str) -> list[Point]:
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise ShapeError(f"the polygon is not valid GeoJSON: {exc}") from exc
    if isinstance(data, dict) and data.get("type") == "FeatureCollection":
        features = data.get("features") or []
        if len(features) != 1:
            raise ShapeError("a GeoJSON FeatureCollection must hold exactly one polygon")
        data = features[0]
    if isinstance(data, dict) and data.get("type") == "Feature":
        data = data.get("geometry")
    if not isinstance(data, dict) or data.get("type") != "Polygon":
        raise ShapeError("the GeoJSON must be a Polygon (or a Feature holding one)")
    rings = data.get("coordinates")
    if not isinstance(rings, list) or not rings or not isinstance(rings[0], list):
        raise ShapeError("the GeoJSON Polygon has no coordinates")
    if len(rings) > 1:
        raise ShapeError("polygons with holes are not accepted: exclude the hole as its own area")
    ring: list[Point] = []
    for position in rings[0]:
        if not isinstance(position, list) or len(position) < 2:
            raise ShapeError(f"GeoJSON position {position!r} is not [lon, lat]")
        ring.append((_number(position[1], "polygon"), _number(position[0], "polygon")))
    return ring


def _number(value: object, what: str) -> float:
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ShapeError(f"{what} coordinate {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ShapeError(f"{what} coordinate {value!r} is not a finite number")
    return number


def _check_point(lat: float, lon: float, what: str) -> None:
    if not -180 <= lon <= 180:
        raise ShapeError(f"{what}: longitude {lon:g} is out of range (-180 to 180)")
    if not -90 <= lat <= 90:
        hint = " (lat and lon swapped? points are LAT,LON)" if -90 <= lon <= 90 else ""
        raise ShapeError(f"{what}: latitude {lat:g} is out of range (-90 to 90){hint}")


def _fmt(point: Point) -> str:
    return f"{point[0]:g},{point[1]:g}"


def _signed_area(ring: list[Point]) -> float:
    return sum(a[1] * b[0] - b[1] * a[0] for a, b in itertools.pairwise(ring)) / 2


def _self_intersection(ring: list[Point]) -> tuple[int, int] | None:
    """The first pair of edges that meet other than at their shared corner, if any. A sweep
    over the edges sorted by their lowest latitude compares only edges whose latitude spans
    overlap: near-linear for real outlines (thousands of points), quadratic only at worst."""
    edges = list(itertools.pairwise(ring))
    n = len(edges)
    order = sorted(range(n), key=lambda k: min(edges[k][0][0], edges[k][1][0]))
    for a, i in enumerate(order):
        top = max(edges[i][0][0], edges[i][1][0])
        for j in order[a + 1 :]:
            if min(edges[j][0][0], edges[j][1][0]) > top:
                break
            first, second = min(i, j), max(i, j)
            if second == first + 1 or (first == 0 and second == n - 1):
                if _overlap_adjacent(edges[first], edges[second]):
                    return first, second
            elif _segments_meet(*edges[first], *edges[second]):
                return first, second
    return None


def _orientation(p: Point, q: Point, r: Point) -> float:
    return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])


def _on_segment(p: Point, q: Point, r: Point) -> bool:
    """r on segment pq, given the three are collinear."""
    return min(p[0], q[0]) <= r[0] <= max(p[0], q[0]) and min(p[1], q[1]) <= r[1] <= max(p[1], q[1])


def _segments_meet(a: Point, b: Point, c: Point, d: Point) -> bool:
    o1, o2 = _orientation(a, b, c), _orientation(a, b, d)
    o3, o4 = _orientation(c, d, a), _orientation(c, d, b)
    if ((o1 > 0 > o2) or (o1 < 0 < o2)) and ((o3 > 0 > o4) or (o3 < 0 < o4)):
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def _overlap_adjacent(e: tuple[Point, Point], f: tuple[Point, Point]) -> bool:
    """Adjacent edges share a point; they are faulty only if they fold back onto each other."""
    shared = set(e) & set(f)
    if not shared:
        return False
    (s,) = shared if len(shared) == 1 else (next(iter(shared)),)
    a = e[0] if e[1] == s else e[1]
    b = f[0] if f[1] == s else f[1]
    if _orientation(s, a, b) != 0:
        return False
    # Collinear: folding back when a and b lie on the same side of s.
    return (a[0] - s[0]) * (b[0] - s[0]) + (a[1] - s[1]) * (b[1] - s[1]) > 0
