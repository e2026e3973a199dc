"""Geography at scale: shapes to cells, a département-sized polygon previewed and streamed,
location updates ingested, two workers sharing a polygon target.

    python -m loadtest.geo                                  # 2M subscribers, 300k cells
    python -m loadtest.geo --subscribers 10000000           # the issue's figure (minutes)

In a scratch database of its own (dropped at the end), it:
1. synthesises N subscribers and `--sites` x 3 cells (`cells synth`: by population, denser in
   cities), and seeds the last-seen locations of `--present-share` of the subscribers plus
   visitors, in cells of their département, seen within the last 8 hours (not timed);
2. `shape_cells_ms`: the cells a département-sized polygon meets (the vendored outline of
   `--departement`, its largest ring; median of 5), and a 10 km circle in Paris;
3. `preview_ms`: the whole plan of that polygon (cells, counts per département and language,
   overspill, stale, visitors, texts; median of 3);
4. `stream_rows_per_s`: creates that broadcast (`create_ms`: its present numbers are taken
   into `broadcast_present`, chunks cut) and streams every chunk through the store's `stream`
   (COPY ... TO STDOUT, the engine's path), splitting lines as the engine does; the time in
   COPY (`stream_rows_per_s`), and with each chunk's claim and completion
   (`chunk_loop_rows_per_s`);
5. `shared_ok`: two workers claim the chunks of a second such broadcast concurrently through the
   leases; every number is streamed once, each worker got some chunks;
6. `ingest_per_s`: `--updates` location lines (numbers moving to other cells, visitors among
   them) through `locations.ingest` (checked, appended to the sightings with COPY), against a
   plain server-side COPY of the same CSV into a table without index in the same run
   (`ingest_ratio`); the polygon's preview with those sightings pending (`preview_pending_ms`),
   the compaction into the last-seen table (`compact_per_s`), the preview after it
   (`preview_compacted_ms`: the same numbers, bar those that aged out meanwhile) and after a
   vacuum of the last-seen table (`preview_vacuumed_ms`, what autovacuum soon restores).

Its connections are set up as the product's (`database.connect`: no JIT, as every session of
the product); with JIT, PostgreSQL spent ~100 ms compiling the preview's counting statement,
which no preview of the product's (CLI, API, console) pays.

The last line is one JSON object with these figures.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import time
from typing import Any

import asyncpg

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.domain.shapes import Circle, parse_polygon
from broadcaster.importer import synthesise_into
from broadcaster.settings import Settings
from broadcaster.store import chunks as chunks_store
from broadcaster.store import database, geo
from broadcaster.store.cells import synth_cells
from broadcaster.store.locations import compact, ingest, synth_lines
from broadcaster.store.queries import queries
from loadtest.common import description, quiet_logs, scratch_database

COPY_BASELINE = "CREATE TABLE copy_baseline (msisdn bigint, cell_id text, seen_at timestamptz)"

SEED_LOCATIONS = """
INSERT INTO locations (msisdn, cell_id, seen_at, lang, test_group, country)
SELECT x.msisdn, x.cell_id, x.seen_at::timestamptz, coalesce(s.lang, 'en'),
       coalesce(s.test_group, false), CASE WHEN s.msisdn IS NULL THEN 'DE' END
