"""Area references resolve to per-département selections; unknown areas are refused."""

from __future__ import annotations

import pytest

from broadcaster.domain.variables import VariableSpec
from broadcaster.errors import InputError, UnknownAreaError
from broadcaster.store.areas import validate_area_variable
from broadcaster.targeting import (
    AreaIndex,
    AreaRef,
    Departement,
    Selection,
    Target,
    cells_named,
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
    with pytest.raises(UnknownAreaError, match=r"unknown|no known"):
        resolve_target([parse_area(spec)], INDEX)


def test_empty_target_is_refused() -> None:
    with pytest.raises(UnknownAreaError, match="the target is empty; name at least one area"):
        resolve_target([], INDEX)


def test_exclusions_that_remove_everything_say_so() -> None:
    with pytest.raises(InputError, match="the exclusions remove every area of the target"):
        resolve_target([parse_area("dep:75")], INDEX, exclude=[parse_area("dep:75")])


# --- cells, exclusions and selections ------------------------------------------------------------

CELL_INDEX = AreaIndex(
    departements=INDEX.departements,
    cell_departements={
        "C75001": frozenset({"75"}),
        "Border-9": frozenset({"75", "92"}),
        "c13a": frozenset({"13"}),
    },
)


def test_parse_cell_keeps_its_case() -> None:
    assert parse_area("cell:Border-9") == AreaRef("cell", "Border-9")
    assert parse_area("cell: c13a ") == AreaRef("cell", "c13a")
    assert parse_area("cell:ECGI:208-01-1") == AreaRef("cell", "ECGI:208-01-1")


@pytest.mark.parametrize("spec", ["cell:", "cell:a b", "cell:" + "x" * 33, "cell:C75;DROP"])
def test_parse_cell_rejects_bad_ids(spec: str) -> None:
    with pytest.raises(UnknownAreaError):
        parse_area(spec)


def test_cells_named() -> None:
    refs = [parse_area(s) for s in ("dep:75", "cell:B", "cell:A", "cell:B")]
    assert cells_named(refs) == ["A", "B"]


def test_a_cell_reaches_every_departement_it_serves() -> None:
    target = resolve_target([parse_area("cell:Border-9")], CELL_INDEX)
    assert dict(target.departements) == {"75": frozenset(), "92": frozenset()}
    assert dict(target.cells) == {"75": {"Border-9"}, "92": {"Border-9"}}
    assert target.selection("92") == Selection(frozenset(), frozenset({"Border-9"}))
    assert not target.simple


def test_cells_and_communes_unite_within_a_departement() -> None:
    target = resolve_target([parse_area("commune:13055"), parse_area("cell:c13a")], CELL_INDEX)
    sel = target.selection("13")
    assert sel.communes == frozenset({"13055"})
    assert sel.cells == frozenset({"c13a"})
    assert sel.columns() == (["13055"], ["c13a"], None, None)


def test_whole_departement_absorbs_cells() -> None:
    target = resolve_target([parse_area("cell:C75001"), parse_area("region:11")], CELL_INDEX)
    assert target.selection("75") == Selection(None)
    assert target.simple


def test_unknown_cell_is_refused_with_what_to_do() -> None:
    with pytest.raises(UnknownAreaError, match=r"no subscriber is in cell 'C99'.*areas"):
        resolve_target([parse_area("cell:C99")], CELL_INDEX)
    with pytest.raises(UnknownAreaError, match="C99"):
        resolve_target([parse_area("dep:75")], CELL_INDEX, exclude=[parse_area("cell:C99")])


def test_exclusions_from_a_whole_departement() -> None:
    target = resolve_target(
        [parse_area("region:11")],
        CELL_INDEX,
        exclude=[parse_area("commune:75056"), parse_area("cell:Border-9")],
    )
    assert target.selection("75") == Selection(
        None, exclude_communes=frozenset({"75056"}), exclude_cells=frozenset({"Border-9"})
    )
    assert target.selection("92") == Selection(None, exclude_cells=frozenset({"Border-9"}))
    assert target.selection("75").columns() == (None, None, ["75056"], ["Border-9"])
    assert target.describe() == ["75 (all except 75056, Border-9)", "92 (all except Border-9)"]


def test_exclusion_order_does_not_matter_and_exclusions_win() -> None:
    include = [parse_area("commune:13055"), parse_area("cell:c13a"), parse_area("dep:75")]
    exclude = [parse_area("cell:c13a"), parse_area("commune:13001")]
    target = resolve_target(include, CELL_INDEX, exclude=exclude)
    reverse = resolve_target(list(reversed(include)), CELL_INDEX, exclude=exclude[::-1])
    assert target == reverse
    # The excluded cell is dropped from the choice and still excludes its subscribers who live
    # in the chosen commune; the excluded commune only mattered for subscribers chosen by cell.
    assert target.selection("13") == Selection(
        frozenset({"13055"}), exclude_cells=frozenset({"c13a"})
    )


def test_cross_exclusions_are_kept_where_they_matter() -> None:
    target = resolve_target(
        [parse_area("cell:c13a"), parse_area("commune:13055")],
        CELL_INDEX,
        exclude=[parse_area("commune:13001")],
    )
    sel = target.selection("13")
    # Subscribers of cell c13a who live in commune 13001 stay out.
    assert sel.exclude_communes == {"13001"}
    assert not sel.simple


def test_excluding_everything_chosen_in_a_departement_drops_it() -> None:
    target = resolve_target(
        [parse_area("cell:c13a"), parse_area("dep:75")],
        CELL_INDEX,
        exclude=[parse_area("cell:c13a")],
    )
    assert set(target.departements) == {"75"}
    with pytest.raises(InputError, match="the exclusions remove every area"):
        resolve_target([parse_area("cell:c13a")], CELL_INDEX, exclude=[parse_area("dep:13")])


def test_target_json_carries_cells_and_exclusions() -> None:
    target = resolve_target(
        [parse_area("cell:Border-9"), parse_area("dep:13")],
        CELL_INDEX,
        exclude=[parse_area("commune:13001")],
        test_group_only=True,
    )
    assert target.as_json() == {
        "departements": {"13": None, "75": [], "92": []},
        "test_group_only": True,
        "cells": {"75": ["Border-9"], "92": ["Border-9"]},
        "exclude_communes": {"13": ["13001"]},
        "exclude_cells": {},
    }


def test_a_target_is_made_of_its_selections() -> None:
    target = resolve_target(
        [parse_area("cell:Border-9"), parse_area("commune:13055"), parse_area("dep:75")],
        CELL_INDEX,
        exclude=[parse_area("commune:13001"), parse_area("cell:c13a")],
        test_group_only=True,
    )
    assert Target.of(dict(target.selections()), test_group_only=True) == target
    assert Target.of({"13": Selection(frozenset({"13055"}))}) == Target(
        {"13": frozenset({"13055"})}
    )


# --- area variables ------------------------------------------------------------------------------

KNOWN_NAMES = {
    "prefecture": VariableSpec("prefecture"),
    "fallback_number": VariableSpec("fallback_number", "phone"),
    "departement_name": VariableSpec("departement_name"),
    "details": VariableSpec("details", per_language=True),
}


def _validate(dep: str, name: str, value: str) -> tuple[str, str, str, tuple[str, ...]]:
    return validate_area_variable(dep, name, value, INDEX.departements, KNOWN_NAMES)


@pytest.mark.parametrize(
    "value", ["01 99 00 75 00", "0199007500", "01.99.00.75.00", "+33 1 99 00 75 00", "112", "3919"]
)
def test_fallback_numbers_accepted(value: str) -> None:
    assert _validate("75", "fallback_number", value)[2] == value


@pytest.mark.parametrize(
    "value", ["call 112", "01 99 00", "1234567890123456789", "+", "01-99-00-75-00x", "00 00"]
)
def test_fallback_numbers_refused_with_the_forms_to_use(value: str) -> None:
    with pytest.raises(InputError, match="not a phone number: use 10 digits"):
        _validate("75", "fallback_number", value)


def test_area_variable_is_normalised_and_checked() -> None:
    assert _validate("2a", "prefecture", "  Ajaccio  ") == ("2A", "prefecture", "Ajaccio", ())
    with pytest.raises(UnknownAreaError, match="unknown département '99'"):
        _validate("99", "prefecture", "X")
    with pytest.raises(InputError, match="name 'Prefecture' is invalid"):
        _validate("75", "Prefecture", "X")
    with pytest.raises(InputError, match="no template reads a variable 'prefect'"):
        _validate("75", "prefect", "X")
    with pytest.raises(InputError, match="empty"):
        _validate("75", "prefecture", "   ")
    with pytest.raises(InputError, match="limit is 160"):
        _validate("75", "prefecture", "x" * 161)
    with pytest.raises(InputError, match="control or invisible characters \\(U\\+000A\\)"):
        _validate("75", "prefecture", "Paris\n01 99")
    with pytest.raises(InputError, match="U\\+200B"):
        _validate("75", "prefecture", "Pa\u200bris")


def test_area_variable_outside_gsm_is_accepted_with_a_warning() -> None:
    _dep, _name, value, warnings = _validate("13", "prefecture", "Marseille – Préfecture")
    assert value == "Marseille – Préfecture"
    assert len(warnings) == 1
    assert "'–'" in warnings[0]
    assert "UCS-2" in warnings[0]
