"""Areas from the database: the index targeting resolves against, and per-area variables."""

from __future__ import annotations

from collections.abc import Iterable

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.targeting import AreaIndex, Departement


async def load_area_index(conn: Conn) -> AreaIndex:
    rows = await conn.fetch(queries["list_departements"])
    return AreaIndex(
        departements={
            r["code"]: Departement(r["code"], r["name"], r["region_code"], r["default_language"])
            for r in rows
        },
        region_names={r["region_code"]: r["region_name"] for r in rows},
    )


async def load_area_variables(conn: Conn, departements: Iterable[str]) -> dict[str, dict[str, str]]:
    variables: dict[str, dict[str, str]] = {}
    for r in await conn.fetch(queries["area_variables"], list(departements)):
        variables.setdefault(r["departement"], {})[r["name"]] = r["value"]
    return variables


async def departement_populations(conn: Conn) -> dict[str, int]:
    rows = await conn.fetch(queries["departement_populations"])
    return {r["code"]: r["population"] for r in rows}