FROM ({synth}) x (msisdn, cell_id, seen_at)
LEFT JOIN subscribers s ON s.msisdn = x.msisdn
ON CONFLICT (msisdn) DO NOTHING
"""


async def main(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"subscribers": args.subscribers}
    async with scratch_database() as dsn:
        conn = await database.connect(dsn)
        try:
            await _seed(conn, args, figures)
            polygon = _departement_polygon(args.departement)
            await _shape_cells(conn, polygon, figures)
            request = BroadcastRequest(
                areas=[polygon], template="outage", variables={}, allow_language_fallback=True
            )
            await _preview(conn, dsn, request, figures)
            await _stream(conn, dsn, request, args.chunk_size, figures)
            await _stream(conn, dsn, request, args.chunk_size, figures, "_again")
            await _shared(dsn, request, args.chunk_size, figures)
            await _ingest(conn, dsn, request, args.updates, figures)
        finally:
            await conn.close()
    return figures


async def _seed(
    conn: asyncpg.Connection, args: argparse.Namespace, figures: dict[str, Any]
) -> None:
    started = time.monotonic()
    await synthesise_into(conn, args.subscribers, seed=7)
    print(f"seed: {args.subscribers:,} subscribers in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    figures["cells"] = await synth_cells(conn, args.sites)
    print(f"seed: {figures['cells']:,} cells in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    synth = queries["synth_locations"].rstrip().rstrip(";")
    visitors = args.subscribers // 50
    await conn.execute("SET work_mem = '256MB'")
    await conn.execute(SEED_LOCATIONS.format(synth=synth), args.present_share * 100, visitors, 8.0)
    await conn.execute("VACUUM ANALYZE locations")
    figures["locations"] = await conn.fetchval("SELECT count(*) FROM locations")
    print(
        f"seed: {figures['locations']:,} locations ({visitors:,} visitors) in "
        f"{time.monotonic() - started:.0f} s"
    )


def _departement_polygon(code: str) -> str:
    """The vendored outline of a département (its largest ring), as a `polygon:` target."""
    features = json.loads(geo.OUTLINES.read_text(encoding="utf-8"))["features"]
    (feature,) = [f for f in features if f["properties"]["code"] == code]
    rings = [polygon[0] for polygon in feature["geometry"]["coordinates"]]
    ring = max(rings, key=len)
    return "polygon:" + " ".join(f"{lat},{lon}" for lon, lat in ring)


async def _timed(make: Any, repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await make()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), result


async def _shape_cells(conn: asyncpg.Connection, polygon: str, figures: dict[str, Any]) -> None:
    shape = parse_polygon(polygon.partition(":")[2])
    ms, cells = await _timed(lambda: geo.shape_cells(conn, shape), 5)
    circle_ms, near = await _timed(lambda: geo.shape_cells(conn, Circle(48.8566, 2.3522, 10)), 5)
    figures |= {
        "polygon_points": len(shape.ring),
        "shape_cells": len(cells),
        "shape_cells_ms": round(ms, 1),
        "circle_cells": len(near),
        "circle_cells_ms": round(circle_ms, 1),
    }
    print(
        f"shape -> cells: polygon of {len(shape.ring):,} points meets {len(cells):,} cells in "
        f"{ms:.1f} ms (median of 5); 10 km circle in Paris: {len(near):,} cells in "
        f"{circle_ms:.1f} ms"
    )


async def _preview(
    conn: asyncpg.Connection, dsn: str, request: BroadcastRequest, figures: dict[str, Any]
) -> None:
    settings = Settings(database_url=dsn)
    ms, plan = await _timed(lambda: make_plan(conn, settings, request), 3)
    # A second, independent measurement: the machine is shared, a figure is kept only when
    # the two agree (their ratio is printed).
    again_ms, _ = await _timed(lambda: make_plan(conn, settings, request), 3)
    presence = plan.presence
    assert presence is not None
    figures |= {
        "preview_ms": round(ms, 1),
        "preview_ms_again": round(again_ms, 1),
        "preview_recipients": plan.recipients,
        "preview_cells": presence.cells,
        "preview_stale": presence.stale,
        "preview_overspill": round(presence.shapes[0].overspill, 3),
    }
    print(
        f"preview: {plan.recipients:,} present, {presence.stale:,} stale, {presence.cells:,} "
        f"cells, overspill {presence.shapes[0].overspill:.0%}, {len(plan.groups)} groups in "
        f"{ms:.0f} ms (median of 3), again {again_ms:.0f} ms (ratio {again_ms / ms:.2f})"
    )


class _Counter:
    """Splits the COPY stream into lines as the engine does, and counts them."""

    def __init__(self) -> None:
        self.tail = b""
        self.rows = 0
        self.numbers: list[int] = []
        self.keep = False

    async def __call__(self, data: bytes) -> None:
        lines = (self.tail + data).split(b"\n")
        self.tail = lines.pop()
        self.rows += len(lines)
        if self.keep:
            self.numbers += [int(line.partition(b"\t")[0]) for line in lines]


async def _stream(
    conn: asyncpg.Connection,
    dsn: str,
    request: BroadcastRequest,
    chunk_size: int,
    figures: dict[str, Any],
    suffix: str = "",
) -> None:
    settings = Settings(database_url=dsn, chunk_size=chunk_size)
    plan = await make_plan(conn, settings, request)
    started = time.perf_counter()
    broadcast_id = await create_broadcast(conn, settings, request, plan)
    chunking_ms = (time.perf_counter() - started) * 1000
    counter = _Counter()
    started = time.perf_counter()
    streaming = 0.0
    while (chunk := await chunks_store.claim(conn, broadcast_id, "lt", 60)) is not None:
        began = time.perf_counter()
        await chunks_store.stream(
            conn, broadcast_id, chunk, counter, test_group_only=False, drill=False, reached_of=None
        )
        streaming += time.perf_counter() - began
        await conn.execute(queries["complete_chunk"], broadcast_id, chunk.chunk_no)
    seconds = time.perf_counter() - started
    # Presence is evaluated when each chunk streams: a few numbers age out of the window
    # between the plan and the stream (none may appear that the plan did not count).
    aged = plan.recipients - counter.rows
    assert 0 <= aged <= plan.recipients // 100, (counter.rows, plan.recipients)
    figures |= {
        f"stream_aged_out{suffix}": aged,
        f"create_ms{suffix}": round(chunking_ms),
        f"stream_rows{suffix}": counter.rows,
        f"stream_rows_per_s{suffix}": round(counter.rows / streaming),
        f"chunk_loop_rows_per_s{suffix}": round(counter.rows / seconds),
    }
    print(
        f"stream{suffix.replace('_', ' ')}: broadcast created (present numbers taken, chunks cut) "
        f"in {chunking_ms:.0f} ms; {counter.rows:,} numbers streamed with COPY in "
        f"{streaming:.2f} s = {counter.rows / streaming:,.0f}/s; with each chunk's claim and "
        f"completion {seconds:.2f} s = {counter.rows / seconds:,.0f}/s ({aged} aged out since "
        "the plan)"
    )
    if suffix:
        ratio = figures[f"stream_rows_per_s{suffix}"] / figures["stream_rows_per_s"]
        figures["stream_ratio_again"] = round(ratio, 2)
        print(f"stream: the second broadcast streamed at {ratio:.2f} x the first")


async def _shared(
    dsn: str, request: BroadcastRequest, chunk_size: int, figures: dict[str, Any]
) -> None:
    conn = await database.connect(dsn)
    try:
        plan = await make_plan(conn, Settings(database_url=dsn), request)
        # At least 8 chunks, so that both workers get some.
        size = max(1, min(chunk_size, plan.recipients // 8))
        settings = Settings(database_url=dsn, chunk_size=size)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    finally:
        await conn.close()

    async def worker(name: str) -> tuple[int, list[int]]:
        wconn = await database.connect(dsn)
        counter = _Counter()
        counter.keep = True
        claimed = 0
        try:
            while (chunk := await chunks_store.claim(wconn, broadcast_id, name, 60)) is not None:
                claimed += 1
                await chunks_store.stream(
                    wconn,
                    broadcast_id,
                    chunk,
                    counter,
                    test_group_only=False,
                    drill=False,
                    reached_of=None,
                )
                await wconn.execute(queries["complete_chunk"], broadcast_id, chunk.chunk_no)
        finally:
            await wconn.close()
        return claimed, counter.numbers

    (a, first), (b, second) = await asyncio.gather(worker("w1"), worker("w2"))
    numbers = first + second
    aged = plan.recipients - len(numbers)
    ok = (
        len(numbers) == len(set(numbers))
        and 0 <= aged <= plan.recipients // 100
        and a > 0
        and b > 0
    )
    figures |= {"shared_ok": int(ok), "shared_chunks": [a, b]}
    print(
        f"shared: two workers took {a} and {b} chunks of one polygon broadcast; "
        f"{len(numbers):,} numbers streamed, {len(set(numbers)):,} distinct, "
        f"{plan.recipients:,} planned ({aged} aged out): {'ok' if ok else 'FAILED'}"
    )


async def _ingest(
    conn: asyncpg.Connection,
    dsn: str,
    request: BroadcastRequest,
    updates: int,
    figures: dict[str, Any],
) -> None:
    total = await conn.fetchval("SELECT count(*) FROM subscribers")
    chunks: list[bytes] = []

    async def keep(data: bytes) -> None:
        chunks.append(data)

    await synth_lines(conn, min(1.0, updates / max(1, total)), updates // 50, 1.0, keep)
    data = b"".join(chunks)
    lines = data.decode().splitlines()
    # The baseline: the same rows, COPYed as they are (CSV parsed by the server, no check) into
    # a table without index: what the database alone costs.
    await conn.execute(COPY_BASELINE)
    started = time.perf_counter()
    await conn.copy_to_table("copy_baseline", source=io.BytesIO(data), format="csv")
    baseline = len(lines) / (time.perf_counter() - started)
    await conn.execute("DROP TABLE copy_baseline")
    result = await ingest(conn, lines)
    assert not result.rejects, result.rejects[:3]
    print(
        f"ingest: {result.read:,} location updates appended in {result.seconds:.1f} s = "
        f"{result.per_second:,.0f}/s (checked, COPY a batch of 200,000); a plain COPY of the "
        f"same rows {baseline:,.0f}/s: ratio {result.per_second / baseline:.2f}"
    )
    # Selection while they are pending, then after the compaction: the same numbers.
    settings = Settings(database_url=dsn)
    pending_ms, plan = await _timed(lambda: make_plan(conn, settings, request), 3)
    folded = await compact(conn)
    compacted_ms, after = await _timed(lambda: make_plan(conn, settings, request), 3)
    # The rows the compaction moved lost their all-visible bit: selection's index-only scans
    # read the heap until autovacuum (1% of the rows changed: soon) has been by.
    started = time.perf_counter()
    await conn.execute("VACUUM locations")
    vacuum_s = time.perf_counter() - started
    vacuumed_ms, _ = await _timed(lambda: make_plan(conn, settings, request), 3)
    aged = plan.recipients - after.recipients
    assert 0 <= aged <= plan.recipients // 100, (plan.recipients, after.recipients)
    figures |= {
        "ingest_updates": result.read,
        "ingest_per_s": round(result.per_second),
        "ingest_copy_baseline_per_s": round(baseline),
        "ingest_ratio": round(result.per_second / baseline, 2),
        "preview_pending_ms": round(pending_ms, 1),
        "preview_compacted_ms": round(compacted_ms, 1),
        "preview_vacuumed_ms": round(vacuumed_ms, 1),
        "compact_per_s": round(folded.per_second),
        "compact_written": folded.written,
    }
    print(
        f"preview with those {result.read:,} pending: {plan.recipients:,} present in "
        f"{pending_ms:.0f} ms; compacted ({folded.written:,} locations written, "
        f"{folded.visitors:,} visitors) in {folded.seconds:.1f} s = {folded.per_second:,.0f}/s; "
        f"preview after: {after.recipients:,} ({aged} aged out meanwhile) in "
        f"{compacted_ms:.0f} ms; after a vacuum of locations ({vacuum_s:.1f} s) in "
        f"{vacuumed_ms:.0f} ms"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--subscribers", type=int, default=2_000_000)
    parser.add_argument("--sites", type=int, default=100_000, help="x3 cells (300,000)")
    parser.add_argument("--present-share", type=float, default=0.6)
    parser.add_argument("--updates", type=int, default=1_000_000)
    parser.add_argument("--departement", default="33", help="whose outline is the polygon")
    parser.add_argument("--chunk-size", type=int, default=20_000)
    return parser.parse_args()


if __name__ == "__main__":
    quiet_logs()
    print(json.dumps(asyncio.run(main(parse_args()))))
