"""Planning renders one text per (département, language) group and refuses what must not go."""

from __future__ import annotations

from dataclasses import replace
from typing import cast

import pytest

from broadcaster.commands.planning import plan_as_json
from broadcaster.errors import InputError, TemplateError
from broadcaster.planning import Plan, plan_broadcast
from broadcaster.settings import PROJECT_ROOT
from broadcaster.targeting import AreaIndex, Departement, parse_area, resolve_target
from broadcaster.text.encoding import decode_parts
from broadcaster.text.templates import TemplateCatalogue

INDEX = AreaIndex(
    departements={
        "75": Departement("75", "Paris", "11"),
        "93": Departement("93", "Seine-Saint-Denis", "11"),
    }
)
AREA_VARS = {
    "75": {"prefecture": "Paris", "fallback_number": "01 99 00 75 00"},
    "93": {"prefecture": "Bobigny", "fallback_number": "01 99 00 93 00"},
}
CATALOGUE = TemplateCatalogue(PROJECT_ROOT / "templates")


def _plan(
    counts: dict[tuple[str, str], int],
    variables: dict[str, str] | None = None,
    template: str = "outage",
    max_parts: int = 3,
    gsm_safe: bool = False,
) -> object:
    return plan_broadcast(
        catalogue=CATALOGUE,
        scenario=CATALOGUE.scenario(template),
        target=resolve_target([parse_area("region:11")], INDEX),
        index=INDEX,
        counts=counts,
        area_variables=AREA_VARS,
        variables=variables or {},
        max_parts=max_parts,
        gsm_safe=gsm_safe,
    )


def test_groups_per_departement_and_language_with_fallback() -> None:
    plan = plan_broadcast(
        catalogue=CATALOGUE,
        scenario=CATALOGUE.scenario("update"),
        target=resolve_target([parse_area("region:11")], INDEX),
        index=INDEX,
        counts={("75", "fr"): 10, ("75", "de"): 2, ("75", "en"): 3, ("93", "fr"): 5},
        area_variables=AREA_VARS,
        variables={"instruction": "Restez chez vous."},
        max_parts=3,
    )
    keys = [(g.departement, g.language, g.recipients) for g in plan.groups]
    # "update" has no German text: German speakers get the area's default (French).
    assert keys == [("75", "en", 3), ("75", "fr", 12), ("93", "fr", 5)]
    assert plan.language_of[("75", "de")] == plan.language_of[("75", "fr")]
    assert plan.recipients == 20
    fr75 = plan.groups[1]
    assert "01 99 00 75 00" in fr75.text and "Restez chez vous." in fr75.text
    assert decode_parts(fr75.message) == fr75.text
    assert plan.parts == sum(g.message.part_count * g.recipients for g in plan.groups)


def test_arabic_goes_ucs2_without_a_transliteration_warning() -> None:
    plan = plan_broadcast(
        catalogue=CATALOGUE,
        scenario=CATALOGUE.scenario("outage"),
        target=resolve_target([parse_area("dep:93")], INDEX),
        index=INDEX,
        counts={("93", "ar"): 4},
        area_variables=AREA_VARS,
        variables={},
        max_parts=3,
    )
    assert plan.groups[0].message.encoding == "ucs2"
    assert plan.warnings == ()


def test_one_non_gsm_character_warns_and_gsm_safe_halves_the_parts() -> None:
    counts = {("75", "fr"): 1}
    plan = plan_broadcast(
        catalogue=CATALOGUE,
        scenario=CATALOGUE.scenario("outage"),
        target=resolve_target([parse_area("dep:75")], INDEX),
        index=INDEX,
        counts=counts,
        area_variables=AREA_VARS,
        variables={"details": "Fenêtres fermées."},
        max_parts=3,
    )
    assert plan.groups[0].message.encoding == "ucs2"
    assert any("'ê'" in w for w in plan.warnings)
    safe = plan_broadcast(
        catalogue=CATALOGUE,
        scenario=CATALOGUE.scenario("outage"),
        target=resolve_target([parse_area("dep:75")], INDEX),
        index=INDEX,
        counts=counts,
        area_variables=AREA_VARS,
        variables={"details": "Fenêtres fermées."},
        max_parts=3,
        gsm_safe=True,
    )
    assert safe.groups[0].message.encoding == "gsm7"
    assert "Fenetres" in safe.groups[0].text
    assert safe.groups[0].message.part_count < plan.groups[0].message.part_count


def test_text_over_the_parts_limit_is_refused_before_sending() -> None:
    with pytest.raises(InputError, match="parts"):
        _plan({("75", "fr"): 1}, {"details": "x" * 490}, max_parts=2)


def test_missing_variable_and_empty_target_are_refused() -> None:
    with pytest.raises(TemplateError, match="instruction"):
        _plan({("75", "fr"): 1}, template="update")
    with pytest.raises(InputError, match="no subscriber"):
        _plan({})


def test_an_expiry_before_the_eta_is_said_in_the_preview() -> None:
    """`--expires-in 5s` over a 35 s send was taken without a word, and most recipients were
    never sent to: the preview says how much would never be sent."""
    plan = cast(Plan, _plan({("75", "fr"): 3500}))
    parts = plan.parts
    assert parts > 0
    short = replace(plan, expires_in_s=5.0)
    (note,) = short.expiry_notes(parts / 35)  # an ETA of 35 s
    assert note.startswith("it expires 5 s after it is created, before its ETA of 35 s")
    assert "about 86% of its parts would never be sent" in note and "--expires-in" in note
    assert plan_as_json(short, parts / 35)["warnings"][-1] == note
    assert replace(plan, expires_in_s=35.0).expiry_notes(parts / 35) == []
    assert short.expiry_notes(0) == []  # no contracted rate: no ETA to compare with
    assert plan.expiry_notes(parts / 35) == []  # no expiry known
