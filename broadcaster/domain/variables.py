"""Template variables: what each one may hold, checked the same way from every way in (pure).

The template catalogue declares each variable (`[variables.fallback_number] kind = "phone"`):
the CLI's `--var`, the API's and the console's `variables`, CAP's texts and `areas set-var` all
go through `VariableSpec.clean`, so a value one way in refuses is refused by all. A value must
be visible text on one line: a blank one, or one carrying control or invisible characters
(a newline, U+0085, a right-to-left override, a zero-width space), would put something in the
SMS that nobody read on the screen.

Per-language variables (`instruction.en`) let each language get its own text; `resolve` says
which value a group gets and whether it was written for another language.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args

from broadcaster.errors import InputError

Kind = Literal["text", "phone"]
KINDS: tuple[str, ...] = get_args(Kind)
VARIABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
LANGUAGE_CODE = re.compile(r"^[a-z]{2}$")
MAX_VARIABLE_LENGTH = 500
"""The longest value an operator may give (the parts limit refuses long texts anyway)."""

INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp"})
"""Control, format (zero-width, direction overrides), private, unassigned, surrogate, line and
paragraph separators: nothing a person sees, or a line break."""
BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Letters that show nothing (Hangul fillers, the blank braille pattern)."""

_PHONE_CHARS = re.compile(r"^\+?[0-9][0-9 .-]*[0-9]$|^[0-9]$")
_PHONE_FORMS = (
    re.compile(r"^0[1-9][0-9]{8}$"),  # French national: 01 99 00 75 00
    re.compile(r"^\+[1-9][0-9]{7,14}$"),  # international: +33 1 99 00 75 00
    re.compile(r"^[1-9][0-9]{2,5}$"),  # short numbers: 112, 3919, 116117
)
_FICTIONAL = re.compile(r"^(0|\+330?)19900[0-9]{4}$")
"""ARCEP's range for fiction, 01 99 00 00 00 - 01 99 00 99 99: no one answers these numbers
(also written +33 1 99 00 …, or with the trunk 0 kept, +33 0 1 99 00 …)."""


@dataclass(frozen=True)
class VariableSpec:
    """One variable of the catalogue: its kind, and whether it is written per language."""

    name: str
    kind: Kind = "text"
    per_language: bool = False
    description: str = ""

    def clean(
        self, value: str, *, label: str | None = None, limit: int = MAX_VARIABLE_LENGTH
    ) -> str:
        """The value as it goes into messages (spaces collapsed), or an InputError saying what
        to fix. `label` names it in the message (`instruction.en`); `limit` is its longest."""
        label = label or self.name
        invisible = invisible_characters(value)
        if invisible:
            raise InputError(
                f"the value of {label} has control or invisible characters "
                f"({', '.join(invisible)}): type it again as plain text on one line",
                code="invalid_variable",
            )
        text = " ".join(value.split())
        if not text:
            raise InputError(
                f"the value of {label} is empty: give the text to put in messages",
                code="invalid_variable",
            )
        if len(text) > limit:
            raise InputError(
                f"the value of {label} is {len(text)} characters long; the limit is {limit}: "
                "shorten it",
                code="invalid_variable",
            )
        if self.kind == "phone":
            _check_phone(label, text)
        return text

    def fictional(self, text: str) -> bool:
        """A phone number of the range reserved for fiction (a cleaned value): nobody answers
        it; a live send refuses it given by the operator, `areas set-var` warns of it."""
        return self.kind == "phone" and is_fictional_number(text)


def invisible_characters(value: str) -> list[str]:
    """The control or invisible characters of `value`, as sorted U+XXXX codes."""
    found = {
        c for c in value if unicodedata.category(c) in INVISIBLE_CATEGORIES or c in BLANK_LETTERS
    }
    return sorted(f"U+{ord(c):04X}" for c in found)


def _check_phone(label: str, text: str) -> None:
    digits = re.sub(r"[ .-]", "", text)
    if not _PHONE_CHARS.match(text) or not any(f.match(digits) for f in _PHONE_FORMS):
        raise InputError(
            f"{label} {text!r} is not a phone number: use 10 digits like 01 99 00 75 00, an "
            "international number like +33 1 99 00 75 00, or a short number like 112",
            code="invalid_variable",
        )


def is_fictional_number(text: str) -> bool:
    """A number in the range reserved for fiction (the reference data's placeholders)."""
    return bool(_FICTIONAL.match(re.sub(r"[ .-]", "", text)))


def split_key(key: str) -> tuple[str, str | None]:
    """`instruction.en` -> ("instruction", "en"); `instruction` -> ("instruction", None)."""
    name, dot, language = key.partition(".")
    if not VARIABLE_NAME.match(name) or (dot and not LANGUAGE_CODE.match(language)):
        raise InputError(
            f"variable name {key!r} is invalid: use lower-case letters, digits and _ "
            "(starting with a letter), then .LANG for one language only (instruction.en)",
            code="invalid_variable",
        )
    return name, language if dot else None


@dataclass(frozen=True)
class AreaVariables:
    """Each département's variables, and which of them are still reference placeholders."""

    values: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    placeholders: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Resolved:
    """The variables one group's text is rendered with, and where they came from."""

    values: dict[str, str]
    written_in: dict[str, str]
    """Per-language variables whose value was written for another language: name -> that
    language."""
    from_area: frozenset[str]
    """The names whose value is the area's own (not one the operator gave)."""


def resolve(
    operator: Mapping[str, str],
    area: Mapping[str, str],
    *,
    language: str,
    area_language: str,
    per_language: frozenset[str],
) -> Resolved:
    """The values a group in `language` gets, in an area whose own language is `area_language`.

    The operator's values override the area's. For a per-language variable the first of: the
    operator's `name.<language>`; their plain `name` or `name.<area_language>` (a plain value is
    taken as written in the area's language); the area's own `name` (likewise); else the
    operator's value for another language, in the order given.
    """
    given: dict[str, dict[str | None, str]] = {}
    for key, value in operator.items():
        name, lang = split_key(key)
        given.setdefault(name, {})[lang] = value
    values: dict[str, str] = {}
    written_in: dict[str, str] = {}
    from_area: set[str] = set()
    for name in dict.fromkeys([*area, *given]):
        options = given.get(name, {})
        if name not in per_language:
            options = {None: options[None]} if None in options else {}
        choice = _choose(options, area.get(name), language, area_language)
        if choice is None:
            continue
        values[name], written, own = choice
        if own:
            from_area.add(name)
        if name in per_language and written != language:
            written_in[name] = written
    return Resolved(values, written_in, frozenset(from_area))


def _choose(
    given: Mapping[str | None, str],
    area_value: str | None,
    language: str,
    area_language: str,
) -> tuple[str, str, bool] | None:
    """(value, the language it was written in, whether it is the area's own) of one variable;
    None when neither the operator nor the area has it."""
    for lang in (language, None, area_language):
        if lang in given:
            return given[lang], lang or area_language, False
    if area_value is not None:
        return area_value, area_language, True
    for lang, value in given.items():
        return value, lang or area_language, False
    return None
