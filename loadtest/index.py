"""The subscriber index at scale: import, count and stream a national base.

    python loadtest/index.py                          # 2,000,000 subscribers: about a minute
    python loadtest/index.py --subscribers 10000000   # the issue's figure: a few minutes

In a scratch database of its own (on DATABASE_URL's server, the local one, or an embedded one;
dropped at the end), it:
1. writes a CSV of N synthetic subscribers (not timed) and imports it with `import_csv` into the
   empty index: the bulk COPY path (`import_rows_per_s`);
2. counts a target of whole départements holding about 1M recipients from the maintained counts
   (`count_ms`: median of 5; the first, cold, is shown too), and a mixed commune/cell target;
3. plans a national broadcast and creates its chunks (`chunking_ms`), then streams every chunk
   with the engine's `stream_chunk` query through COPY ... TO STDOUT, splitting lines as the
   engine does (`stream_rows_per_s`);
4. re-imports a file of 10% of the base with 10% of it changed and 1% new rows (the upsert
   path), then the same file again: nothing is written the second time;
5. empties the index and synthesises N subscribers (`synth_rows_per_s`).

Targets (issue 5): count < 200 ms, streaming >= 1,000,000 rows/s. The last line is one JSON
object with import_rows_per_s, count_ms, stream_rows_per_s and the other figures.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broadcaster.commands.planning import make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.importer import import_csv, synthesise_into
from broadcaster.logs import configure_logging
from broadcaster.settings import Settings
from broadcaster.store import broadcasts as store
from broadcaster.store import chunks as chunks_store
from broadcaster.store import database
from broadcaster.store.areas import departement_populations
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.store.subscribers import target_counts
from broadcaster.subscribers import synth_rows
from broadcaster.targeting import Target
from loadtest.common import description, scratch_database


async def main(subscribers: int, target_size: int, chunk_size: int, workers: int) -> dict[str, Any]:
    figures: dict[str, Any] = {"subscribers": subscribers}
    async with scratch_database() as dsn:
        conn = await database.connect(dsn)
        try:
            with tempfile.TemporaryDirectory(prefix="bc_index_") as tmp:
                source = Path(tmp) / "subscribers.csv"
                populations = await departement_populations(conn)
                await asyncio.to_thread(_write_csv, populations, source, subscribers)
                await _import(dsn, source, figures)
                await _count(conn, target_size, figures)
                await _stream(conn, dsn, chunk_size, workers, figures)
                await _reimport(conn, dsn, Path(tmp) / "changes.csv", figures)
            await _synth(conn, subscribers, figures)
        finally:
            await conn.close()
    return figures


def _write_csv(populations: dict[str, int], path: Path, count: int) -> None:
    started = time.monotonic()
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("msisdn,departement,commune,cell_id,lang,test_group\n")
        out.writelines(
            f"{m},{d},{c},{k},{lang},{int(t)}\n"
            for m, d, c, k, lang, t in synth_rows(count, populations, seed=5)
        )
    size_mb = path.stat().st_size / 1e6
    print(f"csv: {count:,} rows, {size_mb:,.0f} MB written in {time.monotonic() - started:.1f} s")


async def _import(dsn: str, source: Path, figures: dict[str, Any]) -> None:
    result = await import_csv(Settings(database_url=dsn), source, None)
    load = result.load
    assert result.rejected == 0, result.as_json()
    assert load.bulk, result.as_json()
    figures["import_rows_per_s"] = round(load.rows_per_second)
    figures["import_seconds"] = round(load.seconds, 1)
    print(
        f"import: {load.rows:,} rows (bulk COPY into the empty index, indexes rebuilt) in "
        f"{load.seconds:.1f} s = {load.rows_per_second:,.0f} rows/s"
    )


async def _count(conn: Conn, target_size: int, figures: dict[str, Any]) -> None:
    per_dep = {
        r["code"]: r["n"]
        for r in await conn.fetch(
            "SELECT departement AS code, sum(n)::bigint AS n FROM subscriber_counts "
            "WHERE kind = 'departement' GROUP BY 1 ORDER BY 1"
        )
    }
    chosen: dict[str, frozenset[str] | None] = {}
    for code in per_dep:
        chosen[code] = None
        if sum(per_dep[c] for c in chosen) >= target_size:
            break
    target = Target(chosen)
    times = []
    total = 0
    for _ in range(5):
        started = time.perf_counter()
        total = sum((await target_counts(conn, target)).values())
        times.append((time.perf_counter() - started) * 1000)
    expected = await conn.fetchval(
        "SELECT count(*) FROM subscribers WHERE departement = ANY($1::text[])", list(chosen)
    )
    assert total == expected, (total, expected)
    figures["count_ms"] = round(statistics.median(times), 2)
    figures["count_first_ms"] = round(times[0], 2)
    figures["count_recipients"] = total
    print(
        f"count: {total:,} recipients in {len(chosen)} départements: median "
        f"{figures['count_ms']} ms (first {figures['count_first_ms']} ms); "
        f"brute force agrees"
    )
    # A mix the maintained counts cannot add up: communes and cells of one département.
    dep = max(per_dep, key=lambda d: per_dep[d])
    rows = await conn.fetch(
        "SELECT kind, area FROM subscriber_counts WHERE departement = $1 AND kind <> "
        "'departement' AND n > 0 GROUP BY kind, area ORDER BY kind, area",
        dep,
    )
    communes = frozenset([r["area"] for r in rows if r["kind"] == "commune"][:50])
    cells = frozenset([r["area"] for r in rows if r["kind"] == "cell"][:20])
    mixed = Target({dep: communes}, cells={dep: cells})
    started = time.perf_counter()
    n = sum((await target_counts(conn, mixed)).values())
    figures["mixed_count_ms"] = round((time.perf_counter() - started) * 1000, 1)
    print(
        f"count: {n:,} recipients of {len(communes)} communes + {len(cells)} cells of {dep} "
        f"(counted from the rows) in {figures['mixed_count_ms']} ms"
    )


async def _stream(
    conn: Conn, dsn: str, chunk_size: int, workers: int, figures: dict[str, Any]
) -> None:
    settings = Settings(database_url=dsn, chunk_size=chunk_size)
    deps = [r["code"] for r in await conn.fetch("SELECT code FROM departements ORDER BY code")]
    request = BroadcastRequest(areas=[f"dep:{d}" for d in deps], template="outage", variables={})
    plan = await make_plan(conn, settings, request)
    started = time.perf_counter()
    broadcast_id = await store.create_broadcast(
        conn,
        plan,
        kind="live",
        variables={},
        expires_at=_in_an_hour(),
        chunk_size=chunk_size,
        state="draft",
    )
    figures["chunking_ms"] = round((time.perf_counter() - started) * 1000)
    chunks = [
        chunks_store.Chunk(
            r["chunk_no"],
            r["departement"],
            r["communes"],
            r["msisdn_from"],
            r["msisdn_to"],
            r["cells"],
            r["exclude_communes"],
            r["exclude_cells"],
        )
        for r in await conn.fetch(
            "SELECT * FROM broadcast_chunks WHERE broadcast_id = $1 ORDER BY chunk_no",
            broadcast_id,
        )
    ]
    print(
        f"plan: national target, {plan.recipients:,} recipients in {len(plan.groups)} groups; "
        f"{len(chunks):,} chunks of {chunk_size:,} created in {figures['chunking_ms']} ms"
    )
    sql = queries["stream_chunk"].rstrip().rstrip(";")
    todo = list(reversed(chunks))
    streamed = [0] * workers

    async def worker(k: int) -> None:
        wconn = await database.connect(dsn)
        languages = dict.fromkeys([b"fr", b"en", b"es", b"de", b"ar"], 0)  # as the engine's by_lang
        tail = b""
        rows = 0

        async def consume(data: bytes) -> None:
            nonlocal tail, rows
            lines = (tail + data).split(b"\n")
            tail = lines.pop()
            for line in lines:
                destination, _, lang = line.partition(b"\t")
                languages[lang] += int(destination) > 0
            rows += len(lines)

        try:
            while todo:
                chunk = todo.pop()
                args = [chunk.departement, chunk.msisdn_from, chunk.msisdn_to, chunk.communes]
                await wconn.copy_from_query(
                    sql, *args, False, *chunk.selection_args, output=consume
                )
        finally:
            await wconn.close()
        streamed[k] = rows

    started = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(workers)))
    seconds = time.perf_counter() - started
    total = sum(streamed)
    assert total == plan.recipients, (total, plan.recipients)
    figures["stream_rows_per_s"] = round(total / seconds)
    figures["stream_workers"] = workers
    print(
        f"stream: {total:,} recipients, chunk by chunk with COPY (stream_chunk) TO STDOUT, "
        f"{workers} connection(s): {seconds:.2f} s = {figures['stream_rows_per_s']:,} rows/s"
    )


async def _reimport(conn: Conn, dsn: str, path: Path, figures: dict[str, Any]) -> None:
    """A file of 10% of the base: 10% of its rows changed (language), plus 1% new numbers."""
    sample = await conn.fetch(
        "SELECT msisdn, departement, commune, cell_id, lang, test_group FROM subscribers "
        "TABLESAMPLE SYSTEM (10) REPEATABLE (7)"
    )
    changed = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["msisdn", "departement", "commune", "cell_id", "lang", "test_group"])
        for i, r in enumerate(sample):
            lang = r["lang"]
            if i % 10 == 0:
                lang = "en" if lang == "fr" else "fr"
                changed += 1
            writer.writerow(
                [
                    r["msisdn"],
                    r["departement"],
                    r["commune"],
                    r["cell_id"],
                    lang,
                    int(r["test_group"]),
                ]
            )
        new = len(sample) // 100  # Guadeloupe's mobiles: valid, and never synthesised
        for i in range(new):
            writer.writerow([590_690_000_000 + i, "971", "97105", "C971001", "fr", 0])
    settings = Settings(database_url=dsn)
    first = (await import_csv(settings, path, None)).load
    again = (await import_csv(settings, path, None)).load
    assert (first.inserted, first.updated) == (new, changed), first.as_json()
    assert (again.inserted, again.updated) == (0, 0), again.as_json()
    figures["upsert_rows_per_s"] = round(first.rows_per_second)
    figures["reimport_unchanged_rows_per_s"] = round(again.rows_per_second)
    print(
        f"upsert: {first.rows:,} rows ({first.inserted:,} new, {first.updated:,} changed) in "
        f"{first.seconds:.1f} s = {first.rows_per_second:,.0f} rows/s; the same file again: "
        f"nothing written, {again.seconds:.1f} s = {again.rows_per_second:,.0f} rows/s"
    )


async def _synth(conn: Conn, count: int, figures: dict[str, Any]) -> None:
    await conn.execute("TRUNCATE subscribers")
    result = await synthesise_into(conn, count, seed=9)
    assert result.bulk, result.as_json()
    assert result.inserted == count, result.as_json()
    figures["synth_rows_per_s"] = round(result.rows_per_second)
    print(
        f"synth: {count:,} subscribers generated and bulk-loaded in {result.seconds:.1f} s = "
        f"{result.rows_per_second:,.0f} rows/s"
    )


def _in_an_hour() -> datetime:
    return datetime.now(UTC) + timedelta(hours=1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--subscribers", type=int, default=2_000_000, help="default 2,000,000")
    parser.add_argument(
        "--target", type=int, default=1_000_000, help="recipients of the counted target"
    )
    parser.add_argument("--chunk-size", type=int, default=Settings().chunk_size)
    parser.add_argument("--workers", type=int, default=1, help="streaming connections")
    parser.add_argument("--verbose", action="store_true", help="show progress logs")
    args = parser.parse_args()
    configure_logging(level="info" if args.verbose else "warning")
    figures = asyncio.run(main(args.subscribers, args.target, args.chunk_size, args.workers))
    print(json.dumps(figures))
