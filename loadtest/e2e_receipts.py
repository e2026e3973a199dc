"""End to end with every part receipted (issue 22), against a no-receipts baseline in the same
invocation, with a status-latency probe.

    python -m loadtest.e2e_receipts --recipients 1000000
    python -m loadtest.e2e_receipts --recipients 10000000     # the national run, by hand

Seeds a scratch database; runs `broadcaster send` over every département twice, each against a
mock SMSC process of its own: without receipts (the baseline), then with `--receipts
--receipt-delay-ms 200`. During the receipts run and for 5 s after it, a probe reads the
broadcast's status (store.progress, what `status`, the console, the API read) every 0.5 s and
records how long each read took. Prints msg/s of both runs and their ratio, the probe's p50/p99
during and after, peak RSS, receipts recorded, the database size per million recipients and the
lowest, median and highest parts accepted in a second (an average hides the dips); the last line
is one JSON object. The machine is shared: compare ratios, not absolute figures.

In `make loadtest` (scenario `e2e_receipts`: 1M in full mode, 20k with --quick). Receipts
that come after `send` has finished (the last ~200 ms) are not waited for: "receipts recorded"
counts those recorded while sending. `--profile PREFIX` samples both processes with py-spy.
The 10M national run: loadtest/national.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import asyncpg
from asyncpg.connection import LoggedQuery

from broadcaster.importer import seed_synthetic
from broadcaster.store import broadcasts as store
from broadcaster.store import database
from loadtest.common import (
    delivery_timeline,
    departements_for,
    description,
    live_send,
    mock_smsc,
    quiet_logs,
    scratch_database,
)
from loadtest.mock_capacity import cpu_seconds

PROBE_EVERY_S = 0.5
AFTER_S = 5.0
RECEIPTS = ("--receipts", "--receipt-delay-ms", "200")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def _probe(
    dsn: str,
    first_id: int,
    done: asyncio.Event,
    out: dict[str, list[float]],
    by_query: dict[str, list[float]],
) -> None:
    """Time `progress` of the newest broadcast (> first_id) every 0.5 s; 'after' once `done`;
    `by_query`: each of its statements' times (where a slow read spends them). On a connection
    set up as the product's (`database.connect`: no JIT), as `status` and the console read."""
    conn = await database.connect(dsn)

    def logged(record: LoggedQuery) -> None:
        key = " ".join(record.query.split())[:60]
        by_query.setdefault(key, []).append(record.elapsed * 1000)

    try:
        finished_at: float | None = None
        while True:
            if done.is_set() and finished_at is None:
                finished_at = time.monotonic()
            if finished_at is not None and time.monotonic() - finished_at > AFTER_S:
                return
            newest = await conn.fetchval("SELECT max(id) FROM broadcasts")
            if newest is not None and newest > first_id:
                started = time.perf_counter()
                conn.add_query_logger(logged)
                await store.progress(conn, int(newest))
                conn.remove_query_logger(logged)
                ms = (time.perf_counter() - started) * 1000
                out["after" if finished_at is not None else "during"].append(ms)
            await asyncio.sleep(PROBE_EVERY_S)
    finally:
        await conn.close()


async def _cpu(dsn: str, mock_pid: int, done: asyncio.Event, seen: dict[int, float]) -> None:
    """CPU seconds of the mock and of the database's backends serving the scratch database
    (sampled every 0.25 s until `done`: the last figure each process showed)."""
    conn = await asyncpg.connect(dsn)
    try:
        while True:
            pids = await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )
            for pid in [mock_pid, *(int(r["pid"]) for r in pids)]:
                with contextlib.suppress(OSError):
                    seen[pid] = cpu_seconds(pid)
            if done.is_set():
                return
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def _per_second(dsn: str, broadcast_id: int) -> dict[str, float]:
    """Parts accepted in each whole second of the broadcast's run (`delivery_timeline`): the
    lowest, the median and the highest (a run's average hides its dips)."""
    timeline = await delivery_timeline(dsn, broadcast_id)
    rates = [rate for series in timeline["series"].values() for _t, rate in series]
    if not rates:
        return {}
    return {
        "min": round(min(rates)),
        "median": round(statistics.median(rates)),
        "max": round(max(rates)),
    }


