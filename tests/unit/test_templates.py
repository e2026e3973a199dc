"""The template catalogue renders safely: sandboxed, strict, and drill texts carry the marker."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broadcaster.cli.check import _check_templates
from broadcaster.errors import TemplateError
from broadcaster.settings import PROJECT_ROOT, Settings
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


def test_the_shipped_templates_read_only_what_the_catalogue_declares(
    catalogue: TemplateCatalogue,
) -> None:
    """`check` fails on any finding here; the names a template sets itself (`sender`, set in
    each branch of an `if`) are its own, not read from the caller."""
    assert catalogue.undeclared() == []


def _copy(tmp_path: Path) -> Path:
    copy = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", copy)
    return copy


def test_a_typo_in_a_template_is_named_as_the_templates_not_the_operators(
    tmp_path: Path,
) -> None:
    """`{{ fallback_nunber }}` in outage.en.j2: the render said "pass it with --var", and
    `--var fallback_nunber=...` was refused (no such variable): a circle at 3 a.m. Now `check`
    finds it, and the render says whose mistake it is."""
    copy = _copy(tmp_path)
    path = copy / "outage.en.j2"
    path.write_text(path.read_text().replace("{{ fallback_number }}", "{{ fallback_nunber }}"))
    (copy / "update.es.j2").unlink()
    typo = TemplateCatalogue(copy)
    problems = typo.undeclared()
    assert problems == [
        "outage.en.j2 reads {{ fallback_nunber }}, which catalogue.toml does not declare for "
        "'outage' (it takes details, fallback_number, prefecture): a typo in the template? "
        "--var cannot give it; fix the template or declare it in the catalogue",
        f"update.es.j2 is missing in {copy}",
    ]
    with pytest.raises(TemplateError) as refused:
        typo.render(typo.scenario("outage"), "en", AREA)
    assert str(refused.value) == problems[0]
    # The other languages, which read what is declared, still render.
    assert "01 99 00 93 00" in typo.render(typo.scenario("outage"), "fr", AREA)


def test_check_fails_on_a_template_that_reads_what_is_not_declared(tmp_path: Path) -> None:
    copy = _copy(tmp_path)
    path = copy / "drill.fr.j2"
    path.write_text(path.read_text().replace("{{ sender }}", "{{ sendr }}", 1))
    finding = _check_templates(Settings(templates_dir=copy))
    assert (finding.check, finding.status) == ("templates", "fail")
    assert "drill.fr.j2 reads {{ sendr }}" in finding.detail
    assert _check_templates(Settings()).status == "ok"  # the shipped ones
