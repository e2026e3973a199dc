"""End-to-end throughput: PostgreSQL -> engine -> mock SMSC (no TPS cap) -> outcomes recorded.

    python loadtest/e2e.py --recipients 1000000

Seeds a scratch database, starts the mock SMSC in its own process (recording off, so it is not
the bottleneck), and runs `broadcaster send` in its own process twice: a ~100k-recipient target
(the baseline for memory) and the full target. Prints messages/s, time to first submit_sm, peak
RSS and CPU per message of the broadcaster process; the last line is one JSON object.
Targets (issue 6): >= 50,000 msg/s at 1M, first submit < 250 ms, RSS(1M) - RSS(100k) <= 30 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import asyncpg

from broadcaster.importer import seed_synthetic
from loadtest.common import broadcaster_cli, departements_for, mock_smsc_process, scratch_database


async def main(recipients: int, binds: int, window: int) -> dict[str, object]:
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        started = time.monotonic()
        await seed_synthetic(conn, recipients)
        print(f"seeded {recipients:,} subscribers in {time.monotonic() - started:.1f} s")
        await conn.close()
        small = await departements_for(dsn, min(100_000, recipients // 10))
        results = {}
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
                    broadcaster_cli, "send", *targets, "--template", "outage", "--yes", env=env
                )
                results[label] = report
                print(
                    f"{label:>8}: {report['recipients']:>9,} recipients  "
                    f"{report['msgs_per_s']:>9,.0f} msg/s  first submit "
                    f"{report['first_submit_ms']} ms  peak RSS {report['peak_rss_mb']} MB  "
                    f"CPU {report['cpu_seconds'] / max(1, report['recipients']) * 1e6:.1f} "
                    f"µs/msg  state {report['state']}  (process wall {wall:.1f} s)"
                )
    full, base = results["full"], results["baseline"]
    return {
        "recipients": full["recipients"],
        "msgs_per_s": full["msgs_per_s"],
        "first_submit_ms": full["first_submit_ms"],
        "peak_rss_mb": full["peak_rss_mb"],
        "baseline_recipients": base["recipients"],
        "baseline_peak_rss_mb": base["peak_rss_mb"],
        "rss_growth_mb": round(full["peak_rss_mb"] - base["peak_rss_mb"], 1),
        "cpu_us_per_msg": round(full["cpu_seconds"] / max(1, full["recipients"]) * 1e6, 1),
        "accepted": full["accepted"],
        "duplicates": full["duplicates"],
        "state": full["state"],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.recipients, args.binds, args.window))))
