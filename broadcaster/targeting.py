"""Targets: which subscribers a broadcast reaches, resolved purely from area references.

An operator names areas as `region:11`, `dep:75` (or `departement:75`), `commune:75056`, and may
exclude some with the same forms. A target resolves to, per département, either the whole
département or a set of communes. Because every subscriber belongs to exactly one département,
streaming each département's selection once can never reach anyone twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from broadcaster.errors import UnknownAreaError

AreaKind = Literal["region", "dep", "commune"]
_KIND_ALIASES: dict[str, AreaKind] = {
    "region": "region",
    "reg": "region",
    "dep": "dep",
    "departement": "dep",
    "département": "dep",
    "commune": "commune",
    "insee": "commune",
}
_COMMUNE = re.compile(r"^(97[1-6]\d{2}|2[AB]\d{3}|\d{5})$")
AREA_FORMS = "region:CODE, dep:CODE or commune:INSEE (e.g. dep:75, region:11, commune:75056)"


@dataclass(frozen=True)
class AreaRef:
    """One area as an operator named it."""

    kind: AreaKind
    code: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.code}"


@dataclass(frozen=True)
class Departement:
    """What targeting needs to know of a département."""

    code: str
    name: str
    region_code: str
    default_language: str = "fr"


@dataclass(frozen=True)
class AreaIndex:
    """The known areas, loaded from the database once per plan."""

    departements: Mapping[str, Departement]
    region_names: Mapping[str, str] = field(default_factory=dict)

    def departements_of_region(self, region_code: str) -> list[str]:
        return sorted(d.code for d in self.departements.values() if d.region_code == region_code)


@dataclass(frozen=True)
class Target:
    """Per département: None for all its subscribers, else the INSEE codes of chosen communes."""

    departements: Mapping[str, frozenset[str] | None]
    test_group_only: bool = False

    def describe(self) -> list[str]:
        out = []
        for code, communes in sorted(self.departements.items()):
            out.append(code if communes is None else f"{code} ({', '.join(sorted(communes))})")
        return out

    def as_json(self) -> dict[str, object]:
        return {
            "departements": {
                code: None if communes is None else sorted(communes)
                for code, communes in sorted(self.departements.items())
            },
            "test_group_only": self.test_group_only,
        }


def parse_area(spec: str) -> AreaRef:
    """Parse `kind:code`; a bad form is an UnknownAreaError that shows the accepted forms."""
    kind_text, sep, code = spec.strip().partition(":")
    kind = _KIND_ALIASES.get(kind_text.strip().lower())
    code = code.strip().upper()
    if not sep or kind is None or not code:
        raise UnknownAreaError(f"area {spec!r} is not understood; use {AREA_FORMS}")
    if kind == "commune" and not _COMMUNE.match(code):
        raise UnknownAreaError(f"commune {code!r} is not an INSEE code (5 characters, e.g. 75056)")
    return AreaRef(kind, code)


def commune_departement(insee: str) -> str:
    """The département an INSEE commune code belongs to (971xx -> 971, 2A004 -> 2A)."""
    return insee[:3] if insee.startswith("97") else insee[:2]


def resolve_target(
    include: Iterable[AreaRef],
    index: AreaIndex,
    exclude: Iterable[AreaRef] = (),
    test_group_only: bool = False,
) -> Target:
    """Turn area references into a Target, refusing any area the index does not know."""
    selection: dict[str, set[str] | None] = {}
    for ref in include:
        for dep, commune in _expand(ref, index):
            if commune is None:
                selection[dep] = None
            elif dep not in selection or selection[dep] is not None:
                current = selection.setdefault(dep, set())
                assert current is not None
                current.add(commune)
    for ref in exclude:
        for dep, commune in _expand(ref, index):
            if commune is None:
                selection.pop(dep, None)
            else:
                chosen = selection.get(dep)
                if chosen is not None:
                    chosen.discard(commune)
                    if not chosen:
                        del selection[dep]
                elif dep in selection:
                    raise UnknownAreaError(
                        f"cannot exclude {ref} from the whole département {dep}: "
                        "target its other communes instead"
                    )
    if not selection:
        raise UnknownAreaError(f"the target is empty; name at least one area ({AREA_FORMS})")
    return Target(
        {dep: None if c is None else frozenset(c) for dep, c in selection.items()},
        test_group_only,
    )


def _expand(ref: AreaRef, index: AreaIndex) -> list[tuple[str, str | None]]:
    if ref.kind == "region":
        deps = index.departements_of_region(ref.code)
        if not deps:
            raise UnknownAreaError(
                f"unknown region {ref.code!r}; run `broadcaster areas` to list regions"
            )
        return [(dep, None) for dep in deps]
    if ref.kind == "dep":
        if ref.code not in index.departements:
            raise UnknownAreaError(
                f"unknown département {ref.code!r}; run `broadcaster areas` to list them"
            )
        return [(ref.code, None)]
    dep = commune_departement(ref.code)
    if dep not in index.departements:
        raise UnknownAreaError(f"commune {ref.code!r} is in no known département ({dep!r})")
    return [(dep, ref.code)]
