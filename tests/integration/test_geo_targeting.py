"""Polygons, circles, cells and last-seen locations, on hand-built cells and numbers whose
answers are known: who is present, resident, or both; the freshness window; visitors' country
and language; overspill of a cell crossing the edge; every bad input refused, nothing stored."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.cells import parse_cell
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine.worker import Worker
from broadcaster.errors import InputError
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings
from broadcaster.store.cells import import_cells
from broadcaster.store.database import create_pool
from broadcaster.store.locations import compact, ingest, pending
from broadcaster.store.reports import not_reached

# The polygon: lat 48.85-48.86, lon 2.34-2.36 (central Paris), CAP order (lat,lon), closed.
P = "polygon:48.85,2.34 48.85,2.36 48.86,2.36 48.86,2.34 48.85,2.34"


def _square(lat0: float, lat1: float, lon0: float, lon1: float) -> str:
    return f"POLYGON(({lon0} {lat0}, {lon1} {lat0}, {lon1} {lat1}, {lon0} {lat1}, {lon0} {lat0}))"


CELLS = [
    # fully inside P
    {"cell_id": "IN1", "technology": "4G", "lat": "48.853", "lon": "2.3435",
     "coverage": _square(48.852, 48.854, 2.342, 2.345)},
    # half of it east of P's edge (lon 2.36)
    {"cell_id": "EDGE", "technology": "4G", "lat": "48.856", "lon": "2.36",
     "coverage": _square(48.855, 48.857, 2.355, 2.365)},
    # outside P, still in Paris
    {"cell_id": "OUT", "technology": "3G", "lat": "48.872", "lon": "2.305",
     "coverage": _square(48.870, 48.875, 2.300, 2.310)},
    # Marseille, a sector from its parameters
    {"cell_id": "M13", "technology": "2G", "lat": "43.2965", "lon": "5.3698", "azimuth": "90",
     "beam": "120", "range_m": "2000"},
    # south of Paris: a 120° sector facing north, its site on the meridian 2.30
    {"cell_id": "SECT", "technology": "4G", "lat": "48.80", "lon": "2.30", "azimuth": "0",
     "beam": "120", "range_m": "300"},
    # Boulogne-Billancourt (92), omnidirectional
    {"cell_id": "C92", "technology": "4G", "lat": "48.8397", "lon": "2.2399", "azimuth": "0",
     "beam": "360", "range_m": "800"},
]  # fmt: skip

# msisdn, département, commune, home cell, language, test group
HOME = [
    (33600000001, "75", "75101", "IN1", "fr", False),
    (33600000002, "92", "92012", "C92", "en", False),
    (33600000003, "75", "75101", "IN1", "fr", False),
    (33600000004, "75", "75102", "OUT", "es", False),
    (33600000005, "13", "13201", "M13", "fr", True),
]
DE_VISITOR, GB_VISITOR, CH_VISITOR = 4915100000001, 447700900001, 41790000001


def _ago(**kw: float) -> str:
    return (datetime.now(UTC) - timedelta(**kw)).isoformat()


def _locations() -> list[str]:
    return [
        f"33600000001,IN1,{_ago(hours=1)}",  # present in P, resident of P (home cell IN1)
        f"33600000002,EDGE,{_ago(hours=2)}",  # a commuter from 92, present in P
        f"33600000003,OUT,{_ago(hours=1)}",  # resident of P, elsewhere now
        f"33600000004,IN1,{_ago(hours=10)}",  # stale: seen in P 10 h ago
        f"33600000005,EDGE,{_ago(minutes=20)}",  # from Marseille, test group, in P
        f"{DE_VISITOR},IN1,{_ago(hours=1)}",  # German SIM, no MCC: country from +49
        f"{GB_VISITOR},EDGE,{_ago(hours=3)},234",  # British MCC
        f"{CH_VISITOR},OUT,{_ago(hours=1)},228011234567890",  # Swiss IMSI, outside P
    ]


@pytest.fixture(params=["pending", "compacted"])
async def geo(db_conn: asyncpg.Connection, request: pytest.FixtureRequest) -> asyncpg.Connection:
    """Cells, subscribers and their locations: still pending (appended sightings), or compacted
    into the last-seen table; every test that uses it gets the same answers either way."""
    result = await import_cells(db_conn, [(n, parse_cell(c)) for n, c in enumerate(CELLS, 2)])
    assert (result.imported, result.rejects) == (len(CELLS), [])
    await db_conn.executemany(
        "INSERT INTO subscribers (msisdn, departement, commune, cell_id, lang, test_group) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        HOME,
    )
    done = await ingest(db_conn, _locations())
    assert (done.read, done.written, done.rejects) == (8, 8, [])
    if request.param == "compacted":
        folded = await compact(db_conn)
        assert (folded.moved, folded.written, folded.visitors) == (8, 8, 3)
    assert await pending(db_conn) == (8 if request.param == "pending" else 0)
    return db_conn


LAST_SEEN = "SELECT {} FROM last_seen_in(ARRAY(SELECT cell_id FROM cells)) "
"""Where every number was last seen (compacted or pending)."""


def _request(*areas: str, **kw: object) -> BroadcastRequest:
    base = BroadcastRequest(
        areas=list(areas), template="outage", variables={}, allow_language_fallback=True
    )
    return replace(base, **kw)  # type: ignore[arg-type]


async def _recipients(conn: asyncpg.Connection, request: BroadcastRequest) -> dict[str, int]:
    plan = await make_plan(conn, Settings(), request)
    out: dict[str, int] = {}
    for g in plan.groups:
        out[f"{g.departement}/{g.language}"] = out.get(f"{g.departement}/{g.language}", 0) + (
            g.recipients
        )
    return out


async def test_cells_get_their_departement_and_sector_coverage(geo: asyncpg.Connection) -> None:
    rows = await geo.fetch(
        "SELECT cell_id, departement, round(ST_Area(coverage::geography)) AS m2 FROM cells"
    )
    deps = {r["cell_id"]: r["departement"] for r in rows}
    assert deps == {
        "IN1": "75", "EDGE": "75", "OUT": "75", "M13": "13", "C92": "92", "SECT": "92"
    }  # fmt: skip
    m2 = {r["cell_id"]: r["m2"] for r in rows}
    # A 120° sector of 2 km is a third of the disc; the omni cell a whole one (polygonal).
    assert m2["M13"] == pytest.approx(3.14159 * 2000**2 / 3, rel=0.01)
    assert m2["C92"] == pytest.approx(3.14159 * 800**2, rel=0.01)


async def test_polygon_present_reaches_who_is_there_now(geo: asyncpg.Connection) -> None:
    plan = await make_plan(geo, Settings(), _request(P))
    assert plan.recipients == 5  # 1, 2 (commuter), 5 (from 13), the German, the British
    assert plan.presence is not None
    assert (plan.presence.cells, plan.presence.present, plan.presence.stale) == (2, 5, 1)
    assert sorted(plan.presence.visitors) == [("DE", "de", 1), ("GB", "en", 1)]
    # Everyone present gets the texts of the cell's département (75), in their language.
    assert await _recipients(geo, _request(P)) == {"75/fr": 2, "75/en": 2, "75/de": 1}


async def test_overspill_of_a_cell_crossing_the_edge(geo: asyncpg.Connection) -> None:
    plan = await make_plan(geo, Settings(), _request(P))
    assert plan.presence is not None
    (shape,) = plan.presence.shapes
    # IN1 0.002 x 0.003 degrees inside; EDGE 0.002 x 0.010 of which half outside.
    assert shape.cells == 2
    assert shape.overspill == pytest.approx(0.005 / 0.013, abs=0.003)


async def test_overspill_of_a_sector_crossing_the_edge(geo: asyncpg.Connection) -> None:
    from broadcaster.store.geo import shape_cells_inside
    from broadcaster.targeting import parse_area

    # The western half-plane of the sector's site (a box that holds all of that half): the
    # sector is symmetric about its azimuth (north), so half its coverage spills east.
    west = parse_area("polygon:48.799,2.295 48.799,2.30 48.8035,2.30 48.8035,2.295 48.799,2.295")
    met = await shape_cells_inside(geo, west.shape())
    assert list(met.departements) == ["SECT"]
    assert met.area_m2 == pytest.approx(3.14159 * 300**2 / 3, rel=0.01)
    assert met.overspill == pytest.approx(0.5, abs=0.01)


async def test_resident_and_both_modes(geo: asyncpg.Connection) -> None:
    # Resident: subscribers whose home cell the polygon meets (IN1): 1 and 3.
    assert await _recipients(geo, _request(P, mode="resident")) == {"75/fr": 2}
    # Both: the union, one message each: 1 is counted once (present text).
    both = await make_plan(geo, Settings(), _request(P, mode="both"))
    assert both.recipients == 6  # 1, 2, 3, 5, DE, GB
    # An administrative area defaults to resident; present on request.
    assert await _recipients(geo, _request("dep:13")) == {"13/fr": 1}
    present_75 = await make_plan(geo, Settings(), _request("dep:75", mode="present"))
    assert present_75.recipients == 7  # every fresh location in 75's cells: 1, 2, 3, 5, DE, GB, CH


async def test_a_polygon_broadcast_not_sent_lists_exactly_whom_it_targets(
    geo: asyncpg.Connection,
) -> None:
    """Created, never sent: the after-action report's list of recipients not reached is the
    plan's, each number once, present numbers from those taken at creation. (It read present
    chunks as resident ones: every resident of the département in their numbers' ranges.)"""
    settings = Settings(chunk_size=2)
    residents, present = {33600000001, 33600000003}, {
        33600000001, 33600000002, 33600000005, DE_VISITOR, GB_VISITOR
    }  # fmt: skip
    for mode, expected in (
        ("present", present),
        ("both", present | residents),
        ("resident", residents),
    ):
        request = _request(P, mode=mode)
        plan = await make_plan(geo, settings, request)
        broadcast_id = await create_broadcast(geo, settings, request, plan)
        async with not_reached(geo, broadcast_id) as taken:
            listed = [row async for row in taken.rows()]
        assert taken.count == len(listed)
        assert [row[0] for row in listed] == sorted(expected), mode
        assert len(listed) == plan.recipients, mode
        assert all(row[4] is None for row in listed)  # never sent
        assert {row[1] for row in listed} == {"75"}  # the cells' département, or the home


