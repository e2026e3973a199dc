"""The console map's answers over real HTTP at scale, against the API's dry run as the baseline
measured in the same run (the map counts with the dry run's own code, without texts, and adds
the selected cells' outlines).

    python -m loadtest.map_reach                      # 1M subscribers, 300k cells (a few minutes)

In a scratch database of its own (dropped at the end), seeded as `loadtest.geo` seeds it (not
timed), behind the API and console served on 127.0.0.1:
1. `outlines_cold_ms` / `outlines_warm_ms`: the départements' and regions' outlines, first
   request of the process (simplified and dissolved by PostGIS) and then (cached, gzipped);
2. for a département-sized polygon (`--departement`'s outline) and a 10 km circle in Paris:
   the dry run's median time (`*_dry_run_ms`, 5 requests), the map's (`*_reach_ms`), their
   ratio, the cells drawn and the answer's size on the wire (gzipped) in bytes.

The last line is one JSON object with these figures. The machine is shared: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from broadcaster.domain.tokens import new_token
from broadcaster.serve import create_app
from broadcaster.settings import Settings
from broadcaster.store import tokens
from loadtest.common import quiet_logs, scratch_database
from loadtest.geo import _departement_polygon, _seed

CIRCLE = "circle:48.8566,2.3522,10"


async def main(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"subscribers": args.subscribers}
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await _seed(conn, args, figures)
            token = new_token()
            await tokens.insert(conn, "mapper", "operator", token, "loadtest")
        finally:
            await conn.close()
        db = await asyncpg.create_pool(dsn, min_size=1, max_size=6)
        runner = web.AppRunner(create_app(Settings(database_url=dsn), db, None, console=True))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            base = f"http://127.0.0.1:{port}"
            jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
            async with aiohttp.ClientSession(base, cookie_jar=jar) as http:
                await _sign_in(http, token)
                await _outlines(http, figures)
                polygon = _departement_polygon(args.departement)
                for name, area in (("polygon", polygon), ("circle", CIRCLE)):
                    await _compare(http, token, name, area, args.repeat, figures)
        finally:
            await runner.cleanup()
            await db.close()
    return figures


async def _sign_in(http: aiohttp.ClientSession, token: str) -> None:
    async with http.get("/console/sign-in") as response:
        page = await response.text()
    csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    async with http.post(
        "/console/sign-in", data={"csrf_token": csrf, "token": token}, allow_redirects=False
    ) as response:
        assert response.status == 303, await response.text()


async def _timed_get(http: aiohttp.ClientSession, path: str, **params: Any) -> tuple[float, int]:
    started = time.perf_counter()
    async with http.get(path, params=params, auto_decompress=False) as response:
        body = await response.read()  # as sent: gzipped when the server compressed it
        assert response.status == 200, body[:500]
    return (time.perf_counter() - started) * 1000, len(body)


async def _outlines(http: aiohttp.ClientSession, figures: dict[str, Any]) -> None:
    cold, size = await _timed_get(http, "/console/geo/departements.json")
    warm = statistics.median(
        [(await _timed_get(http, "/console/geo/departements.json"))[0] for _ in range(5)]
    )
    figures |= {
        "outlines_cold_ms": round(cold, 1),
        "outlines_warm_ms": round(warm, 1),
        "outlines_bytes": size,
    }
    print(f"outlines: first {cold:,.0f} ms (PostGIS), then {warm:,.1f} ms; {size:,} bytes")


async def _compare(
    http: aiohttp.ClientSession,
    token: str,
    name: str,
    area: str,
    repeat: int,
    figures: dict[str, Any],
) -> None:
    body = {"areas": [area], "template": "outage", "dry_run": True,
            "allow_language_fallback": True}  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    dry, reach = [], []
    for _ in range(repeat):
        started = time.perf_counter()
        async with http.post("/v1/broadcasts", json=body, headers=headers) as response:
            answer = await response.json()
            assert response.status == 200, answer
        dry.append((time.perf_counter() - started) * 1000)
        ms, size = await _timed_get(http, "/console/geo/reach", kind="live", area=area)
        reach.append(ms)
    async with http.get("/console/geo/reach", params={"kind": "live", "area": area}) as response:
        mine = await response.json()
    # Equal but for numbers whose last sighting crossed the window's edge between the two
    # requests (the seeded sightings are spread over 8 hours, the window is 6).
    theirs = answer["preview"]["recipients"]
    assert abs(mine["recipients"] - theirs) <= max(2, theirs // 1000), (mine["recipients"], theirs)
    dry_ms, reach_ms = statistics.median(dry), statistics.median(reach)
    figures |= {
        f"{name}_recipients": mine["recipients"],
        f"{name}_cells": mine["cells_total"],
        f"{name}_cells_drawn": len(mine["cells"]["features"]),
        f"{name}_dry_run_ms": round(dry_ms, 1),
        f"{name}_reach_ms": round(reach_ms, 1),
        f"{name}_reach_vs_dry_run": round(reach_ms / dry_ms, 2),
        f"{name}_reach_bytes": size,
    }
    print(
        f"{name}: {mine['recipients']:,} recipients, {mine['cells_total']:,} cells "
        f"({len(mine['cells']['features']):,} drawn); dry run {dry_ms:,.0f} ms, map "
        f"{reach_ms:,.0f} ms (x{reach_ms / dry_ms:.2f}), {size:,} bytes"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--sites", type=int, default=100_000, help="x3 cells (300,000)")
    parser.add_argument("--present-share", type=float, default=0.6)
    parser.add_argument("--departement", default="33", help="whose outline is the polygon")
    parser.add_argument("--repeat", type=int, default=5)
    return parser.parse_args()


if __name__ == "__main__":
    quiet_logs()
    print(json.dumps(asyncio.run(main(parse_args()))))
