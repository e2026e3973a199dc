"""Message templates: a sandboxed Jinja2 catalogue, rendered once per (area, language) group.

Templates live in `templates/<scenario>.<lang>.j2`; `templates/catalogue.toml` declares each
scenario's description, required and optional variables, languages and kind (live or drill),
and each variable's kind (`[variables.NAME]`: text or phone, per language or not), the one
validator every way in uses (`broadcaster.domain.variables`).
Rendering is sandboxed with StrictUndefined: a template sees only the variables it is given, and
an undefined one is an error that names it, never an empty string sent to millions.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import jinja2
import jinja2.meta
import jinja2.nodes
from jinja2.sandbox import SandboxedEnvironment

from broadcaster.domain.variables import KINDS, VARIABLE_NAME, Kind, VariableSpec, split_key
from broadcaster.errors import ConfigError, InputError, TemplateError

VARIABLES_TABLE = "variables"
"""The catalogue's table of variable declarations (so no scenario may be called that)."""
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

    @property
    def names(self) -> frozenset[str]:
        """Every variable the scenario's templates read."""
        return frozenset((*self.requires, *self.optional))


class TemplateCatalogue:
    """The scenarios of a templates directory, with a sandboxed environment to render them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.scenarios, self.variables = _read_catalogue(directory / "catalogue.toml")
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

    def spec(self, name: str) -> VariableSpec:
        """The declared variable, or one line of plain text when the catalogue says nothing."""
        return self.variables.get(name) or VariableSpec(name)

    def _reads(self, file: str) -> set[str]:
        """The variables a template file reads from its caller: those it uses, but the names
        it sets itself (`{% set sender = ... %}` in each branch of an `if`, which Jinja2's own
        analysis counts as read) and the environment's globals."""
        source, _, _ = self._env.loader.get_source(self._env, file)  # type: ignore[union-attr]
        tree = self._env.parse(source)
        own = {n.name for n in tree.find_all(jinja2.nodes.Name) if n.ctx in ("store", "param")}
        used = jinja2.meta.find_undeclared_variables(tree)
        return set(used) - own - set(self._env.globals)

    def variables_read(self) -> dict[str, VariableSpec]:
        """Every variable some scenario reads, with its rule (what `areas set-var` accepts)."""
        names = sorted({n for s in self.scenarios.values() for n in s.names})
        return {name: self.spec(name) for name in names}

    @property
    def per_language(self) -> frozenset[str]:
        """The variables written once per language (`instruction.en`)."""
        return frozenset(name for name, spec in self.variables.items() if spec.per_language)

    def undeclared(self) -> list[str]:
        """What each scenario's template files read that the catalogue does not declare for
        it (a typo in a template: `{{ fallback_nunber }}`, which no `--var` can give), and the
        files of its languages that are missing: one sentence each, empty when all is well."""
        problems: list[str] = []
        for scenario in self.scenarios.values():
            for language in scenario.languages:
                file = f"{scenario.name}.{language}.j2"
                try:
                    read = self._reads(file)
                except jinja2.TemplateNotFound:
                    problems.append(f"{file} is missing in {self.directory}")
                    continue
                except jinja2.TemplateSyntaxError as exc:
                    problems.append(f"{file} line {exc.lineno}: {exc.message}")
                    continue
                for name in sorted(read - scenario.names):
                    problems.append(_undeclared(scenario, file, name))
        return problems

    def check_variables(self, scenario: Scenario, variables: Mapping[str, str]) -> dict[str, str]:
        """The operator's variables as they go into messages (spaces collapsed); refused when a
        name is malformed or unknown to the template, a language is not one of its own, or a
        value breaks its variable's rule (blank, invisible characters, not a phone number...)."""
        cleaned: dict[str, str] = {}
        for key, value in variables.items():
            try:
                name, language = split_key(key)
            except InputError as exc:
                raise TemplateError(str(exc)) from None
            if name not in scenario.names:
                raise TemplateError(
                    f"template {scenario.name!r} has no variable {name!r}; "
                    f"it takes {', '.join(sorted(scenario.names))}"
                )
            spec = self.spec(name)
            if language is not None:
                _check_language(scenario, spec, key, language)
            cleaned[key] = spec.clean(value, label=key)
        return cleaned

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
            file = f"{scenario.name}.{language}.j2"
            try:
                strays = sorted(self._reads(file) - scenario.names)
            except jinja2.TemplateError:  # (it rendered up to here: not expected)
                strays = []
            if strays:  # not the operator's to give: the template's to fix
                raise TemplateError(_undeclared(scenario, file, strays[0])) from exc
            raise TemplateError(
                f"template {scenario.name}.{language}: {exc.message}; pass it with --var"
            ) from exc
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template file {exc.name} is missing in {self.directory}") from exc
        except jinja2.exceptions.SecurityError as exc:
            raise TemplateError(f"template {scenario.name}.{language} was refused: {exc}") from exc
        except jinja2.TemplateError as exc:
            raise TemplateError(f"template {scenario.name}.{language} failed: {exc}") from exc