async def test_freshness_window(geo: asyncpg.Connection) -> None:
    plan = await make_plan(geo, Settings(), _request(P, freshness_s=1800))
    assert plan.recipients == 1  # only the one seen 20 minutes ago
    assert plan.presence is not None and plan.presence.stale == 5
    wide = await make_plan(geo, Settings(), _request(P, freshness_s=12 * 3600))
    assert wide.recipients == 6  # the 10-hour-old location counts too


async def test_circle_targets_the_cells_it_meets(geo: asyncpg.Connection) -> None:
    plan = await make_plan(geo, Settings(), _request("circle:48.853,2.3435,0.1"))
    assert plan.presence is not None and plan.presence.cells == 1  # IN1 only
    assert plan.recipients == 2  # subscriber 1 and the German visitor


async def test_pending_sightings_move_numbers_as_compaction_will(
    geo: asyncpg.Connection,
) -> None:
    """Sightings appended after the fixture's (compacted or pending) locations: the newest per
    number wins wherever it is, an older one changes nothing; the present part and the
    resident part of `both` agree with each other before and after the compaction."""
    assert (await make_plan(geo, Settings(), _request(P))).recipients == 5
    moves = [
        f"33600000001,OUT,{_ago(minutes=10)}",  # was in IN1: leaves P
        f"33600000001,IN1,{_ago(minutes=50)}",  # older than the move: changes nothing
        f"33600000003,EDGE,{_ago(minutes=5)}",  # was in OUT: enters P
        f"{GB_VISITOR},OUT,{_ago(hours=5)}",  # older than the stored 3 h: stays in EDGE
        f"33600000004,IN1,{_ago(hours=1)}",  # stale (10 h) in IN1: fresh now
        f"33699999999,IN1,{_ago(hours=1)},208",  # not a subscriber, French SIM: a visitor
    ]
    done = await ingest(geo, moves)
    assert (done.written, done.rejects) == (6, [])
    present = ["33600000002", "33600000003", "33600000004", "33600000005", "33699999999"]
    for step in ("pending", "compacted"):
        plan = await make_plan(geo, Settings(), _request(P))
        assert plan.presence is not None, step
        assert (plan.recipients, plan.presence.stale) == (7, 0), step
        assert sorted(plan.presence.visitors) == [
            ("DE", "de", 1), ("FR", "fr", 1), ("GB", "en", 1)
        ], step  # fmt: skip
        rows = await geo.fetch(
            LAST_SEEN.format("msisdn::text") + "WHERE cell_id IN ('IN1', 'EDGE') ORDER BY 1"
        )
        assert [r[0] for r in rows] == sorted([*present, str(DE_VISITOR), str(GB_VISITOR)])
        # Both: residents (home cell IN1: 1 and 3) and the present, one message each.
        both = await make_plan(geo, Settings(), _request(P, mode="both"))
        assert both.recipients == 8, step  # the 7 present and 1 (resident, away now)
        await compact(geo)
    assert await pending(geo) == 0


