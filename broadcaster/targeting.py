"""Targets: which subscribers a broadcast reaches, resolved purely from area references.

An operator names areas as `region:11`, `dep:75` (or `departement:75`), `commune:75056` or
`cell:ID` (the subscriber's last-known cell), and may exclude some with the same forms. A target
resolves to one selection per département: the whole département, or the subscribers of some of
its communes or cells; either way minus those of excluded communes or cells. Because every
subscriber belongs to exactly one département, streaming each département's selection once can
never reach anyone twice, whatever mix of areas was named.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from broadcaster.domain.shapes import Shape, parse_circle, parse_polygon
from broadcaster.errors import InputError, UnknownAreaError

AreaKind = Literal["region", "dep", "commune", "cell", "polygon", "circle"]
SHAPE_KINDS = frozenset({"polygon", "circle"})
Mode = Literal["auto", "present", "resident", "both"]
MODES: tuple[Mode, ...] = ("auto", "present", "resident", "both")
"""auto: present for a shape, resident for an administrative area or a cell (see README)."""
DEFAULT_WINDOW_S = 6 * 3600
"""A location older than this (6 h) is stale: its number is not counted present."""
_KIND_ALIASES: dict[str, AreaKind] = {
    "region": "region",
    "reg": "region",
    "dep": "dep",
    "departement": "dep",
    "département": "dep",
    "commune": "commune",
    "insee": "commune",
    "cell": "cell",
    "cell_id": "cell",
    "polygon": "polygon",
    "circle": "circle",
}
_COMMUNE = re.compile(r"^(97[1-6]\d{2}|2[AB]\d{3}|\d{5})$")
CELL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,32}$")
"""A cell id as imported: letters, digits and `._:-`, at most 32 characters (case matters)."""
AREA_FORMS = (
    "region:CODE, dep:CODE, commune:INSEE, cell:ID, polygon:LAT,LON LAT,LON ... (closed) or "
    "circle:LAT,LON,RADIUS_KM (e.g. dep:75, region:11, commune:75056, cell:C75001, "
    "circle:48.85,2.35,5)"
)
_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class AreaRef:
    """One area as an operator named it."""

    kind: AreaKind
    code: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.code}"

    @property
    def is_shape(self) -> bool:
        return self.kind in SHAPE_KINDS

    def shape(self) -> Shape:
        """The polygon or circle this reference draws (checked when it was parsed)."""
        return _shape(self.kind, self.code)


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
    cell_departements: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """For the cells a request names: the départements where that cell has subscribers."""

    def departements_of_region(self, region_code: str) -> list[str]:
        return sorted(d.code for d in self.departements.values() if d.region_code == region_code)


@dataclass(frozen=True)
class Selection:
    """One département's share of a target.

    `communes` None is the whole département; otherwise the subscribers whose commune is in
    `communes` or whose cell is in `cells`. Then, in both cases, minus those whose commune is in
    `exclude_communes` or whose cell is in `exclude_cells`.
    """

    communes: frozenset[str] | None
    cells: frozenset[str] = _NONE
    exclude_communes: frozenset[str] = _NONE
    exclude_cells: frozenset[str] = _NONE

    @property
    def whole(self) -> bool:
        return self.communes is None

    @property
    def simple(self) -> bool:
        """Communes or the whole département only: no cells and no exclusions."""
        return not (self.cells or self.exclude_communes or self.exclude_cells)

    def columns(
        self,
    ) -> tuple[list[str] | None, list[str] | None, list[str] | None, list[str] | None]:
        """(communes, cells, exclude_communes, exclude_cells) as the SQL queries take them:
        sorted lists, None for "no restriction" (communes) or "none" (the others)."""
        return (
            None if self.communes is None else sorted(self.communes),
            sorted(self.cells) if self.cells else None,
            sorted(self.exclude_communes) if self.exclude_communes else None,
            sorted(self.exclude_cells) if self.exclude_cells else None,
        )

    def describe(self) -> str:
        parts = ["all" if self.communes is None else ""]
        if self.communes:
            parts.append("communes " + ", ".join(sorted(self.communes)))
        if self.cells:
            parts.append("cells " + ", ".join(sorted(self.cells)))
        text = "; ".join(p for p in parts if p)
        excluded = sorted(self.exclude_communes) + sorted(self.exclude_cells)
        if excluded:
            text += " except " + ", ".join(excluded)
        return text


@dataclass(frozen=True)
class Target:
    """Per département: None for all its subscribers, else the INSEE codes of chosen communes;
    plus, per département, chosen cells and excluded communes and cells (see `Selection`)."""

    departements: Mapping[str, frozenset[str] | None]
    test_group_only: bool = False
    cells: Mapping[str, frozenset[str]] = field(default_factory=dict)
    exclude_communes: Mapping[str, frozenset[str]] = field(default_factory=dict)
    exclude_cells: Mapping[str, frozenset[str]] = field(default_factory=dict)
    present: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Per département (where the cell stands): the cells whose numbers seen within
    `present_window_s` are reached, visitors included, with that département's texts."""
    present_window_s: int = DEFAULT_WINDOW_S
    mode: Mode = "auto"
    visitor_languages: Mapping[str, str] = field(default_factory=dict)
    """Country -> language for this broadcast's visitors (over `country_languages`)."""

    @property
    def all_departements(self) -> list[str]:
        """Every département with recipients: residents' and those present in its cells."""
        return sorted(set(self.departements) | set(self.present))

    @property
    def present_cells(self) -> list[str]:
        """Every present-mode cell, all départements together (sorted)."""
        return sorted(set().union(*self.present.values())) if self.present else []

    def with_presence(
        self,
        present: Mapping[str, frozenset[str]],
        window_s: int,
        mode: Mode,
        visitor_languages: Mapping[str, str] | None = None,
    ) -> Target:
        """This target plus the numbers present in these cells (one message per MSISDN: the
        present text wins over the resident one)."""
        return replace(
            self,
            present=dict(present),
            present_window_s=window_s,
            mode=mode,
            visitor_languages=dict(visitor_languages or {}),
        )

    @classmethod
    def of(cls, selections: Mapping[str, Selection], test_group_only: bool = False) -> Target:
        """The target made of these départements' selections (the inverse of `selection`)."""
        return cls(
            {dep: sel.communes for dep, sel in selections.items()},
            test_group_only,
            {dep: sel.cells for dep, sel in selections.items() if sel.cells},
            {dep: sel.exclude_communes for dep, sel in selections.items() if sel.exclude_communes},
            {dep: sel.exclude_cells for dep, sel in selections.items() if sel.exclude_cells},
        )

    def selection(self, departement: str) -> Selection:
        return Selection(
            self.departements[departement],
            self.cells.get(departement, _NONE),
            self.exclude_communes.get(departement, _NONE),
            self.exclude_cells.get(departement, _NONE),
        )

    def selections(self) -> Iterator[tuple[str, Selection]]:
        """Each département of the target with its selection, in code order."""
        for code in sorted(self.departements):
            yield code, self.selection(code)

    @property
    def simple(self) -> bool:
        """Whole départements and communes only (what older queries understand)."""
        return not (self.cells or self.exclude_communes or self.exclude_cells)

    def describe(self) -> list[str]:
        out = []
        for code, sel in self.selections():
            out.append(code if sel.whole and sel.simple else f"{code} ({sel.describe()})")
        for code, cells in sorted(self.present.items()):
            out.append(f"{code} (present in {len(cells)} cell(s))")
        return out

    def as_json(self) -> dict[str, object]:
        out = self._resident_json()
        if self.present or self.mode != "auto":
            out |= {
                "present": _sorted_json(self.present),
                "present_window_s": self.present_window_s,
                "mode": self.mode,
            }
        if self.visitor_languages:
            out["visitor_languages"] = dict(sorted(self.visitor_languages.items()))
        return out

    def _resident_json(self) -> dict[str, object]:
        return {
            "departements": {
                code: None if communes is None else sorted(communes)
                for code, communes in sorted(self.departements.items())
            },
            "test_group_only": self.test_group_only,
            "cells": _sorted_json(self.cells),
            "exclude_communes": _sorted_json(self.exclude_communes),
            "exclude_cells": _sorted_json(self.exclude_cells),
        }


