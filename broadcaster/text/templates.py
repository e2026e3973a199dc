"""Message templates: a sandboxed Jinja2 catalogue, rendered once per (area, language) group.

Templates live in `templates/<scenario>.<lang>.j2`; `templates/catalogue.toml` declares each
scenario's description, required and optional variables, languages and kind (live or drill).
Rendering is sandboxed with StrictUndefined: a template sees only the variables it is given, and
an undefined one is an error that names it, never an empty string sent to millions.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from broadcaster.errors import ConfigError, TemplateError

VARIABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_VARIABLE_LENGTH = 500
EXERCISE_MARKERS = {"fr": "EXERCICE", "en": "EXERCISE", "es": "EJERCICIO", "de": "ÜBUNG"}


@dataclass(frozen=True)
class Scenario:
    """One catalogue entry: what the template is for and what it needs."""

    name: str
    description: str
    requires: tuple[str, ...]
    optional: tuple[str, ...]
    languages: tuple[str, ...]
    kind: Literal["live", "drill"]


class TemplateCatalogue:
    """The scenarios of a templates directory, with a sandboxed environment to render them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scenarios = _read_catalogue(directory / "catalogue.toml")
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(directory)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
        )

    def scenario(self, name: str) -> Scenario:
        """The scenario called `name`, or a TemplateError listing the ones that exist."""
        try:
            return self.scenarios[name]
        except KeyError:
            known = ", ".join(sorted(self.scenarios)) or "none"
            raise TemplateError(f"unknown template {name!r}; known templates: {known}") from None

    def language_for(self, scenario: Scenario, wanted: str, area_default: str) -> str:
        """The language a recipient gets: theirs if the template has it, else the area's."""
        if wanted in scenario.languages:
            return wanted
        if area_default in scenario.languages:
            return area_default
        return scenario.languages[0]

    def check_variables(self, scenario: Scenario, variables: Mapping[str, str]) -> None:
        """Reject operator variables that are malformed, too long or unknown to the template."""
        allowed = set(scenario.requires) | set(scenario.optional)
        for name, value in variables.items():
            if not VARIABLE_NAME.match(name):
                raise TemplateError(
                    f"variable name {name!r} is invalid: use lower-case letters, digits and _"
                )
            if name not in allowed:
                raise TemplateError(
                    f"template {scenario.name!r} has no variable {name!r}; "
                    f"it takes {', '.join(sorted(allowed))}"
                )
            if len(value) > MAX_VARIABLE_LENGTH:
                raise TemplateError(
                    f"variable {name!r} is {len(value)} characters long; "
                    f"the limit is {MAX_VARIABLE_LENGTH}"
                )

    def render(self, scenario: Scenario, language: str, variables: Mapping[str, str]) -> str:
        """Render one text; undefined variables and sandbox violations become TemplateError."""
        missing = [name for name in scenario.requires if name not in variables]
        if missing:
            raise TemplateError(
                f"template {scenario.name!r} needs {', '.join(missing)}: "
                f"pass --var {missing[0]}=... or set it per area with `broadcaster areas set-var`"
            )
        text = self._render(scenario, language, variables)
        if not text:
            raise TemplateError(f"template {scenario.name}.{language} rendered an empty text")
        if scenario.kind == "drill":
            _check_exercise_marker(scenario, language, text)
        return text

    def _render(self, scenario: Scenario, language: str, variables: Mapping[str, str]) -> str:
        """The template's text, stripped; Jinja2's errors as TemplateErrors that say which."""
        try:
            template = self._env.get_template(f"{scenario.name}.{language}.j2")
            return template.render(dict(variables)).strip()
        except jinja2.UndefinedError as exc:
            raise TemplateError(
                f"template {scenario.name}.{language}: {exc.message}; pass it with --var"
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template file {exc.name} is missing in {self.directory}") from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"template {scenario.name}.{language} was refused: {exc}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {scenario.name}.{language} failed: {exc}") from exc


def _check_exercise_marker(scenario: Scenario, language: str, text: str) -> None:
    """A drill's text must say it is an exercise, first thing, in its own language."""
    marker = EXERCISE_MARKERS.get(language)
    if marker is None or not text.startswith(marker):
        raise TemplateError(
            f"drill template {scenario.name}.{language} must start with the exercise "
            f"marker {marker or 'EXERCISE'!r}; it starts {text[:20]!r}"
        )


def _read_catalogue(path: Path) -> dict[str, Scenario]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read template catalogue {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"template catalogue {path} is not valid TOML: {exc}") from exc
    scenarios: dict[str, Scenario] = {}
    for name, entry in data.items():
        try:
            kind = entry.get("kind", "live")
            if kind not in ("live", "drill"):
                raise ConfigError(f"{path}: [{name}] kind must be 'live' or 'drill'")
            languages = tuple(entry["languages"])
            if not languages:
                raise ConfigError(f"{path}: [{name}] lists no languages")
            scenarios[name] = Scenario(
                name=name,
                description=str(entry.get("description", "")),
                requires=tuple(entry.get("requires", ())),
                optional=tuple(entry.get("optional", ())),
                languages=languages,
                kind=kind,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"{path}: [{name}] is incomplete ({exc})") from exc
    return scenarios
