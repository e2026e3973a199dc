"""HTML forms to API bodies and back (pure): what the crisis cell typed, kept as typed so a
refused form comes back filled in, and turned into exactly the JSON the API would receive.

No business rule lives here: the body goes through the API's schema and handler, which decide.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from multidict import MultiDictProxy

from broadcaster.text.templates import Scenario

EXPIRY_CHOICES_MIN: Final = (30, 60, 120, 360, 1440)
DEFAULT_EXPIRY_MIN: Final = 120
VAR_PREFIX: Final = "var_"
_SPLIT: Final = re.compile(r"[\s,;]+")

Form = MultiDictProxy[Any]


def _text(form: Form, name: str, limit: int = 2000) -> str:
    value = form.get(name, "")
    return value.strip()[:limit] if isinstance(value, str) else ""


def _lines(form: Form, name: str) -> tuple[str, ...]:
    """The non-empty lines of a text area (a shape each; the preview page sends one field per
    shape), at most 50 in 200,000 characters."""
    text = "\n".join(v for v in form.getall(name, []) if isinstance(v, str))[:200_000]
    return tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))[:50]


def _expiry(form: Form) -> int:
    raw = _text(form, "expires_minutes")
    return int(raw) if raw.isdigit() and int(raw) in EXPIRY_CHOICES_MIN else DEFAULT_EXPIRY_MIN


def _variables(form: Form) -> dict[str, str]:
    out: dict[str, str] = {}
    for key in form:
        if key.startswith(VAR_PREFIX):
            value = _text(form, key, 600)
            if value:
                out[key.removeprefix(VAR_PREFIX)] = value
    return out


def new_key() -> str:
    """An Idempotency-Key for one preview: submitting its form twice creates one broadcast."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Compose:
    """A new broadcast or drill, as typed."""

    areas: tuple[str, ...] = ()
    extra: str = ""
    shapes: tuple[str, ...] = ()
    """Polygons and circles, one a line (drawn on the map or typed): kept whole, never split
    at the commas and spaces that separate the typed codes."""
    template: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    gsm_safe: bool = False
    allow_language_fallback: bool = False
    expires_minutes: int = DEFAULT_EXPIRY_MIN
    query: str = ""
    confirm: str = ""
    key: str = ""

    @classmethod
    def parse(cls, form: Form) -> Compose:
        areas = tuple(dict.fromkeys(a for a in form.getall("area", []) if isinstance(a, str)))
        return cls(
            areas=areas[:500],
            extra=_text(form, "extra_areas"),
            shapes=_lines(form, "shapes"),
            template=_text(form, "template", 40),
            variables=_variables(form),
            gsm_safe=form.get("gsm_safe") == "on",
            allow_language_fallback=form.get("allow_language_fallback") == "on",
            expires_minutes=_expiry(form),
            query=_text(form, "q", 100),
            confirm=_text(form, "confirm", 100),
            key=_text(form, "idempotency_key", 200),
        )

    def all_areas(self) -> list[str]:
        """Ticked areas, then the typed ones, each once."""
        typed = [a for a in _SPLIT.split(self.extra) if a]
        return list(dict.fromkeys([*self.areas, *typed, *self.shapes]))

    def body(self, kind: str, scenario: Scenario | None, dry_run: bool) -> dict[str, Any]:
        """The API's BroadcastCreate body; variables the template does not read are left out
        (the form shows every template's fields at once)."""
        return {
            "areas": self.all_areas(),
            "template": self.template,
            "variables": only_for(scenario, self.variables),
            "kind": kind,
            "gsm_safe": self.gsm_safe,
            "expires_in_seconds": self.expires_minutes * 60,
            "allow_language_fallback": self.allow_language_fallback,
            "dry_run": dry_run,
        }


@dataclass(frozen=True)
class FollowUp:
    """An update or all-clear of an existing broadcast, as typed."""

    template: str = ""
    variables: Mapping[str, str] = field(default_factory=dict)
    reached_only: bool = False
    gsm_safe: bool = False
    allow_language_fallback: bool = False
    expires_minutes: int = DEFAULT_EXPIRY_MIN
    confirm: str = ""
    key: str = ""

    @classmethod
    def parse(cls, form: Form) -> FollowUp:
        return cls(
            template=_text(form, "template", 40),
            variables=_variables(form),
            reached_only=form.get("reached_only") == "on",
            gsm_safe=form.get("gsm_safe") == "on",
            allow_language_fallback=form.get("allow_language_fallback") == "on",
            expires_minutes=_expiry(form),
            confirm=_text(form, "confirm", 100),
            key=_text(form, "idempotency_key", 200),
        )

    def body(self, scenario: Scenario | None, dry_run: bool) -> dict[str, Any]:
        """The API's FollowUp body (same areas as the broadcast it follows)."""
        return {
            "template": self.template,
            "variables": only_for(scenario, self.variables),
            "reached_only": self.reached_only,
            "gsm_safe": self.gsm_safe,
            "expires_in_seconds": self.expires_minutes * 60,
            "allow_language_fallback": self.allow_language_fallback,
            "dry_run": dry_run,
        }


def only_for(scenario: Scenario | None, variables: Mapping[str, str]) -> dict[str, str]:
    """The variables the scenario reads (`instruction.en` counts as `instruction`)."""
    if scenario is None:
        return dict(variables)
    return {k: v for k, v in variables.items() if k.partition(".")[0] in scenario.names}


@dataclass(frozen=True)
class VariableField:
    """One variable input of the compose form."""

    name: str
    templates: tuple[str, ...]
    """The templates that read it (the page shows it only for those)."""
    from_area: bool
    """Each area has its own value: typing one overrides them all."""
    languages: tuple[str, ...] = ()
    """A per-language variable: the languages its templates have, each with its own input
    (`var_instruction.en`); the plain input is the text for the area's own language."""


def variable_fields(
    scenarios: Iterable[Scenario],
    area_names: Iterable[str],
    per_language: Iterable[str] = (),
) -> list[VariableField]:
    """The inputs a form needs for these templates, operator-typed ones first."""
    by_name: dict[str, list[Scenario]] = {}
    for scenario in scenarios:
        for name in (*scenario.requires, *scenario.optional):
            by_name.setdefault(name, []).append(scenario)
    provided = set(area_names)
    own_language = set(per_language)
    fields = [
        VariableField(
            n,
            tuple(s.name for s in used),
            n in provided,
            _other_languages(used) if n in own_language else (),
        )
        for n, used in by_name.items()
    ]
    return sorted(fields, key=lambda f: (f.from_area, f.name))


def _other_languages(scenarios: list[Scenario]) -> tuple[str, ...]:
    """The languages after the first (the area's own) of these templates, in their order."""
    seen: dict[str, None] = {}
    for scenario in scenarios:
        for language in scenario.languages[1:]:
            seen.setdefault(language, None)
    return tuple(seen)
