"""The national run (issue 22), by hand: every part receipted, at 1M recipients then at N
(10M: the country), on one database; is anything growing with the size of the broadcast?

    python -m loadtest.national --recipients 10000000     # ~30 min and ~6 GB on this machine
    python -m loadtest.national --recipients 2000000      # what fits beside other work

Seeds N synthetic subscribers into a scratch database, then runs `broadcaster send` (its own
process, against a mock SMSC process of its own with `--receipts --receipt-delay-ms 200`) to
~1M of them (a prefix of départements: the baseline), then to all N. During each send and 5 s
after, the status of the broadcast is read every 0.5 s (store.progress: what `status`, the
console, the API and /metrics read) and timed. Prints, for 1M and N: msg/s, status p50/p99
during and after, peak RSS of the send process, receipts recorded, and what the run added to
the database per million recipients (outcomes, receipts, roll-ups, their indexes); then the
ratios N ÷ 1M. The targets: status < 200 ms at 10M, RSS flat. The last line is one JSON object.
The machine is shared: the ratios are the figures, not the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

import asyncpg

from broadcaster.importer import seed_synthetic
from loadtest.common import departements_for, description, quiet_logs, scratch_database
from loadtest.e2e_receipts import RECEIPTS, _pct, _send

BASELINE = 1_000_000


async def _one(dsn: str, deps: list[str], binds: int, window: int) -> dict[str, Any]:
    """One send with receipts: its figures and what it added to the database."""
    conn = await asyncpg.connect(dsn)
    before = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    await conn.close()
    report, lat = await _send(dsn, RECEIPTS, deps, binds, window, probe=True)
    conn = await asyncpg.connect(dsn)
    broadcast_id = int(await conn.fetchval("SELECT max(id) FROM broadcasts"))
    receipts = int(
        await conn.fetchval(
            "SELECT coalesce(sum(parts), 0) FROM receipt_rollup WHERE broadcast_id = $1",
            broadcast_id,
        )
    )
    after = int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    await conn.close()
    recipients = int(report["recipients"])
    return {
        "recipients": recipients,
        "msgs_per_s": report["msgs_per_s"],
        "seconds": report["seconds"],
        "status_p50_ms_during": _pct(lat["during"], 0.5),
        "status_p99_ms_during": _pct(lat["during"], 0.99),
        "status_p50_ms_after": _pct(lat["after"], 0.5),
        "status_p99_ms_after": _pct(lat["after"], 0.99),
        "status_reads": len(lat["during"]) + len(lat["after"]),
        "peak_rss_mb": report["peak_rss_mb"],
        "receipts_recorded": receipts,
        "cpu_us_per_msg": report["cpu_us_per_msg"],
        "db_mb_per_million": round((after - before) / 1e6 / max(1, recipients) * 1e6, 1),
        "state": report["state"],
    }


def _line(label: str, r: dict[str, Any]) -> str:
    return (
        f"{label}: {r['recipients']:,} recipients {r['msgs_per_s']:,.0f} msg/s in {r['seconds']} s;"
        f" status p50/p99 {r['status_p50_ms_during']}/{r['status_p99_ms_during']} ms during, "
        f"{r['status_p50_ms_after']}/{r['status_p99_ms_after']} ms after; peak RSS "
        f"{r['peak_rss_mb']} MB; {r['receipts_recorded']:,} receipts; "
        f"{r['db_mb_per_million']} MB per million recipients; CPU µs/msg {r['cpu_us_per_msg']}"
    )


async def main(recipients: int, binds: int, window: int) -> dict[str, Any]:
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        started = time.monotonic()
        await seed_synthetic(conn, recipients)
        seeded_mb = int(await conn.fetchval("SELECT pg_database_size(current_database())")) / 1e6
        await conn.execute("ANALYZE")
        await conn.close()
        print(
            f"seeded {recipients:,} subscribers in {time.monotonic() - started:.0f} s "
            f"({seeded_mb:,.0f} MB)",
            flush=True,
        )
        small = await _one(dsn, await departements_for(dsn, BASELINE), binds, window)
        print(_line("baseline", small), flush=True)
        full = await _one(dsn, await departements_for(dsn, recipients), binds, window)
        print(_line("national", full), flush=True)

    def ratio(key: str) -> float | None:
        a, b = small.get(key), full.get(key)
        return (
            round(b / a, 2)
            if isinstance(a, int | float) and isinstance(b, int | float) and a
            else None
        )

    figures = {
        "recipients": full["recipients"],
        "baseline_recipients": small["recipients"],
        "msgs_per_s": full["msgs_per_s"],
        "baseline_msgs_per_s": small["msgs_per_s"],
        "msgs_per_s_ratio": ratio("msgs_per_s"),
        "status_p99_ms_during": full["status_p99_ms_during"],
        "status_p99_ms_after": full["status_p99_ms_after"],
        "baseline_status_p99_ms_during": small["status_p99_ms_during"],
        "baseline_status_p99_ms_after": small["status_p99_ms_after"],
        "peak_rss_mb": full["peak_rss_mb"],
        "baseline_peak_rss_mb": small["peak_rss_mb"],
        "rss_growth_mb": round(full["peak_rss_mb"] - small["peak_rss_mb"], 1),
        "db_mb_per_million": full["db_mb_per_million"],
        "baseline_db_mb_per_million": small["db_mb_per_million"],
        "subscribers_mb_per_million": round(seeded_mb / recipients * 1e6, 1),
        "runs": {"baseline": small, "national": full},
    }
    print(
        f"national ÷ baseline: msg/s {figures['msgs_per_s_ratio']}x, status p99 during "
        f"{ratio('status_p99_ms_during')}x, after {ratio('status_p99_ms_after')}x, peak RSS "
        f"+{figures['rss_growth_mb']} MB, database per million {ratio('db_mb_per_million')}x"
    )
    return figures


if __name__ == "__main__":
    os.environ.setdefault("BROADCASTER_LOG_LEVEL", "warning")
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--recipients", type=int, default=10_000_000)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.recipients, args.binds, args.window))))
