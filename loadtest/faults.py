"""Faults: what a few throttles and frequent disconnects cost, against a no-fault baseline.

    python -m loadtest.faults --parts 100000 --repeat 3

One scratch database, seeded once; then, in one invocation, the same `outage` broadcast (a new
one each time, about `--parts` parts) sent by one `broadcaster worker` process to a mock SMSC
(its own process, no TPS limit: only the faults slow it) in three runs:

- `baseline`: no fault;
- `throttle`: `--throttle-share` of the parts (2%) answered ESME_RTHROTTLED at random;
- `disconnect`: every connection closed by the SMSC after answering `--disconnect-after`
  (1,000) submit_sm.

Every run uses the mock's per-PDU path (the baseline with a 0% error rate), so that only the
faults differ. The machine is shared: a small warm-up run comes first (not counted), then the
three runs in turn, `--repeat` times, and each figure is the median of its repeats.
Throughput is accepted parts / (first submit to last answer), from the database; each fault's
`ratio` is its median throughput over the baseline's, measured in the same invocation. Also
printed: throttles, disconnects, submit_sm received per part accepted (resends), parts
recorded twice, parts missing. The last line is one JSON object.
Targets (issue 20): throttle ratio >= 0.8 (2% throttles cost at most 20%), disconnect ratio
>= 0.7 (a disconnect every 1,000 submits costs at most 30%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from statistics import median
from typing import Any

import asyncpg

from broadcaster.importer import seed_synthetic
from loadtest.common import (
    create_outage_broadcast,
    delivery_timeline,
    description,
    mock_smsc,
    quiet_logs,
    run_workers,
    scratch_database,
)

THROTTLE_STATUSES = ("ESME_RTHROTTLED", "ESME_RMSGQFUL")


def runs(throttle_share: float, disconnect_after: int) -> dict[str, tuple[str, ...]]:
    """Each run's mock SMSC flags (all on its per-PDU path: an error rate, even 0)."""
    return {
        "baseline": ("--error", "ESME_RTHROTTLED=0"),
        "throttle": ("--error", f"ESME_RTHROTTLED={throttle_share:g}"),
        "disconnect": (
            "--error",
            "ESME_RTHROTTLED=0",
            "--disconnect-after",
            str(disconnect_after),
        ),
    }


async def one_run(
    dsn: str, name: str, flags: tuple[str, ...], parts_wanted: int, binds: int, window: int
) -> dict[str, Any]:
    """One broadcast through a mock SMSC with `flags`; its figures."""
    broadcast_id, recipients, parts = await create_outage_broadcast(dsn, parts_wanted)
    with mock_smsc("--no-record", "--seed", "20", *flags, stats=True) as mock:
        url = f"smpp://faults:pw@127.0.0.1:{mock.port}?binds={binds}&window={window}"
        wall = await run_workers({"DATABASE_URL": dsn, "BROADCASTER_SMSC_URL": url}, 1, 300)
        smsc = mock.stats()
    timeline = await delivery_timeline(dsn, broadcast_id)
    statuses: dict[str, int] = smsc["statuses"]
    accepted = timeline["accepted_parts"]
    seconds = timeline["seconds"]
    result: dict[str, Any] = {
        "broadcast_id": broadcast_id,
        "recipients": recipients,
        "parts": parts,
        "accepted_parts": accepted,
        "missing_parts": parts - accepted,
        "seconds": seconds,
        "parts_per_s": round(accepted / seconds, 1) if seconds > 0 else 0.0,
        "throttles": sum(statuses.get(s, 0) for s in THROTTLE_STATUSES),
        "disconnects": smsc["disconnects"],
        "connections": smsc["connections"],
        "submits": smsc["submits"],
        "submits_per_part": round(smsc["submits"] / accepted, 4) if accepted else 0.0,
        "duplicate_rows": timeline["duplicate_rows"],
        "worker_wall_s": round(wall, 2),
    }
    print(
        f"{name:10} {accepted:,}/{parts:,} parts in {seconds:.2f} s = "
        f"{result['parts_per_s']:,.0f} parts/s; throttles {result['throttles']:,}, "
        f"disconnects {result['disconnects']:,}, submit_sm per part "
        f"{result['submits_per_part']:.3f}, missing {result['missing_parts']}",
        flush=True,
    )
    return result


async def main(
    parts_wanted: int,
    throttle_share: float,
    disconnect_after: int,
    binds: int,
    window: int,
    repeat: int,
) -> dict[str, Any]:
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        try:
            await seed_synthetic(conn, parts_wanted)
        finally:
            await conn.close()
        print(
            f"{parts_wanted:,} parts a run, {binds} binds x window {window}, no TPS limit; "
            f"faults: {throttle_share:.0%} throttled, a disconnect every "
            f"{disconnect_after:,} submits",
            flush=True,
        )
        scenarios = runs(throttle_share, disconnect_after)
        await one_run(dsn, "warm-up", scenarios["baseline"], parts_wanted // 10, binds, window)
        repeats: dict[str, list[dict[str, Any]]] = {name: [] for name in scenarios}
        for _ in range(repeat):
            for name, flags in scenarios.items():
                repeats[name].append(await one_run(dsn, name, flags, parts_wanted, binds, window))
    rates = {name: median(r["parts_per_s"] for r in done) for name, done in repeats.items()}
    base = rates["baseline"]
    throttle_ratio = rates["throttle"] / base if base else 0.0
    disconnect_ratio = rates["disconnect"] / base if base else 0.0
    print(
        f"median parts/s: baseline {base:,.0f}, throttle {rates['throttle']:,.0f}, "
        f"disconnect {rates['disconnect']:,.0f}; throughput vs baseline: "
        f"{throttle_share:.0%} throttles {throttle_ratio:.1%} "
        f"(cost {1 - throttle_ratio:.1%}, at most 20%); a disconnect every "
        f"{disconnect_after:,} submits {disconnect_ratio:.1%} (cost {1 - disconnect_ratio:.1%}, "
        f"at most 30%)",
        flush=True,
    )
    return {
        "parts": parts_wanted,
        "binds": binds,
        "window": window,
        "throttle_share": throttle_share,
        "disconnect_after": disconnect_after,
        "repeat": repeat,
        "baseline_parts_per_s": base,
        "throttle_parts_per_s": rates["throttle"],
        "disconnect_parts_per_s": rates["disconnect"],
        "throttle_ratio": round(throttle_ratio, 4),
        "disconnect_ratio": round(disconnect_ratio, 4),
        "missing_parts": sum(r["missing_parts"] for done in repeats.values() for r in done),
        "duplicate_rows": sum(r["duplicate_rows"] for done in repeats.values() for r in done),
        "runs": repeats,
    }


if __name__ == "__main__":
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--parts", type=int, default=100_000, help="parts per run, about")
    parser.add_argument("--throttle-share", type=float, default=0.02)
    parser.add_argument("--disconnect-after", type=int, default=1000)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, median kept")
    args = parser.parse_args()
    figures = asyncio.run(
        main(
            args.parts,
            args.throttle_share,
            args.disconnect_after,
            args.binds,
            args.window,
            args.repeat,
        )
    )
    print(json.dumps(figures))