def _undeclared(scenario: Scenario, file: str, name: str) -> str:
    """A template reading a variable its scenario does not declare, said so it gets fixed."""
    return (
        f"{file} reads {{{{ {name} }}}}, which catalogue.toml does not declare for "
        f"{scenario.name!r} (it takes {', '.join(sorted(scenario.names)) or 'none'}): a typo in "
        f"the template? --var cannot give it; fix the template or declare it in the catalogue"
    )


def _check_language(scenario: Scenario, spec: VariableSpec, key: str, language: str) -> None:
    """`name.<language>`: only for a per-language variable, in a language the template has."""
    if not spec.per_language:
        raise TemplateError(
            f"{spec.name} is the same in every language: give it as {spec.name}=..., not {key}"
        )
    if language not in scenario.languages:
        raise TemplateError(
            f"template {scenario.name!r} has no {language} text (it has "
            f"{', '.join(scenario.languages)}): {key} would reach nobody"
        )


def _check_exercise_marker(scenario: Scenario, language: str, text: str) -> None:
    """A drill's text must say it is an exercise, first thing, in its own language."""
    marker = EXERCISE_MARKERS.get(language)
    if marker is None or not text.startswith(marker):
        raise TemplateError(
            f"drill template {scenario.name}.{language} must start with the exercise "
            f"marker {marker or 'EXERCISE'!r}; it starts {text[:20]!r}"
        )


def _read_catalogue(path: Path) -> tuple[dict[str, Scenario], dict[str, VariableSpec]]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read template catalogue {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"template catalogue {path} is not valid TOML: {exc}") from exc
    variables = _read_variables(path, data.pop(VARIABLES_TABLE, {}))
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
    return scenarios, variables


def _read_variables(path: Path, table: object) -> dict[str, VariableSpec]:
    """`[variables.NAME]` tables: kind (text, phone), per_language, description."""
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [{VARIABLES_TABLE}] must hold [{VARIABLES_TABLE}.NAME] tables")
    specs: dict[str, VariableSpec] = {}
    for name, entry in table.items():
        where = f"{path}: [{VARIABLES_TABLE}.{name}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a table")
        if not VARIABLE_NAME.match(name):
            raise ConfigError(f"{where}: a name is lower-case letters, digits and _")
        kind = entry.get("kind", "text")
        if kind not in KINDS:
            raise ConfigError(f"{where} kind must be one of {', '.join(KINDS)}, not {kind!r}")
        per_language = entry.get("per_language", False)
        if not isinstance(per_language, bool):
            raise ConfigError(f"{where} per_language must be true or false")
        specs[name] = VariableSpec(
            name, cast(Kind, kind), per_language, str(entry.get("description", ""))
        )
    return specs
