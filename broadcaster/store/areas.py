"""Areas from the database: the index targeting resolves against, subscriber counts per area,
and per-area template variables (validated by the catalogue's rule for each, every change
recorded in the audit log; reference placeholders marked until a person sets the value)."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.domain.caller import Caller
from broadcaster.domain.variables import (
    VARIABLE_NAME,
    AreaVariables,
    VariableSpec,
)
from broadcaster.errors import InputError, UnknownAreaError
from broadcaster.store import audit
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.store.subscribers import cell_departements
from broadcaster.targeting import AreaIndex, Departement
from broadcaster.text.encoding import non_gsm7_chars

MAX_AREA_VALUE = 160
"""An area variable ends up inside an SMS: longer than one message is certainly a mistake."""
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


async def load_area_variables(conn: Conn, departements: Iterable[str]) -> AreaVariables:
    """The variables of these départements, and which are still reference placeholders."""
    values: dict[str, dict[str, str]] = {}
    placeholders: dict[str, set[str]] = {}
    for r in await conn.fetch(queries["area_variables"], list(departements)):
        values.setdefault(r["departement"], {})[r["name"]] = r["value"]
        if r["placeholder"]:
            placeholders.setdefault(r["departement"], set()).add(r["name"])
    return AreaVariables(values, {dep: frozenset(names) for dep, names in placeholders.items()})


async def placeholder_variables(conn: Conn) -> list[dict[str, Any]]:
    """Every area variable still at its reference placeholder (a fictional number)."""
    return [dict(r) for r in await conn.fetch(queries["placeholder_area_variables"])]


async def accept_placeholders_for_rehearsal(conn: Conn) -> int:
    """Take the reference placeholders as real values, in a database of our own that never
    reaches the public: the demo's scratch database, the load tests', the test suite's. Not
    audited (it is that database's set-up); returns how many values it accepted."""
    status = await conn.execute(queries["accept_placeholders_for_rehearsal"])
    return int(status.rsplit(" ", 1)[-1])


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
    was_placeholder: bool = False
    """The old value was a reference placeholder: setting it (even unchanged) confirmed it."""

    def as_json(self) -> dict[str, Any]:
        return {
            "departement": self.departement,
            "name": self.name,
            "old": self.old,
            "new": self.new,
            "changed": self.changed,
            "was_placeholder": self.was_placeholder,
            "warnings": list(self.warnings),
            "audit_id": self.audit_id,
        }


def validate_area_variable(
    departement: str,
    name: str,
    value: str,
    known_departements: Collection[str],
    variables: Mapping[str, VariableSpec],
) -> tuple[str, str, str, tuple[str, ...]]:
    """Check a new area variable; returns (département, name, value, warnings) normalised.

    Refused with a message saying what to fix: an unknown département, a malformed name or one
    no template reads (`variables`, from the catalogue), and any value its variable's rule
    refuses (`VariableSpec.clean`: blank, invisible characters, not a phone number...), or
    longer than one SMS.
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
    if name not in variables:
        raise InputError(
            f"no template reads a variable {name!r}; known: {', '.join(sorted(variables))} "
            "(declare new ones in templates/catalogue.toml first)"
        )
    text = variables[name].clean(value, limit=MAX_AREA_VALUE)
    return dep, name, text, tuple(_value_warnings(dep, variables[name], text))


def _value_warnings(dep: str, spec: VariableSpec, text: str) -> list[str]:
    """What is allowed but probably not meant: a fictional number, a UCS-2 character."""
    warnings: list[str] = []
    if spec.fictional(text):
        warnings.append(
            f"{text} is in the range reserved for fiction (01 99 00 xx xx): nobody answers it; "
            "fine for a rehearsal, never for the public"
        )
    outside = non_gsm7_chars(text)
    if outside:
        shown = " ".join(repr(c) for c in outside)
        warnings.append(
            f"{shown} is outside the GSM 03.38 alphabet: every message to {dep} will be sent "
            "in UCS-2 (about twice the parts) unless --gsm-safe is used; consider plain letters"
        )
    return warnings


async def set_area_variable(
    conn: Conn,
    departement: str,
    name: str,
    value: str,
    *,
    caller: Caller,
    variables: Mapping[str, VariableSpec],
) -> AreaVariableChange:
    """Validate and store one area variable, recording the change (old and new value) in the
    audit log in the same transaction. An unchanged value writes nothing, unless it was a
    reference placeholder: a person setting it confirms it, which clears the mark.

    `variables` are the catalogue's; a name only the database knows is plain text.
    """
    index = await load_area_index(conn)
    known = {n: VariableSpec(n) for n in await area_variable_names(conn)} | dict(variables)
    dep, name, text, warnings = validate_area_variable(
        departement, name, value, index.departements, known
    )
    async with conn.transaction():
        row = await conn.fetchrow(queries["lock_area_variable"], dep, name)
        old: str | None = None if row is None else row["value"]
        was_placeholder = row is not None and bool(row["placeholder"])
        if old == text and not was_placeholder:
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
            was_placeholder=was_placeholder,
        )
    return AreaVariableChange(dep, name, old, text, True, warnings, audit_id, was_placeholder)


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
            "placeholder": r["placeholder"],
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
