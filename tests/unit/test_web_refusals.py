"""The console's refusals: in the visitor's language by error code, the command's sentence kept
as a detail without the advice meant for the CLI (issue 24)."""

from __future__ import annotations

from broadcaster.errors import ConflictError, ForbiddenError, InputError, TemplateError
from broadcaster.http.errors import ApiError
from broadcaster.web.refusals import explain, without_cli_advice


def test_a_missing_variable_names_the_field_in_french_without_the_cli_advice() -> None:
    error = TemplateError(
        "template 'update' needs instruction: pass --var instruction=... or set it per area "
        "with `broadcaster areas set-var`"
    )
    message, details = explain(error, "fr")
    assert message == "Le modèle a besoin d'une valeur manquante : remplissez instruction."
    assert details == ["template 'update' needs instruction"]
    assert not [d for d in details if "--var" in d or "broadcaster" in d]


def test_the_language_fallback_refusal_points_to_the_form_not_to_options() -> None:
    note = "instruction, written in fr, goes into the en text of 75: give --var instruction.en=..."
    error = InputError(
        f"refused: 1 group(s) would get a text that is not (all) in their recipients' "
        f"language: {note}. Give each language its own text (--var NAME.LANG=...), or send "
        "anyway with --allow-language-fallback (API: allow_language_fallback); nothing was sent",
        code="language_fallback",
        details=[note],
    )
    message, details = explain(error, "fr")
    assert message.startswith("Des groupes recevraient un texte")
    assert details[-1] == "instruction, written in fr, goes into the en text of 75"
    assert all("--" not in d and "API:" not in d for d in details), details
    english, _ = explain(error, "en")
    assert english.startswith("Some groups would get a text")


def test_refusals_by_code_in_both_languages() -> None:
    two = ForbiddenError("broadcast 3 was created by alice", code="two_person_rule")
    assert explain(two, "fr")[0].startswith("Vous avez créé cette diffusion")
    assert explain(ConflictError("cannot approve broadcast 3: it is running"), "fr")[0] == (
        "Cette action ne s'applique pas à la diffusion dans son état actuel."
    )
    limited = ApiError(429, "rate_limited", "too many requests: retry in 2 s")
    message, details = explain(limited, "fr")
    assert message.startswith("La demande a été refusée")
    assert details == ["too many requests: retry in 2 s"]


def test_cli_advice_is_removed_and_the_rest_kept() -> None:
    assert without_cli_advice("unknown département '99'; run `broadcaster areas` to list them") == (
        "unknown département '99'"
    )
    assert (
        without_cli_advice(
            "no subscriber matches this target: check the areas with `broadcaster areas`"
        )
        == "no subscriber matches this target"
    )


def test_the_placeholder_refusal_keeps_its_reason_and_drops_the_commands() -> None:
    note = (
        "the fallback_number of 75 is still the reference placeholder (a fictional number from "
        "the seed data: nobody answers it): set the real one with `broadcaster areas set-var "
        "DEP fallback_number VALUE` for each, or give one for this broadcast with --var "
        "fallback_number=VALUE"
    )
    error = InputError(
        f"refused: {note}; nothing was sent", code="placeholder_variables", details=[note]
    )
    message, details = explain(error, "en")
    assert message.startswith("An area still has the fictional reference value")
    assert details == [
        "refused: the fallback_number of 75 is still the reference placeholder (a fictional "
        "number from the seed data: nobody answers it); nothing was sent",
        "the fallback_number of 75 is still the reference placeholder (a fictional number "
        "from the seed data: nobody answers it)",
    ]
