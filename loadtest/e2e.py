"""End-to-end throughput: PostgreSQL -> engine -> mock SMSC (no TPS cap) -> outcomes recorded.

    python loadtest/e2e.py --recipients 1000000

Seeds a scratch database, starts the mock SMSC in its own process (recording off, so it is not
the bottleneck), and runs `broadcaster send` in its own process twice: a ~100k-recipient target
(the baseline for memory) and the full target. Prints messages/s, time to first submit_sm, peak
RSS and CPU per message of the broadcaster process; the last line is one JSON object.
Targets (issue 6): >= 50,000 msg/s at 1M, first submit < 250 ms, RSS(1M) - RSS(100k) <= 30 MB.
`runs` in the JSON holds each run's figures. With `--profile FILE`, one more run of the full
target (not measured) goes under pyinstrument, which saves its session to FILE (pyisession).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import asyncpg

from broadcaster.importer import seed_synthetic
from loadtest.common import (
    departements_for,
    description,
    live_send,
    mock_smsc_process,
    quiet_logs,
    scratch_database,
)

PROFILER = ("-m", "pyinstrument", "--interval", "0.001", "-r", "pyisession", "-o")


def _figures(report: dict[str, Any], wall: float) -> dict[str, Any]:
    return {
        "recipients": report["recipients"],
        "msgs_per_s": report["msgs_per_s"],
        "first_submit_ms": report["first_submit_ms"],
        "peak_rss_mb": report["peak_rss_mb"],
        "cpu_us_per_msg": round(report["cpu_seconds"] / max(1, report["recipients"]) * 1e6, 1),
        "seconds": report["seconds"],
        "process_wall_s": round(wall, 2),
        "state": report["state"],
    }


async def main(
    recipients: int, binds: int, window: int, profile: str | None = None
) -> dict[str, object]:
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        started = time.monotonic()
        await seed_synthetic(conn, recipients)
        print(f"seeded {recipients:,} subscribers in {time.monotonic() - started:.1f} s")
        await conn.close()
        small = await departements_for(dsn, min(100_000, recipients // 10))
        results = {}
        walls = {}
        with mock_smsc_process("--no-record") as port:
            env = {
                "DATABASE_URL": dsn,
                "BROADCASTER_SMSC_URL": f"smpp://bc:pw@127.0.0.1:{port}?binds={binds}&window={window}",
                "BROADCASTER_LOG_LEVEL": "warning",
            }
            for label, areas in (("baseline", small), ("full", None)):
                targets = (
                    [f"--area=dep:{d}" for d in areas]
                    if areas
                    else [f"--area=dep:{d}" for d in await departements_for(dsn, recipients)]
                )
                report, wall = await asyncio.to_thread(
                    live_send, *targets, "--template", "outage", env=env
                )
                results[label] = report
                walls[label] = wall
                print(
                    f"{label:>8}: {report['recipients']:>9,} recipients  "
                    f"{report['msgs_per_s']:>9,.0f} msg/s  first submit "
                    f"{report['first_submit_ms']} ms  peak RSS {report['peak_rss_mb']} MB  "
                    f"CPU {report['cpu_seconds'] / max(1, report['recipients']) * 1e6:.1f} "
                    f"µs/msg  state {report['state']}  (process wall {wall:.1f} s)"
                )
            if profile:
                report, wall = await asyncio.to_thread(
                    live_send,
                    *targets,
                    "--template",
                    "outage",
                    env=env,
                    prefix=(*PROFILER, profile),
                )
                walls["profiled"] = wall
                results["profiled"] = report
                print(f"profiled run: {report['msgs_per_s']:,.0f} msg/s, session in {profile}")
    full, base = results["full"], results["baseline"]
    runs = {label: _figures(report, walls[label]) for label, report in results.items()}
    return {
        "recipients": full["recipients"],
        "msgs_per_s": full["msgs_per_s"],
        "first_submit_ms": full["first_submit_ms"],
        "peak_rss_mb": full["peak_rss_mb"],
        "baseline_recipients": base["recipients"],
        "baseline_peak_rss_mb": base["peak_rss_mb"],
        "baseline_msgs_per_s": base["msgs_per_s"],
        "baseline_first_submit_ms": base["first_submit_ms"],
        "baseline_cpu_us_per_msg": runs["baseline"]["cpu_us_per_msg"],
        "rss_growth_mb": round(full["peak_rss_mb"] - base["peak_rss_mb"], 1),
        "cpu_us_per_msg": round(full["cpu_seconds"] / max(1, full["recipients"]) * 1e6, 1),
        "accepted": full["accepted"],
        "duplicates": full["duplicates"],
        "state": full["state"],
        "runs": runs,
    }


if __name__ == "__main__":
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--profile", metavar="FILE", help="pyisession of one more full run")
    args = parser.parse_args()
    figures = asyncio.run(main(args.recipients, args.binds, args.window, args.profile))
    print(json.dumps(figures))
