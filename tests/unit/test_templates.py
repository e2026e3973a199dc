"""The template catalogue renders safely: sandboxed, strict, and drill texts carry the marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.errors import TemplateError
from broadcaster.settings import PROJECT_ROOT
from broadcaster.text.templates import TemplateCatalogue

AREA = {"prefecture": "Bobigny", "fallback_number": "01 99 00 93 00", "departement_name": "X"}


@pytest.fixture
def catalogue() -> TemplateCatalogue:
    return TemplateCatalogue(PROJECT_ROOT / "templates")


def test_every_scenario_renders_in_every_language(catalogue: TemplateCatalogue) -> None:
    for scenario in catalogue.scenarios.values():
        for lang in scenario.languages:
            text = catalogue.render(scenario, lang, {**AREA, "instruction": "Restez chez vous."})
            assert "{" not in text
            if "fallback_number" in scenario.requires:
                assert "01 99 00 93 00" in text


def test_outage_fr_names_the_prefecture_and_number(catalogue: TemplateCatalogue) -> None:
    text = catalogue.render(catalogue.scenario("outage"), "fr", AREA)
    assert text.startswith("Préfecture de Bobigny:")
    assert "01 99 00 93 00" in text


def test_missing_variable_is_named(catalogue: TemplateCatalogue) -> None:
    with pytest.raises(TemplateError, match="instruction"):
        catalogue.render(catalogue.scenario("update"), "fr", AREA)


def test_unknown_template_lists_known_ones(catalogue: TemplateCatalogue) -> None:
    with pytest.raises(TemplateError, match="outage"):
        catalogue.scenario("nope")


@pytest.mark.parametrize(
    "name",
    ["evil", "__class__", "Fallback"],
)
def test_operator_variables_must_be_declared(catalogue: TemplateCatalogue, name: str) -> None:
    with pytest.raises(TemplateError):
        catalogue.check_variables(catalogue.scenario("outage"), {name: "x"})


@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% for x in range(10**9) %}x{% endfor %}",
        "{{ config }}",
        "{{ self.__init__.__globals__ }}",
    ],
)
def test_injection_payloads_are_inert_as_values(catalogue: TemplateCatalogue, payload: str) -> None:
    """A variable's value is data: Jinja syntax in it is printed, never evaluated."""
    text = catalogue.render(catalogue.scenario("outage"), "fr", {**AREA, "details": payload})
    assert payload in text


def test_sandbox_refuses_unsafe_template_code(tmp_path: Path) -> None:
    (tmp_path / "catalogue.toml").write_text(
        '[evil]\ndescription = "x"\nrequires = []\nlanguages = ["fr"]\n', encoding="utf-8"
    )
    (tmp_path / "evil.fr.j2").write_text(
        "{{ ''.__class__.__mro__[1].__subclasses__() }}", encoding="utf-8"
    )
    catalogue = TemplateCatalogue(tmp_path)
    with pytest.raises(TemplateError, match=r"refused|unsafe|failed"):
        catalogue.render(catalogue.scenario("evil"), "fr", {})


def test_drill_without_marker_is_refused(tmp_path: Path) -> None:
    (tmp_path / "catalogue.toml").write_text(
        '[drill]\ndescription = "x"\nrequires = []\nlanguages = ["fr"]\nkind = "drill"\n',
        encoding="utf-8",
    )
    (tmp_path / "drill.fr.j2").write_text("Ceci est un test.", encoding="utf-8")
    catalogue = TemplateCatalogue(tmp_path)
    with pytest.raises(TemplateError, match="EXERCICE"):
        catalogue.render(catalogue.scenario("drill"), "fr", {})


def test_language_fallback(catalogue: TemplateCatalogue) -> None:
    drill = catalogue.scenario("drill")
    assert catalogue.language_for(drill, "en", "fr") == "en"
    assert catalogue.language_for(drill, "ar", "fr") == "fr"