def _spy_on_send(path: str) -> None:
    """py-spy on our `broadcaster send` child once it runs (within 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                if int(stat[1]) == os.getpid() and b"send" in cmdline:
                    spy_on(int(entry.name), path)
                    return
        time.sleep(0.05)


def spy_on(pid: int, path: str) -> None:
    """py-spy (pip install py-spy) samples process `pid` into `path` (raw) until it exits."""
    spy = ["py-spy", "record", "-r", "200", "-f", "raw", "-o", path, "-p", str(pid)]
    subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


async def _send(
    dsn: str,
    mock_args: tuple[str, ...],
    deps: list[str],
    binds: int,
    window: int,
    probe: bool,
    profile: str | None = None,
) -> tuple[dict[str, Any], dict[str, list[float]]]:
    latencies: dict[str, list[float]] = {"during": [], "after": []}
    by_query: dict[str, list[float]] = {}
    conn = await asyncpg.connect(dsn)
    first_id = int(await conn.fetchval("SELECT coalesce(max(id), 0) FROM broadcasts"))
    await conn.close()
    with mock_smsc("--no-record", *mock_args) as mock:
        port = mock.port
        if profile:  # py-spy on the mock and on `send`
            spy_on(mock.proc.pid, f"{profile}.mock.raw")
            threading.Thread(target=_spy_on_send, args=(f"{profile}.send.raw",)).start()
        env = {
            "DATABASE_URL": dsn,
            "BROADCASTER_SMSC_URL": f"smpp://bc:pw@127.0.0.1:{port}?binds={binds}&window={window}",
            "BROADCASTER_LOG_LEVEL": "warning",
        }
        done = asyncio.Event()
        task = (
            asyncio.create_task(_probe(dsn, first_id, done, latencies, by_query)) if probe else None
        )
        cpu: dict[int, float] = {}
        sampler = asyncio.create_task(_cpu(dsn, mock.proc.pid, done, cpu))
        areas = [f"--area=dep:{d}" for d in deps]
        report, _wall = await asyncio.to_thread(live_send, *areas, "--template", "outage", env=env)
        done.set()
        await sampler
        if task is not None:
            await task
        mock_cpu = cpu.pop(mock.proc.pid, 0.0)
        report["per_second"] = await _per_second(dsn, int(report["broadcast_id"]))
        slowest = sorted(by_query.items(), key=lambda kv: -sum(kv[1]))[:4]
        for query, times in slowest:
            print(f"  status statement p50 {_pct(times, 0.5)} max {max(times):.1f} ms: {query}")
            # (the statements of `status` taking the most time in all during the receipts run)
        per_msg = 1e6 / max(1, report["recipients"])
        report["cpu_us_per_msg"] = {
            "send": round(report["cpu_seconds"] * per_msg, 1),
            "mock": round(mock_cpu * per_msg, 1),
            "postgres": round(sum(cpu.values()) * per_msg, 1),
        }
    return report, latencies


async def main(
    recipients: int, binds: int, window: int, profile: str | None = None
) -> dict[str, Any]:
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        started = time.monotonic()
        await seed_synthetic(conn, recipients)
        print(f"seeded {recipients:,} subscribers in {time.monotonic() - started:.1f} s")
        await conn.close()
        deps = await departements_for(dsn, recipients)
        base, _ = await _send(
            dsn,
            (),
            deps,
            binds,
            window,
            probe=False,
            profile=f"{profile}.baseline" if profile else None,
        )
        print(
            f"no receipts: {base['recipients']:,} recipients {base['msgs_per_s']:,.0f} msg/s "
            f"peak RSS {base['peak_rss_mb']} MB; CPU µs/msg {base['cpu_us_per_msg']}"
        )
        full, lat = await _send(dsn, RECEIPTS, deps, binds, window, probe=True, profile=profile)
        conn = await asyncpg.connect(dsn)
        broadcast_id = int(full["broadcast_id"])  # (`send --json` says which)
        receipts = int(
            await conn.fetchval(
                "SELECT coalesce(sum(parts), 0) FROM receipt_rollup WHERE broadcast_id = $1",
                broadcast_id,
            )
        )
        parts = int(
            await conn.fetchval(
                "SELECT coalesce(sum(parts), 0) FROM outcome_rollup"
                " WHERE broadcast_id = $1 AND status = 0",
                broadcast_id,
            )
        )
        db_bytes = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
        await conn.close()
    figures: dict[str, Any] = {
        "recipients": full["recipients"],
        "msgs_per_s": full["msgs_per_s"],
        "baseline_msgs_per_s": base["msgs_per_s"],
        "receipts_ratio": round(full["msgs_per_s"] / max(1.0, base["msgs_per_s"]), 3),
        "parts_accepted": parts,
        "receipts_recorded": receipts,
        "receipts_matched_in_memory": full.get("receipts_matched_in_memory"),
        "status_p50_ms_during": _pct(lat["during"], 0.5),
        "status_p99_ms_during": _pct(lat["during"], 0.99),
        "status_p50_ms_after": _pct(lat["after"], 0.5),
        "status_p99_ms_after": _pct(lat["after"], 0.99),
        "status_reads": len(lat["during"]) + len(lat["after"]),
        "status_mean_ms": round(statistics.fmean(lat["during"] + lat["after"]), 1)
        if lat["during"] or lat["after"]
        else None,
        "peak_rss_mb": full["peak_rss_mb"],
        "baseline_peak_rss_mb": base["peak_rss_mb"],
        "cpu_us_per_msg": full["cpu_us_per_msg"],
        "parts_per_s_by_second": full["per_second"],
        "baseline_parts_per_s_by_second": base["per_second"],
        "baseline_cpu_us_per_msg": base["cpu_us_per_msg"],
        "db_mb_per_million": round(db_bytes / 1e6 / max(1, recipients) * 1e6, 1),
        "state": full["state"],
    }
    print(
        f"receipts: {full['recipients']:,} recipients {full['msgs_per_s']:,.0f} msg/s "
        f"({figures['receipts_ratio']:.2f} x no receipts), {receipts:,} receipts recorded "
        f"({full.get('receipts_matched_in_memory') or 0:,} matched in memory by send); "
        f"status p50/p99 {figures['status_p50_ms_during']}/{figures['status_p99_ms_during']} ms "
        f"during, {figures['status_p50_ms_after']}/{figures['status_p99_ms_after']} ms after; "
        f"peak RSS {full['peak_rss_mb']} MB; database {figures['db_mb_per_million']} MB per "
        f"million recipients (both runs' outcomes); CPU µs/msg {full['cpu_us_per_msg']}; "
        f"parts accepted per second min/median/max {full['per_second']} "
        f"(no receipts: {base['per_second']})"
    )
    return figures


if __name__ == "__main__":
    # The mock's stdout is a pipe read for its first line only: its logs must stay quiet.
    os.environ.setdefault("BROADCASTER_LOG_LEVEL", "warning")
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument(
        "--profile",
        metavar="PREFIX",
        help="py-spy of send and the mock: PREFIX.send.raw, .mock.raw; the baseline's:"
        " PREFIX.baseline.*",
    )
    args = parser.parse_args()
    figures = asyncio.run(main(args.recipients, args.binds, args.window, args.profile))
    print(json.dumps(figures))
