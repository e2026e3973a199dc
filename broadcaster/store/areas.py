"""Areas from the database: the index targeting resolves against, subscriber counts per area,
and per-area template variables (validated, every change recorded in the audit log)."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.domain.caller import Caller
from broadcaster.errors import InputError, UnknownAreaError
from broadcaster.store import audit
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.store.subscribers import cell_departements
from broadcaster.targeting import AreaIndex, Departement
from broadcaster.text.encoding import non_gsm7_chars

VARIABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_AREA_VALUE = 160
"""An area variable ends up inside an SMS: longer than one message is certainly a mistake."""
_PHONE_CHARS = re.compile(r"^\+?[0-9][0-9 .-]*[0-9]$|^[0-9]$")
_PHONE_FORMS = (
    re.compile(r"^0[1-9][0-9]{8}$"),  # French national: 01 99 00 75 00
    re.compile(r"^\+[1-9][0-9]{7,14}$"),  # international: +33 1 99 00 75 00
    re.compile(r"^[1-9][0-9]{2,5}$"),  # short numbers: 112, 3919, 116117
)
AREA_VARIABLE_ACTION = "area_variable_set"


async def load_area_index(conn: Conn, cells: Sequence[str] = ()) -> AreaIndex:
    """The départements and regions, and for the cells named, where they have subscribers."""
    rows = await conn.fetch(queries["list_departements"])
    return AreaIndex(
        departements={
            r["code"]: Departement(r["code"], r["name"], r["region_code"], r["default_language"])
            for r in rows
        },
        region_names={r["region_code"]: r["region_name"] for r in rows},
        cell_departements=await cell_departements(conn, cells),
    )


async def load_area_variables(conn: Conn, departements: Iterable[str]) -> dict[str, dict[str, str]]:
    variables: dict[str, dict[str, str]] = {}
    for r in await conn.fetch(queries["area_variables"], list(departements)):
        variables.setdefault(r["departement"], {})[r["name"]] = r["value"]
    return variables


async def departement_populations(conn: Conn) -> dict[str, int]:
    rows = await conn.fetch(queries["departement_populations"])
    return {r["code"]: r["population"] for r in rows}


# --- subscriber counts per area -----------------------------------------------------------------


async def departement_counts(conn: Conn) -> list[dict[str, Any]]:
    """Every département with its region and its subscribers (all, test group)."""
    return [dict(r) for r in await conn.fetch(queries["subscriber_counts_by_departement"])]


async def region_counts(conn: Conn) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(queries["subscriber_counts_by_region"])]


async def areas_in_departement(conn: Conn, departement: str) -> dict[str, Any]:
    """The communes and cells of a département that have subscribers, with their counts."""
    index = await load_area_index(conn)
    code = departement.strip().upper()
    if code not in index.departements:
        raise UnknownAreaError(
            f"unknown département {departement!r}; run `broadcaster areas` to list them"
        )
    rows = await conn.fetch(queries["subscriber_counts_in_departement"], code)
    out: dict[str, Any] = {"departement": code, "name": index.departements[code].name}
    for kind, key in (("commune", "communes"), ("cell", "cells")):
        out[key] = [
            {"code": r["area"], "subscribers": r["subscribers"], "test_group": r["test_group"]}
            for r in rows
            if r["kind"] == kind
        ]
    return out


# --- area variables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AreaVariableChange:
    """The outcome of `set_area_variable`."""

    departement: str
    name: str
    old: str | None
    new: str
    changed: bool
    warnings: tuple[str, ...]
    audit_id: int | None

    def as_json(self) -> dict[str, Any]:
        return {
            "departement": self.departement,
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "changed": self.changed,
            "warnings": list(self.warnings),
            "audit_id": self.audit_id,
        }


def validate_area_variable(
    departement: str,
    name: str,
    value: str,
    known_departements: Collection[str],
    known_names: Collection[str],
) -> tuple[str, str, str, tuple[str, ...]]:
    """Check a new area variable; returns (département, name, value, warnings) normalised.

    Refused with a message saying what to fix: an unknown département, a malformed name or one
    no template reads, an empty or over-long value, control characters, and for
    `fallback_number` anything that is not a phone number.
    """
    dep = departement.strip().upper()
    if dep not in known_departements:
        raise UnknownAreaError(
            f"unknown département {departement!r}; run `broadcaster areas` to list them"
        )
    if not VARIABLE_NAME.match(name):
        raise InputError(
            f"variable name {name!r} is invalid: lower-case letters, digits and _, "
            "starting with a letter, at most 40 characters"
        )
    if name not in known_names:
        raise InputError(
            f"no template reads a variable {name!r}; known: {', '.join(sorted(known_names))} "
            "(declare new ones in templates/catalogue.toml first)"
        )
    control = sorted({f"U+{ord(c):04X}" for c in value if unicodedata.category(c)[0] == "C"})
    if control:
        raise InputError(
            f"the value of {name} has control or invisible characters ({', '.join(control)}): "
            "type it again as plain text on one line"
        )
    text = " ".join(value.split())
    if not text:
        raise InputError(f"the value of {name} is empty: give the text to put in messages")
    if len(text) > MAX_AREA_VALUE:
        raise InputError(
            f"the value of {name} is {len(text)} characters long; the limit is "
            f"{MAX_AREA_VALUE}: shorten it"
        )
    if name == "fallback_number":
        digits = re.sub(r"[ .-]", "", text)
        if not _PHONE_CHARS.match(text) or not any(f.match(digits) for f in _PHONE_FORMS):
            raise InputError(
                f"fallback_number {text!r} is not a phone number: use 10 digits like "
                "01 99 00 75 00, an international number like +33 1 99 00 75 00, or a short "
                "number like 112"
            )
    warnings: list[str] = []
    outside = non_gsm7_chars(text)
    if outside:
        shown = " ".join(repr(c) for c in outside)
        warnings.append(
            f"{shown} is outside the GSM 03.38 alphabet: every message to {dep} will be sent "
            "in UCS-2 (about twice the parts) unless --gsm-safe is used; consider plain letters"
        )
    return dep, name, text, tuple(warnings)


async def set_area_variable(
    conn: Conn,
    departement: str,
    name: str,
    value: str,
    *,
    caller: Caller,
    known_names: Collection[str],
) -> AreaVariableChange:
    """Validate and store one area variable, recording the change (old and new value) in the
    audit log in the same transaction; an unchanged value writes nothing."""
    index = await load_area_index(conn)
    names = set(known_names) | set(await area_variable_names(conn))
    dep, name, text, warnings = validate_area_variable(
        departement, name, value, index.departements, names
    )
    async with conn.transaction():
        old: str | None = await conn.fetchval(queries["lock_area_variable"], dep, name)
        if old == text:
            return AreaVariableChange(dep, name, old, text, False, warnings, None)
        await conn.execute(queries["upsert_area_variable"], dep, name, text)
        audit_id = await audit.record(
            conn,
            caller,
            AREA_VARIABLE_ACTION,
            f"departement:{dep}",
            departement=dep,
            name=name,
            old=old,
            new=text,
        )
    return AreaVariableChange(dep, name, old, text, True, warnings, audit_id)


async def area_variable_names(conn: Conn) -> list[str]:
    """The names of the variables some département has."""
    return [r["name"] for r in await conn.fetch(queries["area_variable_names"])]


async def list_area_variables(conn: Conn, departement: str | None = None) -> list[dict[str, Any]]:
    """The variables of one département (or all), with when each last changed."""
    deps = await _departement_filter(conn, departement)
    rows = await conn.fetch(queries["list_area_variables"], deps)
    return [
        {
            "departement": r["departement"],
            "departement_name": r["departement_label"],
            "name": r["name"],
            "value": r["value"],
            "updated_at": r["updated_at"].isoformat(),
        }
        for r in rows
    ]


async def area_variable_history(
    conn: Conn, departement: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Recorded changes of area variables, newest first: who, when, old and new value."""
    deps = await _departement_filter(conn, departement)
    rows = await conn.fetch(queries["area_variable_history"], deps, limit)
    changes = []
    for r in rows:
        details = json.loads(r["details"])
        changes.append(
            {
                "id": r["id"],
                "at": r["at"].isoformat(),
                "actor": r["actor"],
                **{key: details.get(key) for key in ("departement", "name", "old", "new")},
            }
        )
    return changes


async def _departement_filter(conn: Conn, departement: str | None) -> list[str] | None:
    if departement is None:
        return None
    index = await load_area_index(conn)
    code = departement.strip().upper()
    if code not in index.departements:
        raise UnknownAreaError(
            f"unknown département {departement!r}; run `broadcaster areas` to list them"
        )
    return [code]