def _sorted_json(per_dep: Mapping[str, frozenset[str]]) -> dict[str, list[str]]:
    return {code: sorted(v) for code, v in sorted(per_dep.items()) if v}


@functools.lru_cache(maxsize=32)
def _shape(kind: str, code: str) -> Shape:
    """A shape parsed and checked once per request, however often it is looked at (checking
    an outline of thousands of points takes tens of milliseconds)."""
    return parse_circle(code) if kind == "circle" else parse_polygon(code)


def parse_area(spec: str) -> AreaRef:
    """Parse `kind:code`; a bad form is an UnknownAreaError that shows the accepted forms."""
    kind_text, sep, raw = spec.strip().partition(":")
    kind = _KIND_ALIASES.get(kind_text.strip().lower())
    raw = raw.strip()
    if not sep or kind is None or not raw:
        raise UnknownAreaError(f"area {spec!r} is not understood; use {AREA_FORMS}")
    if kind in SHAPE_KINDS:
        _shape(kind, raw)  # refused here if it is not a valid shape
        return AreaRef(kind, raw)
    if kind == "cell":
        if not CELL_ID.match(raw):
            raise UnknownAreaError(
                f"cell {raw!r} is not a cell id (letters, digits and ._:- , at most 32)"
            )
        return AreaRef(kind, raw)
    code = raw.upper()
    if kind == "commune" and not _COMMUNE.match(code):
        raise UnknownAreaError(f"commune {code!r} is not an INSEE code (5 characters, e.g. 75056)")
    return AreaRef(kind, code)


