"""The console map's JSON over real HTTP against a real database with PostGIS: outlines of
départements and regions from the app itself, the reach of a drawn shape equal to the API's dry
run for the same shape, bad shapes refused with nothing stored, a broadcast's areas."""

from __future__ import annotations

import asyncio
import gzip
import json
from typing import Any

from aiohttp import web
from fixtures_web import MakeLab, sign_in
from map_cells import AROUND_P1, add_cells_and_locations

from broadcaster.domain.caller import Caller
from broadcaster.http.context import SERVICES
from broadcaster.web import geo


async def _get(client: Any, path: str, **params: Any) -> tuple[int, Any]:
    async with client.get(path, params=params) as response:
        return response.status, await response.json()


async def test_outlines_of_departements_and_regions_come_from_the_app(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab()
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    async with client.get("/console/geo/departements.json", auto_decompress=False) as response:
        assert response.status == 200
        assert response.headers["Content-Encoding"] == "gzip"
        departements = json.loads(gzip.decompress(await response.read()))
    features = departements["features"]
    assert len(features) == 101
    paris = next(f for f in features if f["properties"]["code"] == "75")
    assert paris["properties"] == {
        "code": "75", "name": "Paris", "region": "11", "region_name": "Île-de-France"
    }  # fmt: skip
    assert paris["geometry"]["type"] in ("Polygon", "MultiPolygon")
    status, regions = await _get(client, "/console/geo/regions.json")
    assert status == 200
    assert len(regions["features"]) == 18  # 13 metropolitan, 5 overseas
    assert {f["properties"]["code"] for f in regions["features"]} >= {"11", "93", "94", "01"}
    # A region is its outline, with no slivers left inside where its départements' borders do
    # not quite meet (Île-de-France had 33, drawn as stray lines around Paris).
    idf = next(f for f in regions["features"] if f["properties"]["code"] == "11")["geometry"]
    polygons = [idf["coordinates"]] if idf["type"] == "Polygon" else idf["coordinates"]
    assert [len(rings) for rings in polygons] == [1]
    status, tiles = await _get(client, "/console/geo/tiles.json")
    assert (status, tiles) == (200, {"url": None, "attribution": ""})  # outlines only


async def test_the_map_and_the_api_dry_run_count_the_same_for_a_shape(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab()
    await add_cells_and_locations(lab.db)
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    status, reach = await _get(client, "/console/geo/reach", kind="live", area=AROUND_P1)
    assert status == 200, reach
    assert reach["recipients"] == 7
    assert reach["cells_total"] == 1
    assert [c["properties"]["cell"] for c in reach["cells"]["features"]] == ["P1"]
    presence = reach["presence"]
    assert (presence["cells"], presence["present"], presence["stale"]) == (1, 7, 1)
    assert presence["shapes"][0]["overspill"] == 0  # P1 lies inside the polygon

    body = {"areas": [AROUND_P1], "template": "outage", "dry_run": True}
    headers = {"Authorization": f"Bearer {lab.tokens['alice']}"}
    async with client.post("/v1/broadcasts", json=body, headers=headers) as response:
        assert response.status == 200
        dry_run = (await response.json())["preview"]
    assert dry_run["recipients"] == reach["recipients"]
    assert dry_run["presence"] == presence

    # Départements picked on the map: their residents (auto mode), as the dry run counts them.
    status, picked = await _get(
        client, "/console/geo/reach", kind="live", area=["dep:75", "dep:92"]
    )
    assert (status, picked["recipients"]) == (200, 15)
    assert picked["departements"] == {"75": 12, "92": 3}
    assert picked["presence"] is None
    status, drill = await _get(client, "/console/geo/reach", kind="drill", area="dep:75")
    assert (status, drill["recipients"]) == (200, 3)  # the test group only


async def test_bad_areas_are_refused_in_json_and_nothing_is_stored(console_lab: MakeLab) -> None:
    lab = await console_lab()
    await add_cells_and_locations(lab.db)
    client = await lab.client()
    audit_before = await lab.count("audit_log")
    async with client.get("/console/geo/reach", params={"area": "dep:75"}) as response:
        assert response.status == 401  # not signed in: JSON, not a page
    await sign_in(client, lab.tokens["alice"])
    crossing = "polygon:48.85,2.33 48.87,2.36 48.87,2.33 48.85,2.36 48.85,2.33"
    cases = {
        crossing: "crosses itself",
        AROUND_P1[:-11]: "not closed",
        "circle:48.86,2.34,0": "radius",
        "circle:2.34,48.86,1": "meets no cell",
        "polygon:44.0,5.0 44.1,5.0 44.1,5.1 44.0,5.0": "meets no cell",
        "dep:999": "999",
    }
    for area, words in cases.items():
        status, answer = await _get(client, "/console/geo/reach", kind="live", area=area)
        assert status == 422, (area, answer)
        assert words in answer["error"], (area, answer)
    status, answer = await _get(client, "/console/geo/reach", kind="live")
    assert status == 422 and "choose at least one area" in answer["error"]
    status, answer = await _get(client, "/console/geo/reach", kind="public", area="dep:75")
    assert status == 422 and "kind" in answer["error"]
    assert await lab.count("broadcasts") == 0
    assert await lab.count("audit_log") == audit_before + 1  # the sign-in, nothing else


async def test_a_broadcast_map_names_its_areas_and_counts_per_departement(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab(threshold=1000)
    await add_cells_and_locations(lab.db)
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    body = {"areas": [AROUND_P1, "dep:92"], "template": "outage",
            "allow_language_fallback": True}  # fmt: skip
    headers = {"Authorization": f"Bearer {lab.tokens['alice']}"}
    async with client.post("/v1/broadcasts", json=body, headers=headers) as response:
        created = await response.json()
        assert response.status == 201, created
    broadcast_id = created["broadcast"]["broadcast_id"]
    status, answer = await _get(client, f"/console/broadcasts/{broadcast_id}/map.json")
    assert status == 200, answer
    assert answer["areas"] == [AROUND_P1, "dep:92"]
    assert answer["whole"] == ["92"]  # 75 holds the polygon's cell only
    assert answer["final"] is False
    deps = answer["departements"]
    assert deps["75"]["recipients"] + deps["92"]["recipients"] == 7 + 3
    assert all(d["done"] == 0 and d["share"] == 0 for d in deps.values())
    assert all(d["delivered"] == 0 and d["delivered_share"] == 0 for d in deps.values())
    assert all(d["parts"] >= d["recipients"] > 0 for d in deps.values())
    assert [c["properties"]["cell"] for c in answer["cells"]["features"]] == ["P1"]
    # A commune is a part of its département: outlined on the map, not filled.
    body = {**body, "areas": ["commune:75056", "dep:92"]}
    async with client.post("/v1/broadcasts", json=body, headers=headers) as response:
        created = await response.json()
        assert response.status == 201, created
    second = created["broadcast"]["broadcast_id"]
    status, answer = await _get(client, f"/console/broadcasts/{second}/map.json")
    assert (status, answer["whole"], sorted(answer["departements"])) == (200, ["92"], ["75", "92"])
    status, missing = await _get(client, "/console/broadcasts/999999/map.json")
    assert status == 404, missing


async def test_the_reach_of_a_shape_is_asked_within_the_holders_rate(console_lab: MakeLab) -> None:
    """The map asks as the shape changes; a script asking without end gets 429, as the API's
    dry run would, and no answer from the database."""
    lab = await console_lab(rate_per_second=0.01, rate_burst=3)
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    statuses = [(await _get(client, "/console/geo/reach", kind="live", area="dep:75"))[0]
                for _ in range(4)]  # fmt: skip
    assert statuses == [200, 200, 200, 429]
    async with client.get(
        "/console/geo/reach", params={"kind": "live", "area": "dep:75"}
    ) as response:
        assert response.status == 429 and int(response.headers["Retry-After"]) >= 1
        assert "too many requests" in (await response.json())["error"]


async def _regions_building(db: Any) -> int:
    async with db.acquire() as conn:
        for _ in range(500):
            found = int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                    " AND query LIKE '%ST_UnaryUnion%' AND pid <> pg_backend_pid()"
                )
            )
            if found:
                return found
            await asyncio.sleep(0.01)
    return 0


async def test_the_outlines_build_outlives_a_request_that_goes_away(
    console_lab: MakeLab,
) -> None:
    """The regions' outlines take PostGIS (GEOS) ~0.4 s. A request cancelled meanwhile (a
    console shutting down past its grace, a client gone) does not cancel the statement: a
    cancelled GEOS operation once brought the whole PostgreSQL server down. The build runs on,
    shared by every request asking meanwhile, and a shutdown waits for it."""
    lab = await console_lab()
    app = web.Application()
    app[SERVICES] = lab.server.app[SERVICES]
    app[geo.BUILDING] = {}
    alice = Caller(name="alice", role="admin", interface="console")
    geo._outlines.pop("regions", None)
    asking = [asyncio.create_task(geo._built(app, alice, "regions")) for _ in range(3)]
    assert await _regions_building(lab.db) == 1  # three asking, one build
    for task in asking:
        task.cancel()
    await asyncio.gather(*asking, return_exceptions=True)
    assert "regions" not in geo._outlines  # still being built...
    await geo.finish_building(app)  # (what a shutdown awaits)
    assert "regions" in geo._outlines  # ...and finished, not cancelled
    assert app[geo.BUILDING] == {}
    # The next request is served from what was built.
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    status, regions = await _get(client, "/console/geo/regions.json")
    assert (status, len(regions["features"])) == (200, 18)