async def test_a_cell_named_twice_gives_each_number_once(geo: asyncpg.Connection) -> None:
    """`last_seen_in` looks each distinct cell up (migration 0022: a join, where `= ANY` could
    not repeat a row): a cell twice in the array, compacted or with sightings pending, still
    gives each number once."""
    once = "SELECT msisdn FROM last_seen_in(ARRAY['IN1', 'EDGE']) ORDER BY 1"
    twice = "SELECT msisdn FROM last_seen_in(ARRAY['IN1', 'EDGE', 'IN1', 'EDGE']) ORDER BY 1"
    compacted = [r[0] for r in await geo.fetch(twice)]
    assert compacted and compacted == [r[0] for r in await geo.fetch(once)]
    await ingest(geo, [f"{DE_VISITOR},EDGE,{_ago(minutes=1)}"])  # pending, not compacted
    assert await pending(geo) > 0
    with_pending = [r[0] for r in await geo.fetch(twice)]
    assert with_pending == [r[0] for r in await geo.fetch(once)]
    assert len(with_pending) == len(set(with_pending))


async def test_exclusion_takes_the_cells_out(geo: asyncpg.Connection) -> None:
    plan = await make_plan(geo, Settings(), _request(P, exclude=["circle:48.853,2.3435,0.1"]))
    assert plan.recipients == 3  # EDGE only: 2, 5 and the British visitor


