"""Template variables (issue 18, items 2, 3, 8, 15), pure: one rule per variable from the
catalogue, refusing blank and invisible values; per-language values and the groups that get
another language's text; the plans a live send refuses (placeholders, texts in another
language) and the words a person reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from broadcaster import cap
from broadcaster.domain.variables import (
    VariableSpec,
    invisible_characters,
    is_fictional_number,
    resolve,
    split_key,
)
from broadcaster.errors import ConfigError, InputError, TemplateError
from broadcaster.planning import Plan, check_sendable, plan_broadcast
from broadcaster.settings import PROJECT_ROOT
from broadcaster.targeting import AreaIndex, Departement, parse_area, resolve_target
from broadcaster.text.templates import TemplateCatalogue

CATALOGUE = TemplateCatalogue(PROJECT_ROOT / "templates")
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
PHONE = VariableSpec("fallback_number", "phone")
TEXT = VariableSpec("prefecture")

# What slipped through before: blank values, a trailing newline, NEL, a right-to-left override,
# zero-width characters, and letters that show nothing.
INVISIBLE = {
    "trailing newline": ("Paris\n", "U+000A"),
    "NEL": ("Paris\u0085", "U+0085"),
    "right-to-left override": ("Paris \u202e00 57 00 99 10", "U+202E"),
    "zero-width space": ("Pa\u200bris", "U+200B"),
    "zero-width joiner": ("Pa\u200dris", "U+200D"),
    "byte order mark": ("\ufeffParis", "U+FEFF"),
    "line separator": ("Paris\u2028Lyon", "U+2028"),
    "Hangul filler": ("Paris \u3164", "U+3164"),
    "soft hyphen": ("Pa\u00adris", "U+00AD"),
}


def _plan(
    counts: dict[tuple[str, str], int],
    variables: dict[str, str] | None = None,
    template: str = "outage",
    placeholders: dict[str, frozenset[str]] | None = None,
) -> Plan:
    return plan_broadcast(
        catalogue=CATALOGUE,
        scenario=CATALOGUE.scenario(template),
        target=resolve_target([parse_area("region:11")], INDEX),
        index=INDEX,
        counts=counts,
        area_variables=AREA_VARS,
        variables=variables or {},
        max_parts=3,
        placeholders=placeholders,
    )


# -- one rule per variable --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["", " ", "\u00a0\u00a0", "\t"])
def test_a_blank_value_is_refused(value: str) -> None:
    with pytest.raises(InputError, match=r"value of prefecture (is empty|has control)"):
        TEXT.clean(value)


@pytest.mark.parametrize(("value", "code"), INVISIBLE.values(), ids=INVISIBLE.keys())
def test_control_and_invisible_characters_are_refused_and_named(value: str, code: str) -> None:
    with pytest.raises(InputError, match=re.escape(f"control or invisible characters ({code})")):
        TEXT.clean(value)
    assert invisible_characters(value) == [code]


@pytest.mark.parametrize("value", ["abc", "appelez le 15", "01 99 00", "+"])
def test_a_phone_variable_takes_phone_numbers_only(value: str) -> None:
    with pytest.raises(InputError, match="is not a phone number: use 10 digits"):
        PHONE.clean(value)


def test_a_value_is_normalised_and_its_limit_is_the_callers() -> None:
    assert PHONE.clean("  01 99  00 75 00 ") == "01 99 00 75 00"
    assert TEXT.clean("Lille\u00a0– Nord") == "Lille – Nord"  # a no-break space is a space
    assert len(TEXT.clean("x" * 500)) == 500
    with pytest.raises(InputError, match="501 characters long; the limit is 500"):
        TEXT.clean("x" * 501)
    with pytest.raises(InputError, match="the limit is 160"):
        TEXT.clean("x" * 161, limit=160)


def test_the_catalogue_declares_every_variable_its_templates_read() -> None:
    read = {name for s in CATALOGUE.scenarios.values() for name in s.names}
    assert read <= set(CATALOGUE.variables)
    assert CATALOGUE.spec("fallback_number").kind == "phone"
    assert CATALOGUE.per_language == {"instruction", "details"}
    assert CATALOGUE.variables_read()["fallback_number"] == CATALOGUE.spec("fallback_number")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('[variables.x]\nkind = "date"\n', "kind must be one of text, phone"),
        ("[variables.x]\nper_language = 1\n", "per_language must be true or false"),
        ('[variables.X]\nkind = "text"\n', "a name is lower-case letters"),
        ('variables = "x"\n', r"must hold \[variables.NAME\] tables"),
    ],
)
def test_a_malformed_variable_declaration_is_a_config_error(
    tmp_path: Path, table: str, message: str
) -> None:
    (tmp_path / "catalogue.toml").write_text(table, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        TemplateCatalogue(tmp_path)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"fallback_number": ""}, "the value of fallback_number is empty"),
        ({"fallback_number": "abc"}, "fallback_number 'abc' is not a phone number"),
        ({"prefecture": ""}, "the value of prefecture is empty"),
        ({"details": "Restez\u202e chez vous"}, r"invisible characters \(U\+202E\)"),
        ({"details.en": "\u200b"}, r"the value of details.en has control or invisible"),
        ({"fallback_number.en": "112"}, "fallback_number is the same in every language"),
        ({"details.it": "Restate a casa."}, "template 'outage' has no it text"),
        ({"details.EN": "x"}, "then .LANG for one language only"),
    ],
)
def test_operator_variables_follow_the_same_rules(variables: dict[str, str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        CATALOGUE.check_variables(CATALOGUE.scenario("outage"), variables)
    with pytest.raises(InputError, match=message):  # and planning, that every way in shares
        _plan({("75", "fr"): 1}, variables)


def test_keys_name_a_variable_and_maybe_one_language() -> None:
    assert split_key("instruction") == ("instruction", None)
    assert split_key("instruction.en") == ("instruction", "en")
    for bad in ("instruction.", "instruction.eng", ".en", "Instruction"):
        with pytest.raises(InputError, match="is invalid"):
            split_key(bad)


def test_fictional_numbers_are_the_reference_range() -> None:
    assert is_fictional_number("01 99 00 75 00")
    assert is_fictional_number("+33 1 99 00 20 01")
    assert is_fictional_number("+33 0 1 99 00 20 01")  # the trunk 0 kept (review of f211c14)
    assert not is_fictional_number("+33 0 1 99 01 20 01")
    assert not is_fictional_number("01 99 01 75 00")
    assert not is_fictional_number("112")


# -- per-language values ----------------------------------------------------------------------

PER_LANGUAGE = frozenset({"instruction"})


def test_each_language_gets_its_own_value_else_the_areas_language_and_says_so() -> None:
    operator = {"instruction": "Restez chez vous.", "instruction.en": "Stay at home."}
    area = {"prefecture": "Paris"}

    def of(language: str) -> tuple[str, dict[str, str]]:
        got = resolve(
            operator, area, language=language, area_language="fr", per_language=PER_LANGUAGE
        )
        return got.values["instruction"], got.written_in

    assert of("en") == ("Stay at home.", {})
    assert of("fr") == ("Restez chez vous.", {})
    assert of("es") == ("Restez chez vous.", {"instruction": "fr"})  # flagged


def test_the_operators_value_for_another_language_comes_last_and_in_order() -> None:
    got = resolve(
        {"instruction.en": "Hello", "instruction.de": "Hallo"},
        {"instruction": "Bonjour", "prefecture": "Paris"},
        language="es",
        area_language="fr",
        per_language=PER_LANGUAGE,
    )
    assert got.values == {"instruction": "Bonjour", "prefecture": "Paris"}
    assert got.written_in == {"instruction": "fr"}
    assert got.from_area == {"instruction", "prefecture"}
    alone = resolve(
        {"instruction.en": "Hello", "instruction.de": "Hallo"},
        {},
        language="es",
        area_language="fr",
        per_language=PER_LANGUAGE,
    )
    assert (alone.values, alone.written_in) == ({"instruction": "Hello"}, {"instruction": "en"})


def test_operator_values_override_the_areas() -> None:
    got = resolve(
        {"fallback_number": "112"},
        {"fallback_number": "01 99 00 75 00"},
        language="fr",
        area_language="fr",
        per_language=PER_LANGUAGE,
    )
    assert got.values == {"fallback_number": "112"}
    assert got.from_area == frozenset()


def test_the_preview_flags_every_group_in_another_language() -> None:
    """An English SMS with a French instruction, German speakers getting French: both are
    flagged; and only the English group gets the English instruction."""
    plan = _plan(
        {("75", "fr"): 10, ("75", "en"): 3, ("75", "es"): 2, ("75", "de"): 4},
        {"instruction": "Restez chez vous.", "instruction.en": "Stay at home."},
        template="update",
    )
    texts = {g.language: g.text for g in plan.groups}
    assert "Stay at home." in texts["en"] and "Restez" not in texts["en"]
    assert "Restez chez vous." in texts["fr"] and "Restez chez vous." in texts["es"]
    groups = {g.language: g for g in plan.groups}
    assert groups["fr"].fallback_for == (("de", 4),)
    assert groups["es"].written_in == (("instruction", "fr"),)
    assert not groups["en"].in_other_languages
    assert plan.language_notes() == [
        "template update has no de text: 4 recipient(s) who read de (in 75) get the fr one",
        "instruction, written in fr, goes into the es text of 75: give --var instruction.es=...",
    ]
    assert set(plan.language_notes()) <= set(plan.warnings)


def test_a_live_send_with_such_groups_needs_the_explicit_flag() -> None:
    plan = _plan({("75", "fr"): 10, ("75", "de"): 4}, {"instruction": "X."}, template="update")
    with pytest.raises(InputError, match="--allow-language-fallback") as refused:
        check_sendable(plan, kind="live", allow_language_fallback=False)
    assert refused.value.code == "language_fallback"
    assert "1 group(s)" in str(refused.value) and "has no de text" in str(refused.value)
    check_sendable(plan, kind="live", allow_language_fallback=True)
    check_sendable(plan, kind="drill", allow_language_fallback=False)
    clean = _plan(
        {("75", "fr"): 10, ("75", "en"): 1},
        {"instruction": "X.", "instruction.en": "Y."},
        template="update",
    )
    assert clean.language_notes() == []
    check_sendable(clean, kind="live", allow_language_fallback=False)


def test_a_cap_alert_gives_its_french_text_first_and_allows_the_fallback() -> None:
    infos = "".join(
        f"<info><language>{lang}</language><category>Safety</category><event>e</event>"
        "<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>"
        f"<instruction>{text}</instruction><area><areaDesc>Paris</areaDesc><geocode>"
        "<valueName>DEPARTEMENT</valueName><value>75</value></geocode></area></info>"
        for lang, text in (("en-GB", "Stay in."), ("fr-FR", "Restez chez vous."))
    )
    xml = (
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>id-1</identifier>'
        "<sender>prefecture@example.fr</sender><sent>2024-06-20T10:00:00+02:00</sent>"
        "<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>"
        f"{infos}</alert>"
    )
    request, _ = cap.to_request(
        cap.parse(xml.encode()), languages=("fr", "en", "es"), created_by="x"
    )
    assert list(request.variables) == ["instruction.fr", "instruction.en"]
    assert request.allow_language_fallback
    plan = _plan(
        {("75", "fr"): 1, ("75", "en"): 1, ("75", "es"): 1}, dict(request.variables), "cap"
    )
    texts = {g.language: g.text for g in plan.groups}
    assert texts == {"fr": "Restez chez vous.", "en": "Stay in.", "es": "Restez chez vous."}
    assert plan.language_notes() == [
        "instruction, written in fr, goes into the es text of 75: give --var instruction.es=..."
    ]


# -- reference placeholders -------------------------------------------------------------------


def test_a_live_plan_carrying_a_placeholder_is_refused_naming_the_areas() -> None:
    placeholders = {"75": frozenset({"fallback_number"}), "93": frozenset({"fallback_number"})}
    plan = _plan({("75", "fr"): 2, ("93", "fr"): 1}, placeholders=placeholders)
    assert plan.placeholders == {"fallback_number": ("75", "93")}
    assert any("placeholder" in w for w in plan.warnings)  # the preview says it
    with pytest.raises(InputError) as refused:
        check_sendable(plan, kind="live", allow_language_fallback=True)
    message = str(refused.value)
    assert refused.value.code == "placeholder_variables"
    assert "the fallback_number of 75, 93 is still the reference placeholder" in message
    assert "`broadcaster areas set-var DEP fallback_number VALUE`" in message
    assert "--var fallback_number=VALUE" in message and "nothing was sent" in message


def test_a_value_the_operator_gives_is_no_placeholder_and_drills_may_use_them() -> None:
    placeholders = {"75": frozenset({"fallback_number"})}
    given = _plan({("75", "fr"): 2}, {"fallback_number": "112"}, placeholders=placeholders)
    assert given.placeholders == {}
    check_sendable(given, kind="live", allow_language_fallback=False)
    drill = _plan({("75", "fr"): 2}, template="drill", placeholders=placeholders)
    assert drill.placeholders == {}  # a drill's text has no fallback number
    plan = _plan({("75", "fr"): 2}, placeholders=placeholders)
    check_sendable(plan, kind="drill", allow_language_fallback=False)


def test_a_placeholder_the_template_does_not_read_is_no_reason_to_refuse() -> None:
    placeholders = {"75": frozenset({"departement_name"})}
    plan = _plan({("75", "fr"): 2}, placeholders=placeholders)
    assert plan.placeholders == {}


def test_templates_refuse_the_old_per_language_names() -> None:
    with pytest.raises(TemplateError, match="has no variable 'instruction_en'"):
        CATALOGUE.check_variables(CATALOGUE.scenario("cap"), {"instruction_en": "x"})


# -- a fictional number the operator gives ------------------------------------------------------


@pytest.mark.parametrize(
    "value", ["01 99 00 75 00", "0199007512", "+33 1 99 00 13 00", "+33 0 1 99 00 13 00"]
)
def test_a_live_plan_with_a_fictional_number_given_is_refused(value: str) -> None:
    """The reference data's placeholders are refused as area values; the same number typed
    with --var (copied from a rehearsal script) would send the public to a line nobody
    answers: refused too, in the preview's words and the refusal's."""
    plan = _plan({("75", "fr"): 2}, {"fallback_number": value})
    assert dict(plan.fictional) == {"fallback_number": value}
    assert any("reserved for fiction" in w for w in plan.warnings)
    with pytest.raises(InputError) as refused:
        check_sendable(plan, kind="live", allow_language_fallback=True)
    assert refused.value.code == "fictional_number"
    message = str(refused.value)
    assert f"fallback_number {value} is in the range reserved for fiction" in message
    assert "--var fallback_number=NUMBER" in message and "nothing was sent" in message
    check_sendable(plan, kind="drill", allow_language_fallback=False)  # the test group only


@pytest.mark.parametrize("value", ["01 99 01 75 00", "112", "01 40 00 75 00"])
def test_a_real_number_given_is_sent(value: str) -> None:
    plan = _plan({("75", "fr"): 2}, {"fallback_number": value})
    assert dict(plan.fictional) == {}
    check_sendable(plan, kind="live", allow_language_fallback=False)


def test_only_phone_variables_are_read_as_numbers() -> None:
    """A text variable may quote anything (a CAP instruction is free text): not a number."""
    plan = _plan({("75", "fr"): 2}, {"instruction": "01 99 00 75 00"}, template="update")
    assert dict(plan.fictional) == {}
