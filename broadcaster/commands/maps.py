"""The console's map: outlines to draw, the reach of a target while it is being drawn, and a
broadcast's areas with how far each has got.

`reach` counts exactly what a preview counts (`planning.reach`, the dry run's own code) without
rendering texts, so the map's figures and the API's dry run agree for the same areas; it stores
nothing and is not audited (a shape being dragged asks it several times a second)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final

from broadcaster.commands import planning
from broadcaster.commands.access import authorize
from broadcaster.commands.context import Context
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.domain.states import FINAL
from broadcaster.errors import InputError
from broadcaster.store import maps
from broadcaster.store.audit import subject_of
from broadcaster.store.broadcasts import get_broadcast
from broadcaster.store.database import Conn

MAX_CELLS_DRAWN: Final = 1000
"""Cells drawn at most (a region's thousands of sectors would only blacken the map: the count
is still given)."""
MAX_AREAS: Final = 500


async def outlines(ctx: Context, caller: Caller, kind: str) -> dict[str, Any]:
    """The outlines of the départements or of the regions, as a GeoJSON FeatureCollection."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "listBroadcasts")
        if kind == "regions":
            return await maps.region_outlines(conn)
        return await maps.departement_outlines(conn)


def _request(areas: Sequence[str], kind: str, caller: Caller) -> BroadcastRequest:
    if kind not in ("live", "drill"):
        raise InputError(f"kind must be 'live' or 'drill', not {kind!r}")
    if not areas:
        raise InputError("choose at least one area: click a département or draw a shape")
    if len(areas) > MAX_AREAS:
        raise InputError(f"at most {MAX_AREAS} areas, not {len(areas)}")
    return BroadcastRequest(
        areas=tuple(areas), template="", variables={}, kind=kind, created_by=caller.name
    )


async def reach(ctx: Context, caller: Caller, areas: Sequence[str], kind: str) -> dict[str, Any]:
    """Recipients (per département), the geographic preview (cells selected, present, stale,
    each shape's overspill) and the selected cells' coverage to draw; InputError as a preview
    would refuse the areas (nothing stored)."""
    request = _request(areas, kind, caller)
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "createBroadcast")
        resolved, counts = await planning.reach(conn, request)
        target = resolved.target
        cells = sorted(
            {c for per in (target.present, target.cells) for cs in per.values() for c in cs}
        )
        drawn = await maps.cell_outlines(conn, cells, MAX_CELLS_DRAWN)
    by_dep: dict[str, int] = {}
    for (dep, _lang), n in counts.items():
        by_dep[dep] = by_dep.get(dep, 0) + n
    return {
        "recipients": sum(counts.values()),
        "departements": dict(sorted(by_dep.items())),
        "presence": None if resolved.summary is None else resolved.summary.as_json(),
        "cells_total": len(cells),
        "cells": drawn,
    }


def shares(progress: list[maps.AreaProgress]) -> dict[str, dict[str, Any]]:
    """Per département: recipients, chunks, chunks done and their share, parts planned and
    delivered and their share (what the map colours)."""
    return {
        a.departement: {
            "recipients": a.recipients,
            "chunks": a.chunks,
            "done": a.done,
            "share": round(a.share, 3),
            "parts": a.parts,
            "delivered": a.delivered,
            "delivered_share": round(a.delivered_share, 3),
        }
        for a in progress
    }


async def watched_areas(conn: Conn, broadcast_id: int) -> dict[str, dict[str, Any]]:
    """`shares` of a broadcast, for the shared progress reader (on its own connection; whoever
    reads it was authorised when their stream opened, as for `broadcasts.watched`)."""
    return shares(await maps.areas_progress(conn, broadcast_id))


async def broadcast_areas(ctx: Context, caller: Caller, broadcast_id: int) -> dict[str, Any]:
    """A broadcast's areas as named, its départements with their recipients, the share of their
    chunks done and of their parts delivered, and the cells it selected (to draw)."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getBroadcast", subject_of("broadcast", broadcast_id))
        row = await get_broadcast(conn, broadcast_id)
        target = json.loads(row["target"])
        progress = await maps.areas_progress(conn, broadcast_id)
        cells = sorted(
            {c for per in ("present", "cells") for cs in target.get(per, {}).values() for c in cs}
        )
        drawn = await maps.cell_outlines(conn, cells, MAX_CELLS_DRAWN)
    return {
        "broadcast_id": broadcast_id,
        "state": row["state"],
        "final": row["state"] in FINAL,
        "areas": list(target.get("areas", [])),
        "exclude": list(target.get("exclude", [])),
        "whole": sorted(
            code for code, communes in target.get("departements", {}).items() if communes is None
        ),
        # ^ départements all of whose residents are reached (the others: some communes, or the
        #   cells of a shape or of cell ids; the map outlines those, it does not fill them)
        "departements": shares(progress),
        "cells_total": len(cells),
        "cells": drawn,
    }
