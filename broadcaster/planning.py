"""Planning: from a target and a template to one encoded text per (département, language) group.

Pure: the caller brings recipient counts and area variables from the store. Everything a person
must check before approving is decided here (texts, encodings, part counts, warnings), and the
same plan drives the run, so what was previewed is exactly what is sent.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from broadcaster.domain.variables import resolve, split_key
from broadcaster.errors import InputError
from broadcaster.targeting import AreaIndex, PresenceSummary, Target
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
    fallback_for: tuple[tuple[str, int], ...] = ()
    """(language, recipients) of those who read another language and get this text, for lack
    of a template in theirs."""
    written_in: tuple[tuple[str, str], ...] = ()
    """(variable, language) of the per-language variables in this text that were written for
    another language."""

    @property
    def parts(self) -> int:
        return self.message.part_count * self.recipients

    @property
    def in_other_languages(self) -> bool:
        """Some of its recipients read another language, or part of its text was written in
        one: what the preview flags and a live send needs allowing."""
        return bool(self.fallback_for or self.written_in)


@dataclass(frozen=True)
class Plan:
    """Everything a broadcast will send, before anything is sent."""

    scenario: Scenario
    target: Target
    groups: tuple[Group, ...]
    language_of: Mapping[tuple[str, str], int]
    """(departement, subscriber language) -> index in `groups`."""
    warnings: tuple[str, ...]
    placeholders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Variable name -> the départements whose text carries that area variable's reference
    placeholder (a fictional number from the seed data): a live send refuses them."""
    presence: PresenceSummary | None = None
    """The geographic part of the target (cells, present, stale, overspill, visitors)."""
    fictional: Mapping[str, str] = field(default_factory=dict)
    """The operator's phone variables (`--var`, the API's, the console's) whose value is in the
    range reserved for fiction (01 99 00 xx xx): nobody answers it; a live send refuses them."""
    expires_in_s: float | None = None
    """Seconds from its creation to its expiry (what is not sent by then never is)."""

    @property
    def recipients(self) -> int:
        return sum(g.recipients for g in self.groups)

    @property
    def parts(self) -> int:
        return sum(g.parts for g in self.groups)

    def eta_seconds(self, parts_per_second: float) -> float | None:
        """Time to submit every part at the pool's contracted rate (None: no limit known)."""
        return self.parts / parts_per_second if parts_per_second > 0 else None

    def expiry_notes(self, parts_per_second: float) -> list[str]:
        """Said when it expires before it can all be sent at the contracted rate (a 5 s expiry
        over a 35 s send was taken without a word, and most were never sent)."""
        eta = self.eta_seconds(parts_per_second)
        if eta is None or self.expires_in_s is None or eta <= self.expires_in_s:
            return []
        share = self.expires_in_s / eta
        return [
            f"it expires {self.expires_in_s:,.0f} s after it is created, before its ETA of "
            f"{eta:,.0f} s at the contracted rate: about {1 - share:.0%} of its parts would "
            "never be sent (set a longer expiry: --expires-in)"
        ]

    def language_notes(self) -> list[str]:
        """Every group whose text is not (all) in its recipients' language."""
        return _language_notes(self.groups, self.scenario)

    def placeholder_notes(self) -> list[str]:
        """Each area variable still at its reference placeholder, with the areas and the fix."""
        return _placeholder_notes(self.placeholders)

    def fictional_notes(self) -> list[str]:
        """Each phone number the operator gave in the fiction range, with the fix."""
        return _fictional_notes(self.fictional)


def _language_notes(groups: Collection[Group], scenario: Scenario) -> list[str]:
    """The preview's words for texts not in their recipients' language, one per cause."""
    readers: dict[tuple[str, str], list[tuple[str, int]]] = {}
    foreign: dict[tuple[str, str, str], list[str]] = {}
    for g in groups:
        for lang, n in g.fallback_for:
            readers.setdefault((lang, g.language), []).append((g.departement, n))
        for name, written in g.written_in:
            foreign.setdefault((name, written, g.language), []).append(g.departement)
    notes = [
        f"template {scenario.name} has no {lang} text: {sum(n for _d, n in found):,} "
        f"recipient(s) who read {lang} (in {_areas([d for d, _n in found])}) get the {text} one"
        for (lang, text), found in sorted(readers.items())
    ]
    notes += [
        f"{name}, written in {written}, goes into the {lang} text of {_areas(deps)}: "
        f"give --var {name}.{lang}=..."
        for (name, written, lang), deps in sorted(foreign.items())
    ]
    return notes


def _areas(departements: Collection[str], shown: int = 10) -> str:
    """Département codes for a sentence: the first few, and how many more."""
    codes = sorted(set(departements))
    more = len(codes) - shown
    return ", ".join(codes[:shown]) + (f" and {more} more" if more > 0 else "")


def _placeholder_notes(placeholders: Mapping[str, Collection[str]]) -> list[str]:
    return [
        f"the {name} of {', '.join(sorted(deps))} is still the reference placeholder (a "
        "fictional number from the seed data: nobody answers it): set the real one with "
        f"`broadcaster areas set-var DEP {name} VALUE` for each, or give one for this "
        f"broadcast with --var {name}=VALUE"
        for name, deps in sorted(placeholders.items())
    ]