async def test_visitor_language_and_country(geo: asyncpg.Connection) -> None:
    rows = await geo.fetch(
        LAST_SEEN.format("msisdn, country, lang") + "WHERE country IS NOT NULL ORDER BY msisdn"
    )
    assert [tuple(r) for r in rows] == [
        (CH_VISITOR, "CH", "fr"),
        (GB_VISITOR, "GB", "en"),
        (DE_VISITOR, "DE", "de"),
    ]


async def test_a_polygon_send_reaches_each_present_number_once(
    db_dsn: str, geo: asyncpg.Connection, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1), window=8)
    settings = Settings(database_url=db_dsn, chunk_size=2)
    request = _request(P, mode="both")
    plan = await make_plan(geo, settings, request)
    await create_broadcast(geo, settings, request, plan)
    pool = await create_pool(db_dsn, min_size=1, max_size=6)
    try:
        runs = await Worker(pool, [smsc]).run(until_idle=True)
    finally:
        await pool.close()
    assert [r.state for r in runs] == ["completed"]
    received = mock.record.messages
    assert sorted(received) == sorted(
        str(m) for m in (33600000001, 33600000002, 33600000003, 33600000005, DE_VISITOR,
                         GB_VISITOR)
    )  # fmt: skip
    assert all(len(texts) == 1 for texts in received.values())
    by_lang = {(g.departement, g.language): g.text for g in plan.groups}
    assert received[str(DE_VISITOR)] == [by_lang[("75", "de")]]
    assert received[str(GB_VISITOR)] == [by_lang[("75", "en")]]


async def test_two_workers_share_a_polygon_target_through_the_chunk_leases(
    db_dsn: str, geo: asyncpg.Connection, start_mock: StartMock
) -> None:
    import asyncio

    # 120 more visitors present in IN1 (pending sightings, or compacted with the rest).
    extra = [4915100001000 + i for i in range(120)]
    await ingest(geo, [f"{m},IN1,{_ago(minutes=30)}" for m in extra])
    mock, smsc = await start_mock(MockConfig(seed=1, latency_ms=5), binds=1, window=4)
    settings = Settings(database_url=db_dsn, chunk_size=10)
    request = _request(P, mode="both")
    plan = await make_plan(geo, settings, request)
    assert plan.recipients == 6 + len(extra)
    broadcast_id = await create_broadcast(geo, settings, request, plan)
    assert await geo.fetchval(
        "SELECT count(*) FROM broadcast_chunks WHERE broadcast_id = $1", broadcast_id
    ) >= 13  # fmt: skip
    pool = await create_pool(db_dsn, min_size=2, max_size=6)
    try:
        first, second = Worker(pool, [smsc], name="w1"), Worker(pool, [smsc], name="w2")
        runs = await asyncio.gather(first.run(until_idle=True), second.run(until_idle=True))
    finally:
        await pool.close()
    assert "completed" in {r.state for worker_runs in runs for r in worker_runs}
    received = mock.record.messages
    assert len(received) == plan.recipients  # everyone present or resident, once
    assert all(len(texts) == 1 for texts in received.values())
    assert len(mock.binds) == 2 and all(b.parts > 0 for b in mock.binds)  # both workers sent


