"""Planning: from a target and a template to one encoded text per (département, language) group.

Pure: the caller brings recipient counts and area variables from the store. Everything a person
must check before approving is decided here (texts, encodings, part counts, warnings), and the
same plan drives the run, so what was previewed is exactly what is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from broadcaster.errors import InputError
from broadcaster.targeting import AreaIndex, Target
from broadcaster.text.encoding import (
    EncodedMessage,
    encode_message,
    non_gsm7_chars,
    transliterate_gsm7,
)
from broadcaster.text.templates import Scenario, TemplateCatalogue

GroupKey = tuple[str, str]  # (departement, language of the text)


@dataclass(frozen=True)
class Group:
    """Recipients of one département who get the same text in the same language."""

    departement: str
    language: str
    text: str
    message: EncodedMessage
    recipients: int

    @property
    def parts(self) -> int:
        return self.message.part_count * self.recipients


@dataclass(frozen=True)
class Plan:
    """Everything a broadcast will send, before anything is sent."""

    scenario: Scenario
    target: Target
    groups: tuple[Group, ...]
    language_of: Mapping[tuple[str, str], int]
    """(departement, subscriber language) -> index in `groups`."""
    warnings: tuple[str, ...]

    @property
    def recipients(self) -> int:
        return sum(g.recipients for g in self.groups)

    @property
    def parts(self) -> int:
        return sum(g.parts for g in self.groups)

    def eta_seconds(self, parts_per_second: float) -> float | None:
        """Time to submit every part at the pool's contracted rate (None: no limit known)."""
        return self.parts / parts_per_second if parts_per_second > 0 else None


def plan_broadcast(
    *,
    catalogue: TemplateCatalogue,
    scenario: Scenario,
    target: Target,
    index: AreaIndex,
    counts: Mapping[tuple[str, str], int],
    area_variables: Mapping[str, Mapping[str, str]],
    variables: Mapping[str, str],
    max_parts: int,
    gsm_safe: bool = False,
    reference: int = 0,
) -> Plan:
    """Render, encode and split each group's text once; refuse what must not be sent.

    `counts` maps (departement, subscriber language) to a number of recipients. Operator
    `variables` override the area's own variables of the same name.
    """
    catalogue.check_variables(scenario, variables)
    recipients, group_of = _recipients_per_group(catalogue, scenario, index, counts)
    texts = _Texts(catalogue, scenario, gsm_safe)
    groups: list[Group] = []
    warnings: list[str] = []
    position: dict[GroupKey, int] = {}
    for dep, lang in sorted(recipients):
        text = texts.render(lang, {**area_variables.get(dep, {}), **variables})
        message = encode_message(text, reference=(reference + len(groups)) & 0xFF)
        _check_parts(dep, lang, message, max_parts)
        warnings.extend(_ucs2_warnings(dep, lang, text, message))
        position[(dep, lang)] = len(groups)
        groups.append(Group(dep, lang, text, message, recipients[(dep, lang)]))
    if not groups:
        raise InputError(
            "no subscriber matches this target"
            + (" in the test group" if target.test_group_only else "")
            + ": check the areas with `broadcaster areas`"
        )
    language_of = {k: position[g] for k, g in group_of.items()}
    return Plan(scenario, target, tuple(groups), language_of, tuple(warnings))


def _recipients_per_group(
    catalogue: TemplateCatalogue,
    scenario: Scenario,
    index: AreaIndex,
    counts: Mapping[tuple[str, str], int],
) -> tuple[dict[GroupKey, int], dict[tuple[str, str], GroupKey]]:
    """Recipients per (département, language of the text they get), and the group of each
    (département, subscriber language) that has recipients."""
    recipients: dict[GroupKey, int] = {}
    group_of: dict[tuple[str, str], GroupKey] = {}
    for (dep, lang), n in sorted(counts.items()):
        if n <= 0:
            continue
        default = index.departements[dep].default_language
        key = (dep, catalogue.language_for(scenario, lang, default))
        recipients[key] = recipients.get(key, 0) + n
        group_of[(dep, lang)] = key
    return recipients, group_of


class _Texts:
    """Renders a scenario's text once per (language, variables): départements whose variables
    are the same share it."""

    def __init__(self, catalogue: TemplateCatalogue, scenario: Scenario, gsm_safe: bool) -> None:
        self._catalogue = catalogue
        self._scenario = scenario
        self._gsm_safe = gsm_safe
        self._rendered: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def render(self, lang: str, context: Mapping[str, str]) -> str:
        key = (lang, tuple(sorted(context.items())))
        text = self._rendered.get(key)
        if text is None:
            text = self._catalogue.render(self._scenario, lang, context)
            if self._gsm_safe:
                text = transliterate_gsm7(text)
            self._rendered[key] = text
        return text


def _check_parts(dep: str, lang: str, message: EncodedMessage, max_parts: int) -> None:
    if message.part_count > max_parts:
        raise InputError(
            f"the {lang} text for département {dep} needs {message.part_count} parts "
            f"({message.chars} characters, {message.encoding}); the limit is {max_parts}: "
            "shorten the variables, use --gsm-safe, or raise --max-parts"
        )


def _ucs2_warnings(dep: str, lang: str, text: str, message: EncodedMessage) -> list[str]:
    """A warning when a Latin-script text went UCS-2 (fewer characters per part) because of
    characters that --gsm-safe would transliterate."""
    if message.encoding != "ucs2" or lang not in ("fr", "en", "es", "de"):
        return []
    bad = non_gsm7_chars(text)
    if not bad:
        return []
    shown = " ".join(repr(c) for c in dict.fromkeys(bad))
    return [
        f"{dep}/{lang}: UCS-2 because of {shown} "
        f"({message.part_count} part(s)); --gsm-safe would transliterate"
    ]
