"""Areas as people pick them (regions and départements with their subscriber counts, names),
and per-area template variables (set with validation, every change audited)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from broadcaster.commands.context import Context
from broadcaster.domain.caller import Caller
from broadcaster.domain.variables import VariableSpec
from broadcaster.store import areas as store
from broadcaster.store.areas import AreaVariableChange


async def counts(ctx: Context) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(regions, départements), each with its subscriber and test-group counts."""
    async with ctx.db.acquire() as conn:
        return await store.region_counts(conn), await store.departement_counts(conn)


async def departement_names(ctx: Context) -> dict[str, str]:
    """Code -> name, to title a preview's cards ("75 Paris")."""
    async with ctx.db.acquire() as conn:
        index = await store.load_area_index(conn)
    return {code: d.name for code, d in index.departements.items()}


async def variable_names(ctx: Context) -> list[str]:
    """The names of the variables some département has (forms show them as per-area)."""
    async with ctx.db.acquire() as conn:
        return await store.area_variable_names(conn)


async def set_variable(
    ctx: Context,
    caller: Caller,
    departement: str,
    name: str,
    value: str,
    variables: Mapping[str, VariableSpec],
) -> AreaVariableChange:
    """Validate (by the catalogue's `variables`) and store one area variable; the change (old
    and new value) is audited."""
    async with ctx.db.acquire() as conn:
        return await store.set_area_variable(
            conn, departement, name, value, caller=caller, variables=variables
        )
