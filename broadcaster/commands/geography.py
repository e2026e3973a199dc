"""From what an operator names to a target with a geographic part: shapes (polygon, circle) are
resolved to the cells whose coverage meets them; each area reaches the numbers **present** in its
cells (seen within the freshness window, visitors included), the subscribers **resident** there
(home cell, commune or département), or both, by the request's mode.

Mode `auto` (the default): present for a shape, resident for an administrative area or a cell
id, because the texts of a département name its own fallback numbers, which are its residents'
concern, and because that is what those targets always meant here. Exclusions apply to both
parts: an excluded area's cells leave the present part, its residents the resident part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import phonenumbers

from broadcaster.domain.languages import ISO_639_1
from broadcaster.errors import InputError
from broadcaster.store import geo
from broadcaster.store.areas import load_area_index
from broadcaster.store.database import Conn
from broadcaster.targeting import (
    MODES,
    AreaIndex,
    AreaRef,
    Mode,
    PresenceSummary,
    ShapeReach,
    Target,
    cells_named,
    resolve_target,
)

MAX_WINDOW_S = 7 * 24 * 3600


_COUNTRY = re.compile(r"^[A-Z]{2}$")
_LANG = re.compile(r"^[a-z]{2}$")


def check_visitor_languages(languages: Mapping[str, str]) -> dict[str, str]:
    """Country -> language overrides, checked (ISO 3166 alpha-2 -> ISO 639-1)."""
    out = {}
    for country, lang in languages.items():
        if not _COUNTRY.match(country) or not _LANG.match(lang):
            raise InputError(
                f"visitor language {country}={lang} is not COUNTRY=lang (e.g. CH=de: an ISO "
                "3166 country code, an ISO 639-1 language code)"
            )
        # Well-formed is not enough: a typo (XX=de, CH=dd) would change nobody's text, silently.
        if country not in phonenumbers.SUPPORTED_REGIONS:
            raise InputError(
                f"visitor language {country}={lang}: {country} is not a country code (ISO 3166 "
                "alpha-2, e.g. CH, GB, DE)"
            )
        if lang not in ISO_639_1:
            raise InputError(
                f"visitor language {country}={lang}: {lang!r} is not an ISO 639-1 language code "
                "(de, en, it, ...)"
            )
        out[country] = lang
    return out


def check_mode(mode: str, window_s: int) -> Mode:
    """The mode, checked, with a window within (0, 7 days]."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    if not 0 < window_s <= MAX_WINDOW_S:
        raise InputError(
            f"the freshness window must be above 0 and at most 7 days, not {window_s} s"
        )
    return mode


@dataclass
class _Sides:
    present: dict[str, str] = field(default_factory=dict)  # cell -> its département
    resident: list[AreaRef] = field(default_factory=list)
    shapes: list[tuple[AreaRef, geo.CellsMet]] = field(default_factory=list)


@dataclass(frozen=True)
class Resolved:
    target: Target
    index: AreaIndex
    summary: PresenceSummary | None
    present_counts: dict[tuple[str, str], int] = field(default_factory=dict)
    """Numbers present per (département of their cell, language)."""


