"""Why a console action was refused, in the visitor's language, without the CLI's advice.

The commands and the API refuse in English, with advice for their own users ("pass --var
instruction=...", "run `broadcaster areas`"): right for a terminal, wrong on a French page where
the fix is a field of the form. The console says the refusal in its own words, chosen by the
error's stable code, and keeps the command's sentences (advice for other interfaces removed)
as the details an administrator can compare with the logs.
"""

from __future__ import annotations

import re
from typing import Final

from broadcaster.errors import InputError
from broadcaster.http.errors import ApiError
from broadcaster.web import i18n

BY_CODE: Final[dict[str, str]] = {
    "two_person_rule": "refusal_two_person_rule",
    "invalid_state": "refusal_invalid_state",
    "forbidden": "refusal_forbidden",
    "language_fallback": "refusal_language_fallback",
    "placeholder_variables": "refusal_placeholder_variables",
    "fictional_number": "refusal_fictional_number",
    "unknown_area": "refusal_unknown_area",
    "unknown_reference": "refusal_unknown_area",
    "empty_target": "refusal_empty_target",
    "invalid_variable": "refusal_invalid_variable",
    "invalid_body": "refusal_invalid_body",
    "malformed_body": "refusal_invalid_body",
    "idempotency_mismatch": "refusal_idempotency",
    "idempotency_in_progress": "refusal_idempotency",
    "not_found": "refusal_not_found",
    "no_cells": "refusal_no_cells",
    "shape_meets_no_cell": "refusal_no_cells",
    "bad_shape": "refusal_bad_shape",
}
"""The stable error codes (the API's) the console words itself; others get a general line."""

NEEDS: Final = re.compile(r"template '?[\w-]+'? needs ([\w, ]+):")
CLI_ADVICE: Final = (
    # "…; run `broadcaster areas` to list them", "…: set the real one with `broadcaster …`"
    re.compile(
        r"[:;,]?\s*\b(?:check|see|run|set the real one with)\b[^;:`]*`broadcaster [^`]*`[^;]*"
    ),
    # "…: pass --var x=... or set it per area with …", "give --var instruction.en=..."
    re.compile(r"[:;,]?\s*\b(?:pass|give)(?: it with)? --var\b[^;]*"),
    re.compile(r"\s*\((?:--var|API:)[^)]*\)"),
    re.compile(r"[:;,]?\s*\b(?:or )?(?:send anyway )?with --[\w-]+(?: \(API: \w+\))?"),
    re.compile(r"\s*\bGive each language its own text\b[^.;]*[.;]?"),
)


def without_cli_advice(text: str) -> str:
    """The sentence without advice meant for the CLI or a script (options, commands)."""
    for pattern in CLI_ADVICE:
        text = pattern.sub("", text)
    text = re.sub(r"\s{2,}", " ", text)
    text = re.sub(r"\s+([;:,.])", r"\1", text)
    text = re.sub(r"[;:,]\s*([;.])", r"\1", text)
    return text.strip(" ;,:")


def code_of(exc: ApiError | InputError) -> str:
    return exc.code


def explain(exc: ApiError | InputError, language: str) -> tuple[str, list[str]]:
    """(the refusal in `language`, the command's own sentences as details)."""
    t = i18n.translator(language)
    original = exc.message if isinstance(exc, ApiError) else str(exc)
    details = [without_cli_advice(d) for d in (exc.details or [])]
    code = code_of(exc)
    key = BY_CODE.get(code)
    if code == "template_error" and (needs := NEEDS.search(original)):
        message = t("refusal_missing_variable").format(names=needs.group(1).strip())
    elif key is not None:
        message = t(key)
    else:
        message = t("refusal_general")
    said = without_cli_advice(original)
    if said and said not in details:
        details = [said, *details]
    return message, [d for d in details if d]