def _fictional_notes(fictional: Mapping[str, str]) -> list[str]:
    return [
        f"{key} {value} is in the range reserved for fiction (01 99 00 xx xx), nobody answers "
        f"it: give --var {key}=NUMBER with the real one"
        for key, value in sorted(fictional.items())
    ]


def _fictional_variables(
    catalogue: TemplateCatalogue, operator: Mapping[str, str]
) -> dict[str, str]:
    """The operator's phone variables whose value is a fictional number (a value copied from
    the reference data or a rehearsal script: a live alert would send the public to it)."""
    return {
        key: value
        for key, value in operator.items()
        if catalogue.spec(split_key(key)[0]).fictional(value)
    }


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
    placeholders: Mapping[str, Collection[str]] | None = None,
) -> Plan:
    """Render, encode and split each group's text once; refuse what must not be sent.

    `counts` maps (departement, subscriber language) to a number of recipients. Operator
    `variables` override the area's own variables of the same name; a per-language one
    (`instruction.en`) goes to its language's groups. `placeholders` names, per département,
    the area variables that are still reference placeholders.
    """
    operator = catalogue.check_variables(scenario, variables)
    recipients, group_of = _recipients_per_group(catalogue, scenario, index, counts)
    texts = _Texts(catalogue, scenario, gsm_safe)
    fallbacks = _fallbacks(group_of, counts)
    groups: list[Group] = []
    warnings: list[str] = []
    position: dict[GroupKey, int] = {}
    carried: dict[str, set[str]] = {}
    for dep, lang in sorted(recipients):
        resolved = resolve(
            operator,
            area_variables.get(dep, {}),
            language=lang,
            area_language=index.departements[dep].default_language,
            per_language=catalogue.per_language & scenario.names,
        )
        text = texts.render(lang, resolved.values)
        message = encode_message(text, reference=(reference + len(groups)) & 0xFF)
        _check_parts(dep, lang, message, max_parts)
        warnings.extend(_ucs2_warnings(dep, lang, text, message))
        for name in resolved.from_area & scenario.names & set((placeholders or {}).get(dep, ())):
            carried.setdefault(name, set()).add(dep)
        position[(dep, lang)] = len(groups)
        groups.append(
            Group(
                dep,
                lang,
                text,
                message,
                recipients[(dep, lang)],
                fallback_for=fallbacks.get((dep, lang), ()),
                written_in=tuple(sorted(resolved.written_in.items())),
            )
        )
    if not groups:
        raise InputError(
            "no subscriber matches this target"
            + (" in the test group" if target.test_group_only else "")
            + ": check the areas with `broadcaster areas`"
        )
    language_of = {k: position[g] for k, g in group_of.items()}
    fictional = _fictional_variables(catalogue, operator)
    notes = [
        *warnings,
        *_language_notes(groups, scenario),
        *_placeholder_notes(carried),
        *_fictional_notes(fictional),
    ]
    return Plan(
        scenario,
        target,
        tuple(groups),
        language_of,
        tuple(notes),
        {name: tuple(sorted(deps)) for name, deps in carried.items()},
        fictional=fictional,
    )


def check_sendable(plan: Plan, *, kind: str, allow_language_fallback: bool) -> None:
    """Refuse a live plan that would say something false: a reference placeholder (a fictional
    fallback number) in its texts, a fictional number the operator gave, or, unless the
    operator allowed it, groups whose text is not in their recipients' language. Drills may
    carry all three (they reach the test group only)."""
    if kind != "live":
        return
    for notes, code in (
        (plan.placeholder_notes(), "placeholder_variables"),
        (plan.fictional_notes(), "fictional_number"),
    ):
        if notes:
            raise InputError(
                "refused: " + "; ".join(notes) + "; nothing was sent", code=code, details=notes
            )
    languages = plan.language_notes()
    if languages and not allow_language_fallback:
        flagged = sum(1 for g in plan.groups if g.in_other_languages)
        raise InputError(
            f"refused: {flagged} group(s) would get a text that is not (all) in their "
            f"recipients' language: {'; '.join(languages)}. Give each language its own text "
            "(--var NAME.LANG=...), or send anyway with --allow-language-fallback (API: "
            "allow_language_fallback); nothing was sent",
            code="language_fallback",
            details=languages,
        )


def _fallbacks(
    group_of: Mapping[tuple[str, str], GroupKey], counts: Mapping[tuple[str, str], int]
) -> dict[GroupKey, tuple[tuple[str, int], ...]]:
    """Per group, (language, recipients) of the readers of another language it reaches."""
    out: dict[GroupKey, list[tuple[str, int]]] = {}
    for (dep, lang), key in sorted(group_of.items()):
        if lang != key[1]:
            out.setdefault(key, []).append((lang, counts[(dep, lang)]))
    return {key: tuple(readers) for key, readers in out.items()}


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