BAD = [
    ("polygon:48.85,2.34 48.85,2.36 48.86,2.36 48.86,2.34", "not closed"),
    ("polygon:48.85,2.34 48.86,2.36 48.85,2.36 48.86,2.34 48.85,2.34", "crosses itself"),
    ("polygon:2.34,48.85 2.36,48.85 2.36,48.86 2.34,48.86 2.34,48.85", "swapped"),
    ("polygon:98.85,2.34 98.85,2.36 98.86,2.36 98.85,2.34", "latitude 98.85 is out of range"),
    ("circle:48.85,2.35,0", "radius must be above 0"),
    ("circle:48.85,2.35,501", "at most 500 km"),
    ("circle:48.85,200,5", "longitude 200 is out of range"),
    ("circle:45.0,-30.0,10", "meets no cell"),
    ("circle:2.35,48.855,1", "swapped it would meet cells"),
]


@pytest.mark.parametrize(("area", "message"), BAD)
async def test_bad_shapes_are_refused_and_nothing_is_stored(
    db_dsn: str, geo: asyncpg.Connection, area: str, message: str
) -> None:
    settings = Settings(database_url=db_dsn)

    async def plan_and_store() -> None:
        plan = await make_plan(geo, settings, _request(area))
        await create_broadcast(geo, settings, _request(area), plan)

    with pytest.raises(InputError, match=message):
        await plan_and_store()
    assert await geo.fetchval("SELECT count(*) FROM broadcasts") == 0


async def test_bad_cells_and_locations_are_rejected_the_rest_kept(
    geo: asyncpg.Connection,
) -> None:
    with pytest.raises(InputError, match="out of range"):
        parse_cell({**CELLS[3], "cell_id": "X", "lat": "95.0"})
    # Lat/lon swapped but both in range: far from every département, rejected.
    swapped = parse_cell({**CELLS[3], "cell_id": "SWAP", "lat": "5.3698", "lon": "43.2965"})
    result = await import_cells(geo, [(2, swapped)])
    assert result.imported == 0
    assert "swapped" in result.rejects[0][2]
    lines = [
        f"33600000003,IN1,{_ago(minutes=1)}",
        "33600000004,NOSUCHCELL,2026-01-01T00:00:00Z",
        "not a line",
        "33600000004,IN1,yesterday",
    ]
    done = await ingest(geo, lines)
    assert (done.read, done.written) == (4, 1)
    assert [(n, reason.split()[0]) for n, _line, reason in done.rejects] == [
        (2, "unknown"),
        (3, "expected"),
        (4, "seen_at"),
    ]
    where = LAST_SEEN.format("cell_id") + "WHERE msisdn = $1"
    assert await geo.fetchval(where, 33600000003) == "IN1"
    assert await geo.fetchval(where, 33600000004) == "IN1"


async def test_synthetic_cells_cover_every_departement_denser_in_cities(
    db_conn: asyncpg.Connection,
) -> None:
    from broadcaster.store.cells import synth_cells

    total = await synth_cells(db_conn, 600)
    rows = await db_conn.fetch(
        "SELECT c.departement, count(*) AS n, avg(c.range_m) AS r, "
        "max(ST_Distance(s.geom::geography, ST_MakePoint(c.lon, c.lat)::geography)) AS off "
        "FROM cells c JOIN departement_shapes s ON s.code = c.departement GROUP BY 1"
    )
    per_dep = {r["departement"]: r for r in rows}
    assert total == sum(r["n"] for r in rows) >= 1800
    assert len(per_dep) == await db_conn.fetchval("SELECT count(*) FROM departements")
    assert max(r["off"] for r in rows) < 30_000  # city sites may stray a little off the outline
    assert per_dep["75"]["n"] > per_dep["48"]["n"]  # Paris has more cells than Lozère
    assert per_dep["75"]["r"] < per_dep["48"]["r"] / 3  # and far smaller ones