async def resolve(
    conn: Conn,
    include: Sequence[AreaRef],
    exclude: Sequence[AreaRef],
    *,
    mode: Mode,
    window_s: int,
    test_group_only: bool,
    visitor_languages: Mapping[str, str] | None = None,
) -> Resolved:
    """The target of these areas in this mode; InputError when it would reach nobody."""
    if not any(r.is_shape for r in (*include, *exclude)) and mode in ("auto", "resident"):
        index = await load_area_index(conn, cells_named([*include, *exclude]))
        target = resolve_target(include, index, exclude=exclude, test_group_only=test_group_only)
        return Resolved(target, index, None)
    base = await load_area_index(conn)
    chosen = await _sides(conn, include, mode, base, excluding=False)
    dropped = await _sides(conn, exclude, mode, base, excluding=True)
    present = {c: d for c, d in chosen.present.items() if c not in dropped.present}
    index = await load_area_index(conn, cells_named([*chosen.resident, *dropped.resident]))
    resident = [r for r in chosen.resident if r.kind != "cell" or r.code in index.cell_departements]
    no_resident = [
        r for r in dropped.resident if r.kind != "cell" or r.code in index.cell_departements
    ]
    if resident:
        target = resolve_target(
            resident, index, exclude=no_resident, test_group_only=test_group_only
        )
    elif present:
        target = Target({}, test_group_only)
    else:
        raise InputError(
            "the target reaches nobody: the areas named have no cell left once the exclusions "
            "are taken out, and no resident subscriber; check the shapes and --mode",
            code="empty_target",
        )
    by_dep: dict[str, set[str]] = {}
    for cell, dep in present.items():
        by_dep.setdefault(dep, set()).add(cell)
    target = target.with_presence(
        {dep: frozenset(cells) for dep, cells in by_dep.items()},
        window_s,
        mode,
        check_visitor_languages(visitor_languages or {}),
    )
    counts, stats = await geo.presence(conn, target)
    summary = PresenceSummary(
        target.mode,
        target.present_window_s,
        len(present),
        sum(counts.values()),
        stats.stale,
        tuple(
            ShapeReach(ref.shape().describe(), len(met.departements), met.overspill)
            for ref, met in chosen.shapes
        ),
        stats.visitors,
    )
    return Resolved(target, index, summary, counts)


def _presents(ref: AreaRef, mode: Mode) -> bool:
    return mode in ("present", "both") or (mode == "auto" and ref.is_shape)


def _resides(ref: AreaRef, mode: Mode) -> bool:
    return mode in ("resident", "both") or (mode == "auto" and not ref.is_shape)


async def _sides(
    conn: Conn, refs: Sequence[AreaRef], mode: Mode, index: AreaIndex, *, excluding: bool
) -> _Sides:
    """Each area's present cells and resident references (an excluded area counts on both)."""
    out = _Sides()
    for ref in refs:
        cells, met = await _cells_of(conn, ref, index, excluding=excluding)
        if not excluding and _presents(ref, mode) and not cells:
            raise InputError(
                f"{ref.kind}:{ref.code if not ref.is_shape else '...'} has no cell to find "
                "people present in (communes have no cells; import cells with `broadcaster "
                "cells import`); use --mode resident for its residents; nothing sent",
                code="no_cells",
            )
        if met is not None:
            out.shapes.append((ref, met))
        if excluding or _presents(ref, mode):
            out.present.update(cells)
        if excluding or _resides(ref, mode):
            if ref.is_shape:
                out.resident += [AreaRef("cell", c) for c in sorted(cells)]
            else:
                out.resident.append(ref)
    return out


async def _cells_of(
    conn: Conn, ref: AreaRef, index: AreaIndex, *, excluding: bool
) -> tuple[dict[str, str], geo.CellsMet | None]:
    """Cell -> département of the cells an area stands for (a commune has none); for a shape
    included, how much of their coverage lies inside it too."""
    if not ref.is_shape:
        return await _area_cells(conn, ref, index), None
    shape = ref.shape()
    if excluding:
        return await geo.shape_cells(conn, shape), None
    met = await geo.shape_cells_inside(conn, shape)
    if not met.departements:
        hint = (
            " (with latitude and longitude swapped it would meet cells: points and centres "
            "are LAT,LON)"
            if await geo.meets_cells_flipped(conn, shape)
            else ""
        )
        raise InputError(
            f"the {shape.describe()} meets no cell{hint}: check its coordinates, and that "
            "cells are imported (`broadcaster cells import` or `cells synth`); nothing sent",
            code="shape_meets_no_cell",
        )
    return met.departements, met


async def _area_cells(conn: Conn, ref: AreaRef, index: AreaIndex) -> dict[str, str]:
    if ref.kind == "cell":
        return await geo.known_cells(conn, [ref.code])
    if ref.kind == "dep":
        return await geo.departement_cells(conn, [ref.code])
    if ref.kind == "region":
        return await geo.departement_cells(conn, index.departements_of_region(ref.code))
    return {}
