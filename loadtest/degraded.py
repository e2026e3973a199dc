"""Degraded: one SMSC throttling above 60% of its contract, another going down mid-run.

    python -m loadtest.degraded --binds 2 --tps 1000 --throttle-above 0.6 --down-after 8

Two mock SMSCs, each in its own process, both contracted at `--tps` parts/s per bind (that is
what the broadcaster is configured with):

- site A really accepts only `--throttle-above` of it (ESME_RTHROTTLED beyond): the pool must
  find that rate and keep to it, without stopping;
- site B is healthy, and is killed (SIGKILL, no unbind) `--down-after` seconds after it
  accepted its first part: its parts in flight must go to site A, nothing lost.

One `broadcaster worker` process runs an `outage` broadcast of about `--parts` parts. The real
capacity is A's accepted rate plus B's contract while B is up, A's alone afterwards; the ideal
completion time sends every part at that capacity from the first submit. `efficiency` = ideal
/ actual completion time (first submit to last answer, from the database). Also printed:
throttles, parts per site, parts sent twice, accepted parts/s per site over time. The last line
is one JSON object.
Target (issue 10): efficiency >= 0.85 of the real capacity.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from loadtest.common import (
    MockProcess,
    delivery_timeline,
    description,
    mock_smsc,
    quiet_logs,
    run_workers,
    scratch_database,
    seed_and_create_outage,
)

POLL = 0.02
"""Seconds between looks at site B's statistics before killing it."""


def ideal_seconds(parts: int, both: float, alone: float, down_at: float | None) -> float:
    """Time to send `parts` at `both` parts/s until `down_at` (seconds after the first
    submit; None: never), at `alone` parts/s afterwards."""
    if down_at is None or parts <= both * down_at:
        return parts / both
    return down_at + (parts - both * down_at) / alone


async def _kill_later(mock: MockProcess, after: float, deadline: float) -> float | None:
    """SIGKILL `mock` `after` seconds after it accepted its first part; the kill time (epoch)."""
    first: float | None = None
    while time.monotonic() < deadline:
        stats = await asyncio.to_thread(mock.stats)
        if first is None and stats["parts"]:
            first = time.monotonic()
        if first is not None and time.monotonic() - first >= after:
            mock.kill()
            return time.time()
        await asyncio.sleep(POLL)
    return None


async def main(
    binds: int, tps: float, throttle_above: float, down_after: float, parts_wanted: int, window: int
) -> dict[str, Any]:
    capacity_a = tps * throttle_above * binds
    capacity_b = tps * binds
    async with scratch_database() as dsn:
        broadcast_id, recipients, parts = await seed_and_create_outage(dsn, parts_wanted)
        print(
            f"broadcast {broadcast_id}: {recipients:,} recipients, {parts:,} parts; site A "
            f"accepts {capacity_a:g} parts/s of {tps * binds:g} contracted, site B "
            f"{capacity_b:g} until killed {down_after:g} s in",
            flush=True,
        )
        common = ("--no-record", "--tps", f"{tps:g}", "--window", str(window))
        with (
            mock_smsc(*common, "--throttle-above", f"{throttle_above:g}", stats=True) as site_a,
            mock_smsc(*common, stats=True) as site_b,
        ):
            query = f"binds={binds}&tps={tps:g}&window={window}"
            urls = (
                f"smpp://a:pw@127.0.0.1:{site_a.port}?{query},"
                f"smpp://b:pw@127.0.0.1:{site_b.port}?{query}"
            )
            timeout = 60 + 3 * parts / capacity_a
            killer = asyncio.create_task(
                _kill_later(site_b, down_after, time.monotonic() + timeout)
            )
            try:
                wall = await run_workers(
                    {"DATABASE_URL": dsn, "BROADCASTER_SMSC_URL": urls}, 1, timeout
                )
            finally:
                if not killer.done():
                    killer.cancel()
                killed_at = await asyncio.gather(killer, return_exceptions=True)
            stats_a = site_a.stats()
        timeline = await delivery_timeline(dsn, broadcast_id)
    kill_time = killed_at[0] if isinstance(killed_at[0], float) else None
    down_at = kill_time - timeline["first_submit"] if kill_time is not None else None
    accepted = timeline["accepted_parts"]
    ideal = ideal_seconds(accepted, capacity_a + capacity_b, capacity_a, down_at)
    actual = timeline["seconds"]
    statuses: dict[str, int] = stats_a["statuses"]
    smsc_names = sorted(timeline["by_smsc"])
    result: dict[str, Any] = {
        "binds_per_site": binds,
        "tps_per_bind": tps,
        "throttle_above": throttle_above,
        "capacity_a_parts_per_s": capacity_a,
        "capacity_b_parts_per_s": capacity_b,
        "recipients": recipients,
        "parts": parts,
        "accepted_parts": accepted,
        "accepted_by_smsc": timeline["by_smsc"],
        "b_down_at_s": round(down_at, 3) if down_at is not None else None,
        "seconds": actual,
        "ideal_seconds": round(ideal, 3),
        "efficiency": round(ideal / actual, 4) if actual > 0 else 0.0,
        "a_parts_per_s_after_down": None,
        "a_throttled": statuses.get("ESME_RTHROTTLED", 0) + statuses.get("ESME_RMSGQFUL", 0),
        "duplicate_rows": timeline["duplicate_rows"],
        "missing_parts": parts - accepted,
        "worker_wall_s": round(wall, 2),
        "series": {name: timeline["series"][name] for name in smsc_names},
    }
    if down_at is not None and actual > down_at:
        after = [
            rate
            for t, rate in timeline["series"].get("smsc1", [])
            if t >= down_at + 1.0 and t + 1.0 <= actual
        ]
        if after:
            result["a_parts_per_s_after_down"] = round(sum(after) / len(after), 1)
    print(
        f"accepted {accepted:,}/{parts:,} parts in {actual:.2f} s (ideal {ideal:.2f} s): "
        f"efficiency {result['efficiency']:.1%}; B down at {result['b_down_at_s']} s; per site "
        f"{timeline['by_smsc']}; site A throttled {result['a_throttled']:,} times, accepted "
        f"{result['a_parts_per_s_after_down']} parts/s alone (real capacity {capacity_a:g}); "
        f"{timeline['duplicate_rows']} parts recorded twice"
    )
    return result


if __name__ == "__main__":
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--binds", type=int, default=2, help="binds per site")
    parser.add_argument("--tps", type=float, default=1000.0, help="contracted parts/s per bind")
    parser.add_argument("--throttle-above", type=float, default=0.6, help="site A's real share")
    parser.add_argument("--down-after", type=float, default=8.0, help="seconds before B dies")
    parser.add_argument("--parts", type=int, default=45_000, help="parts to send, about")
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args()
    figures = asyncio.run(
        main(args.binds, args.tps, args.throttle_above, args.down_after, args.parts, args.window)
    )
    print(json.dumps(figures))
