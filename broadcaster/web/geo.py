"""The map's JSON: outlines of départements and regions (offline: the package's own data, never
a third-party server), the reach of a target as the crisis cell draws it, and a broadcast's areas
with how far each has got. The pages draw them with the vendored Leaflet (static/vendor/).

Answers are JSON, errors too (`{"error": ...}` with the status a preview would have): the map's
script shows the message beside the map instead of a page."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

from aiohttp import web

from broadcaster.commands import maps
from broadcaster.domain.caller import Caller
from broadcaster.errors import InputError
from broadcaster.http.context import SERVICES
from broadcaster.http.errors import ApiError
from broadcaster.http.guard import limit
from broadcaster.web.state import user_of

_outlines: dict[str, bytes] = {}
"""Gzipped outlines by kind, built once per process (reference data: the same for every
visitor; about 140 kB for the départements once compressed)."""

BUILDING = web.AppKey("map_outlines_building", dict[str, asyncio.Task[bytes]])
"""The outlines being built (kind -> task): one build for every request that asks meanwhile."""
BUILD_WAIT_S = 30.0
"""How long a shutdown waits for outlines being built (a few hundred ms each)."""


def _caller(request: web.Request) -> Caller:
    caller = user_of(request)
    if caller is None:
        raise web.HTTPUnauthorized(
            text=json.dumps({"error": "sign in again"}), content_type="application/json"
        )
    return caller


def _json(data: Any, status: int = 200) -> web.Response:
    """JSON, gzipped when the browser takes it (a thousand cells' outlines are ~400 kB)."""
    response = web.json_response(data, status=status, dumps=_dumps)
    response.headers["Cache-Control"] = "no-store"
    response.enable_compression()
    return response


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _refused(exc: InputError | ApiError) -> web.Response:
    if isinstance(exc, ApiError):
        response = _json({"error": exc.message, "details": list(exc.details or [])}, exc.status)
        response.headers.update(exc.headers or {})  # (Retry-After of a 429)
        return response
    return _json({"error": str(exc), "details": list(exc.details or [])}, exc.status)


async def outlines(request: web.Request) -> web.StreamResponse:
    """GET /geo/{kind}.json: département or region outlines (GeoJSON), gzipped."""
    caller = _caller(request)
    kind = request.match_info["kind"]
    body = _outlines.get(kind) or await _built(request.app, caller, kind)
    if "gzip" not in request.headers.get("Accept-Encoding", ""):
        return web.Response(body=gzip.decompress(body), content_type="application/json")
    return web.Response(
        body=body,
        content_type="application/json",
        headers={"Content-Encoding": "gzip", "Cache-Control": "private, max-age=3600"},
    )


async def _built(app: web.Application, caller: Caller, kind: str) -> bytes:
    """The outlines of `kind`, built once for all who ask meanwhile, and never interrupted by
    a request that goes away: the build (PostGIS dissolving the regions with GEOS, ~0.4 s) runs
    as a task of its own. A GEOS operation cancelled mid-way once took the whole PostgreSQL
    server down (a backend aborted on a corrupt heap, PostGIS 3.3 / GEOS 3.11): not ours to
    fix, so the console does not cancel one; its shutdown waits for them (`finish_building`)."""
    building = app[BUILDING]
    task = building.get(kind)
    if task is None:
        task = building[kind] = asyncio.create_task(_build(app, caller, kind))
        task.add_done_callback(lambda _task: building.pop(kind, None))
    return await asyncio.shield(task)


async def _build(app: web.Application, caller: Caller, kind: str) -> bytes:
    collection = await maps.outlines(app[SERVICES].commands, caller, kind)
    body = _outlines[kind] = gzip.compress(_dumps(collection).encode(), 6)
    return body


async def finish_building(app: web.Application) -> None:
    """On shutdown: let the outlines being built finish before the database pool closes."""
    tasks = list(app[BUILDING].values())
    if tasks:
        await asyncio.wait(tasks, timeout=BUILD_WAIT_S)


async def reach(request: web.Request) -> web.StreamResponse:
    """GET /geo/reach?kind=live&area=dep:75&area=polygon:...: what the areas reach."""
    caller = _caller(request)
    areas = [a.strip() for a in request.query.getall("area", []) if a.strip()]
    try:
        # Each asks the database for a plan's count: within the holder's rate, as the API's
        # dry run is (the page only debounces; a script could ask without end).
        limit(request.app[SERVICES], caller)
        answer = await maps.reach(
            request.app[SERVICES].commands, caller, areas, request.query.get("kind", "live")
        )
    except (InputError, ApiError) as exc:
        return _refused(exc)
    return _json(answer)


async def broadcast_areas(request: web.Request) -> web.StreamResponse:
    """GET /broadcasts/{id}/map.json: the broadcast's areas and how far each has got."""
    caller = _caller(request)
    try:
        answer = await maps.broadcast_areas(
            request.app[SERVICES].commands, caller, int(request.match_info["broadcast_id"])
        )
    except (InputError, ApiError) as exc:
        return _refused(exc)
    return _json(answer)


async def tiles(request: web.Request) -> web.StreamResponse:
    """GET /geo/tiles.json: the optional tile server (`map_tiles_url`; null: outlines only)."""
    _caller(request)
    settings = request.app[SERVICES].settings
    return _json(
        {"url": settings.map_tiles_url or None, "attribution": settings.map_tiles_attribution}
    )


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/geo/tiles.json", tiles, name="map_tiles")
    router.add_get("/geo/{kind:departements|regions}.json", outlines, name="map_outlines")
    router.add_get("/geo/reach", reach, name="map_reach")
    router.add_get(
        "/broadcasts/{broadcast_id:[0-9]{1,18}}/map.json", broadcast_areas, name="map_broadcast"
    )
