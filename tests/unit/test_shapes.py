"""Shapes and cell lines checked before any database sees them (pure)."""

from __future__ import annotations

import pytest

from broadcaster.domain.cells import check_header, parse_cell
from broadcaster.domain.shapes import Circle, ShapeError, parse_circle, parse_polygon
from broadcaster.errors import InputError
from broadcaster.targeting import parse_area

SQUARE = "48.85,2.34 48.85,2.36 48.86,2.36 48.86,2.34 48.85,2.34"


def test_inline_and_geojson_polygons_are_the_same_ring() -> None:
    inline = parse_polygon(SQUARE)
    geojson = parse_polygon(
        '{"type": "Feature", "geometry": {"type": "Polygon", "coordinates": '
        "[[[2.34, 48.85], [2.36, 48.85], [2.36, 48.86], [2.34, 48.86], [2.34, 48.85]]]}}"
    )
    assert inline == geojson
    assert inline.wkt().startswith("POLYGON((2.34 48.85, 2.36 48.85")


def test_a_circle() -> None:
    assert parse_circle("48.85,2.35,5") == Circle(48.85, 2.35, 5.0)
    assert parse_circle("48.85,2.35 5") == Circle(48.85, 2.35, 5.0)  # CAP's form


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("48.85,2.34 48.85,2.36 48.86,2.36 48.86,2.34", "not closed"),
        ("48.85,2.34 48.86,2.36 48.85,2.36 48.86,2.34 48.85,2.34", "crosses itself"),
        ("48.85,2.34 48.85,2.36 48.85,2.35 48.85,2.34", "crosses itself|no area"),
        ("48.85,2.34 48.85,2.36 48.85,2.34", "at least 3"),
        ("148.85,2.34 148.85,2.36 148.86,2.36 148.85,2.34", "swapped"),
        ("48.85,2.34 48.85,192.36 48.86,2.36 48.85,2.34", "longitude 192.36"),
        ("48.85;2.34 48.85", "not LAT,LON"),
        ("48.85,abc 1,2 3,4 48.85,abc", "not a number"),
        ('{"type": "Point", "coordinates": [2, 48]}', "must be a Polygon"),
        ("{not json", "not valid GeoJSON"),
    ],
)
def test_bad_polygons(text: str, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        parse_polygon(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("48.85,2.35,0", "above 0"),
        ("48.85,2.35,-3", "above 0"),
        ("48.85,2.35,500.1", "at most 500"),
        ("95,2.35,5", "latitude 95"),
        ("48.85,2.35", "LAT,LON,RADIUS_KM"),
        ("48.85,2.35,nan", "finite"),
    ],
)
def test_bad_circles(text: str, message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        parse_circle(text)


def test_area_references_accept_shapes() -> None:
    ref = parse_area(f"polygon:{SQUARE}")
    assert ref.is_shape and ref.shape() == parse_polygon(SQUARE)
    assert parse_area("circle:48.85,2.35,5").shape() == Circle(48.85, 2.35, 5.0)
    with pytest.raises(InputError, match="radius"):
        parse_area("circle:48.85,2.35,0")


def test_cell_lines() -> None:
    check_header(["cell_id", "technology", "lat", "lon", "azimuth", "beam", "range_m"])
    check_header(["cell_id", "technology", "lat", "lon", "coverage"])
    with pytest.raises(InputError, match="either"):
        check_header(["cell_id", "technology", "lat", "lon", "azimuth"])
    row = {"cell_id": "A1", "technology": "4g", "lat": "48.8", "lon": "2.3", "azimuth": "120",
           "beam": "65", "range_m": "1500"}  # fmt: skip
    cell = parse_cell(row)
    assert (cell.technology, cell.coverage, cell.departement) == ("4G", None, None)
    given = parse_cell({**row, "coverage": "POLYGON((2.3 48.8, 2.31 48.8, 2.31 48.81, 2.3 48.8))"})
    assert given.coverage == "POLYGON((2.3 48.8, 2.31 48.8, 2.31 48.81, 2.3 48.8))"
    for bad, message in [
        ({"azimuth": "360"}, "azimuth"),
        ({"beam": "0"}, "beam"),
        ({"range_m": "200000"}, "range_m"),
        ({"technology": "6G"}, "technology"),
        ({"cell_id": "bad id!"}, "cell id"),
        ({"lat": "95"}, "out of range"),
        ({"coverage": "POLYGON((2.3 48.8, 2.31 48.8, 2.31 48.81, 2.3 48.81))"}, "not closed"),
        ({"departement": "99X"}, "département"),
    ]:
        with pytest.raises(InputError, match=message):
            parse_cell({**row, **bad})