async def test_a_broadcast_overrides_a_visitor_countrys_language(
    db_dsn: str, geo: asyncpg.Connection, start_mock: StartMock
) -> None:
    request = _request(P, visitor_languages={"DE": "en"})
    plan = await make_plan(geo, Settings(), request)
    assert plan.presence is not None
    assert sorted(plan.presence.visitors) == [("DE", "en", 1), ("GB", "en", 1)]
    assert await _recipients(geo, request) == {"75/fr": 2, "75/en": 3}
    mock, smsc = await start_mock(MockConfig(seed=1), window=8)
    settings = Settings(database_url=db_dsn)
    await create_broadcast(geo, settings, request, plan)
    pool = await create_pool(db_dsn, min_size=1, max_size=6)
    try:
        await Worker(pool, [smsc]).run(until_idle=True)
    finally:
        await pool.close()
    english = {(g.departement, g.language): g.text for g in plan.groups}[("75", "en")]
    assert mock.record.messages[str(DE_VISITOR)] == [english]
    with pytest.raises(InputError, match="COUNTRY=lang"):
        await make_plan(geo, Settings(), _request(P, visitor_languages={"de": "EN"}))
    # Well-formed typos are refused too: they would change nobody's text, silently.
    with pytest.raises(InputError, match="XX is not a country code"):
        await make_plan(geo, Settings(), _request(P, visitor_languages={"XX": "de"}))
    with pytest.raises(InputError, match="'dd' is not an ISO 639-1 language code"):
        await make_plan(geo, Settings(), _request(P, visitor_languages={"CH": "dd"}))


async def test_without_postgis_the_migration_says_how_to_install_it(
    db_conn: asyncpg.Connection,
) -> None:
    # The migration's own check, run as if the extension were not available on this server.
    sql = (Settings().sql_dir / "migrations" / "0012_geography.sql").read_text(encoding="utf-8")
    check = sql[sql.index("DO $$") : sql.index("$$;") + 3].replace("'postgis'", "'no_such_ext'")
    major = int(await db_conn.fetchval("SHOW server_version_num")) // 10000
    with pytest.raises(asyncpg.RaiseError, match=f"apt-get install postgresql-{major}-postgis-3"):
        await db_conn.execute(check)


async def test_serve_compacts_periodically_and_one_compaction_runs_at_a_time(
    db_dsn: str, geo: asyncpg.Connection
) -> None:
    import asyncio

    from broadcaster.serve import compact_periodically

    before = await make_plan(geo, Settings(), _request(P))
    await ingest(geo, [f"33600000001,OUT,{_ago(minutes=1)}"])  # leaves P
    other = await asyncpg.connect(db_dsn)
    try:  # another compaction holds the lock: this one moves nothing, waits for nothing
        assert await other.fetchval("SELECT pg_try_advisory_lock(hashtext($1))",
                                    "broadcaster.location_compaction")  # fmt: skip
        assert (await compact(geo)).moved == 0
        assert await pending(geo) > 0
    finally:
        await other.close()
    pool = await create_pool(db_dsn, min_size=1, max_size=2)
    task = asyncio.create_task(
        compact_periodically(pool, Settings(locations_compact_interval_s=0.05))
    )
    try:
        async with asyncio.timeout(10):
            while await pending(geo):
                await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await pool.close()
    after = await make_plan(geo, Settings(), _request(P))
    assert (before.recipients, after.recipients) == (5, 4)
    off = Settings(locations_compact_interval_s=0)
    await asyncio.wait_for(compact_periodically(pool, off), 1)  # 0: serve never compacts


async def test_the_metrics_count_the_pending_sightings(geo: asyncpg.Connection) -> None:
    from broadcaster.http.metrics import Metrics

    metrics = Metrics(lambda: None)
    await metrics.refresh(geo)
    expected = float(await pending(geo))  # 8 pending, or 0 once compacted
    assert f"broadcaster_location_sightings_pending {expected}" in metrics.render().decode()