def cells_named(refs: Iterable[AreaRef]) -> list[str]:
    """The cell ids among area references (the store looks up their départements)."""
    return sorted({ref.code for ref in refs if ref.kind == "cell"})


def commune_departement(insee: str) -> str:
    """The département an INSEE commune code belongs to (971xx -> 971, 2A004 -> 2A)."""
    return insee[:3] if insee.startswith("97") else insee[:2]


@dataclass
class _Building:
    """The areas named in one département, on one side (included or excluded)."""

    whole: bool = False
    communes: set[str] = field(default_factory=set)
    cells: set[str] = field(default_factory=set)

    def add(self, kind: str, code: str) -> None:
        if kind == "dep":
            self.whole = True
        elif kind == "commune":
            self.communes.add(code)
        else:
            self.cells.add(code)

    def minus(self, out: _Building) -> Selection | None:
        """This département's share of the target once `out` is excluded; None if nothing."""
        if out.whole:
            return None
        if self.whole:
            return Selection(None, _NONE, frozenset(out.communes), frozenset(out.cells))
        # A subscriber has one commune and one cell: excluding a chosen one is dropping it.
        communes = frozenset(self.communes - out.communes)
        cells = frozenset(self.cells - out.cells)
        if not communes and not cells:
            return None
        # Only the other kind's exclusions still matter: a chosen cell's subscribers who live
        # in an excluded commune, a chosen commune's who are in an excluded cell.
        return Selection(
            communes,
            cells,
            frozenset(out.communes) if cells else _NONE,
            frozenset(out.cells) if communes else _NONE,
        )


def resolve_target(
    include: Iterable[AreaRef],
    index: AreaIndex,
    exclude: Iterable[AreaRef] = (),
    test_group_only: bool = False,
) -> Target:
    """Turn area references into a Target, refusing any area the index does not know.

    Exclusions win over inclusions whatever their order: `region:11` minus `dep:92` minus
    `commune:75056` minus `cell:X` keeps the rest of Île-de-France.
    """
    chosen = _by_departement(include, index)
    excluded = _by_departement(exclude, index)
    shares = {
        dep: share
        for dep, entry in chosen.items()
        if (share := entry.minus(excluded.get(dep, _Building()))) is not None
    }
    if not shares:
        if chosen:
            raise InputError(
                "the exclusions remove every area of the target (--exclude / `exclude` takes "
                "out all that --area / `areas` names): nothing would be sent; check them"
            )
        raise UnknownAreaError(f"the target is empty; name at least one area ({AREA_FORMS})")
    return Target.of(shares, test_group_only)


