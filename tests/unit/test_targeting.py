"""Area references resolve to per-département selections; unknown areas are refused."""

from __future__ import annotations

import pytest

from broadcaster.errors import UnknownAreaError
from broadcaster.targeting import (
    AreaIndex,
    AreaRef,
    Departement,
    commune_departement,
    parse_area,
    resolve_target,
)

INDEX = AreaIndex(
    departements={
        "75": Departement("75", "Paris", "11"),
        "92": Departement("92", "Hauts-de-Seine", "11"),
        "13": Departement("13", "Bouches-du-Rhône", "93"),
        "2A": Departement("2A", "Corse-du-Sud", "94"),
        "971": Departement("971", "Guadeloupe", "01"),
    }
)


def test_parse_area_forms() -> None:
    assert parse_area("dep:75") == AreaRef("dep", "75")
    assert parse_area("Departement:2a") == AreaRef("dep", "2A")
    assert parse_area("region:11") == AreaRef("region", "11")
    assert parse_area("commune:75056") == AreaRef("commune", "75056")


@pytest.mark.parametrize("spec", ["75", "dep:", "city:75", "commune:7505", "commune:ABCDE"])
def test_parse_area_rejects_bad_forms(spec: str) -> None:
    with pytest.raises(UnknownAreaError):
        parse_area(spec)


def test_commune_departement() -> None:
    assert commune_departement("97105") == "971"
    assert commune_departement("2A004") == "2A"
    assert commune_departement("75056") == "75"


def test_region_expands_to_its_departements() -> None:
    target = resolve_target([parse_area("region:11")], INDEX)
    assert dict(target.departements) == {"75": None, "92": None}


def test_whole_departement_absorbs_its_communes() -> None:
    target = resolve_target([parse_area("commune:75056"), parse_area("dep:75")], INDEX)
    assert dict(target.departements) == {"75": None}
    target = resolve_target([parse_area("dep:75"), parse_area("commune:75056")], INDEX)
    assert dict(target.departements) == {"75": None}


def test_communes_accumulate_and_exclusions_apply() -> None:
    target = resolve_target(
        [parse_area("commune:13055"), parse_area("commune:13001"), parse_area("region:11")],
        INDEX,
        exclude=[parse_area("commune:13001"), parse_area("dep:92")],
    )
    assert dict(target.departements) == {"13": frozenset({"13055"}), "75": None}


@pytest.mark.parametrize("spec", ["dep:99", "region:42", "commune:99001"])
def test_unknown_areas_are_refused_with_a_hint(spec: str) -> None:
    with pytest.raises(UnknownAreaError, match="unknown|no known"):
        resolve_target([parse_area(spec)], INDEX)


def test_empty_target_is_refused() -> None:
    with pytest.raises(UnknownAreaError, match="empty"):
        resolve_target([parse_area("dep:75")], INDEX, exclude=[parse_area("dep:75")])
