"""The areas a crisis cell picks from: regions and départements with their subscriber counts,
and a search by name or code that forgives accents and case ("ile de france", "2a")."""

from __future__ import annotations

import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from broadcaster.commands import areas
from broadcaster.commands.context import Context


@dataclass(frozen=True)
class AreaChoice:
    value: str
    """As the API takes it: `dep:75`, `region:11`."""
    code: str
    name: str
    parent: str
    """The region of a département ("" for a region)."""
    subscribers: int
    test_group: int


async def load_choices(ctx: Context) -> tuple[list[AreaChoice], list[AreaChoice]]:
    """(regions, départements) with their subscriber counts."""
    region_rows, departement_rows = await areas.counts(ctx)
    regions = [
        AreaChoice(
            f"region:{r['code']}", r["code"], r["name"], "", r["subscribers"], r["test_group"]
        )
        for r in region_rows
    ]
    departements = [
        AreaChoice(
            f"dep:{d['code']}",
            d["code"],
            d["name"],
            d["region_name"],
            d["subscribers"],
            d["test_group"],
        )
        for d in departement_rows
    ]
    return regions, departements


def fold(text: str) -> str:
    """Lower case, no accents, hyphens and apostrophes as spaces: what people type."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.casefold().replace("-", " ").replace("'", " ").split())


def search_text(choice: AreaChoice) -> str:
    return fold(f"{choice.code} {choice.name} {choice.parent} {choice.value}")


def matches(choice: AreaChoice, query: str) -> bool:
    """Every word of the query appears in the code, name, region or value."""
    haystack = search_text(choice)
    return all(word in haystack for word in fold(query).split())


def filter_choices(
    choices: Sequence[AreaChoice], query: str, keep: Collection[str] = ()
) -> list[AreaChoice]:
    """The choices matching `query`, plus those already chosen (`keep`): a search never
    silently drops a ticked area."""
    return [c for c in choices if c.value in keep or matches(c, query)]