def _by_departement(refs: Iterable[AreaRef], index: AreaIndex) -> dict[str, _Building]:
    """The areas named, per département they touch (in the order first touched)."""
    per_dep: dict[str, _Building] = {}
    for ref in refs:
        for dep, kind, code in _expand(ref, index):
            per_dep.setdefault(dep, _Building()).add(kind, code)
    return per_dep


def _expand(ref: AreaRef, index: AreaIndex) -> list[tuple[str, str, str]]:
    """(département, kind, code) for each département an area touches."""
    if ref.kind == "region":
        deps = index.departements_of_region(ref.code)
        if not deps:
            raise UnknownAreaError(
                f"unknown region {ref.code!r}; run `broadcaster areas --regions` to list regions"
            )
        return [(dep, "dep", dep) for dep in deps]
    if ref.kind == "dep":
        if ref.code not in index.departements:
            raise UnknownAreaError(
                f"unknown département {ref.code!r}; run `broadcaster areas` to list them"
            )
        return [(ref.code, "dep", ref.code)]
    if ref.kind == "cell":
        deps = sorted(index.cell_departements.get(ref.code, ()))
        if not deps:
            raise UnknownAreaError(
                f"no subscriber is in cell {ref.code!r}: check the id (cell ids are case-"
                "sensitive and come from the subscriber import; `broadcaster areas --departement "
                "DEP` lists a département's cells)"
            )
        return [(dep, "cell", ref.code) for dep in deps]
    dep = commune_departement(ref.code)
    if dep not in index.departements:
        raise UnknownAreaError(f"commune {ref.code!r} is in no known département ({dep!r})")
    return [(dep, "commune", ref.code)]


@dataclass(frozen=True)
class ShapeReach:
    """One shape of a target: the cells it meets and how far they spill outside it."""

    shape: str
    cells: int
    overspill: float
    """The share (0-1) of those cells' coverage that lies outside the shape."""


@dataclass(frozen=True)
class PresenceSummary:
    """What a preview shows of the geographic part of a target, beyond its recipients."""

    mode: Mode
    window_s: int
    cells: int
    """Cells selected for the present part (all départements)."""
    present: int
    """Numbers seen within the window in those cells (reached by the present part)."""
    stale: int
    """Numbers last seen in those cells before the window (not reached)."""
    shapes: tuple[ShapeReach, ...] = ()
    visitors: tuple[tuple[str, str, int], ...] = ()
    """(country, language, numbers) of the visitors reached."""

    def as_json(self) -> dict[str, object]:
        return {
            "mode": self.mode,
            "window_hours": round(self.window_s / 3600, 2),
            "cells": self.cells,
            "present": self.present,
            "stale": self.stale,
            "visitors": sum(n for _c, _l, n in self.visitors),
            "shapes": [
                {"shape": s.shape, "cells": s.cells, "overspill": round(s.overspill, 3)}
                for s in self.shapes
            ],
            "visitors_by_country": [
                {"country": c, "language": lang, "numbers": n} for c, lang, n in self.visitors
            ],
        }

    def lines(self) -> list[str]:
        """The preview's words."""
        out = [
            f"mode {self.mode}: {self.cells:,} cell(s) selected, {self.present:,} number(s) "
            f"seen there within {self.window_s / 3600:g} h, {self.stale:,} stale (seen before, "
            "not reached)"
        ]
        out += [
            f"{s.shape}: {s.cells:,} cell(s), overspill {s.overspill:.0%} of their coverage "
            "lies outside the shape"
            for s in self.shapes
        ]
        if self.visitors:
            out.append(
                "visitors: " + ", ".join(f"{n:,} {c} ({lang})" for c, lang, n in self.visitors)
            )
        return out
