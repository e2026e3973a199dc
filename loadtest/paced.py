"""Paced: binds with a contracted TPS that the mock SMSC enforces; how close to it we send.

    python -m loadtest.paced --binds 4 --tps 500 --seconds 20

The mock SMSC runs in its own process with `--tps` per bind and `--window`: a part beyond
either is answered ESME_RTHROTTLED / ESME_RMSGQFUL. One `broadcaster worker` process (its own)
runs an `outage` broadcast of about `tps x binds x seconds` parts to a scratch database's
subscribers, with the same contract in its SMSC settings. From the SMSC's side (its statistics:
accepted parts over the span from the first to the last submit_sm it received) it prints the
achieved rate, the ratio to the contract and the throttles; from the database, accepted parts
per second over time. The last line is one JSON object.
Targets (issue 10): achieved / contracted >= 0.97 with zero throttles (the pacer aims at 98.5%).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from loadtest.common import (
    delivery_timeline,
    description,
    mock_smsc,
    quiet_logs,
    run_workers,
    scratch_database,
    seed_and_create_outage,
)

THROTTLE_STATUSES = ("ESME_RTHROTTLED", "ESME_RMSGQFUL")


async def main(binds: int, tps: float, seconds: float, window: int) -> dict[str, Any]:
    contract = tps * binds
    wanted = max(1, int(contract * seconds))
    async with scratch_database() as dsn:
        broadcast_id, recipients, parts = await seed_and_create_outage(dsn, wanted)
        print(
            f"broadcast {broadcast_id}: {recipients:,} recipients, {parts:,} parts; contract "
            f"{binds} binds x {tps:g} parts/s = {contract:g} parts/s "
            f"(ideal {parts / contract:.1f} s)",
            flush=True,
        )
        flags = ("--no-record", "--tps", f"{tps:g}", "--window", str(window))
        with mock_smsc(*flags, stats=True) as mock:
            url = f"smpp://paced:pw@127.0.0.1:{mock.port}?binds={binds}&tps={tps:g}&window={window}"
            wall = await run_workers(
                {"DATABASE_URL": dsn, "BROADCASTER_SMSC_URL": url}, 1, 60 + 3 * parts / contract
            )
            smsc = mock.stats()
        timeline = await delivery_timeline(dsn, broadcast_id)
    statuses: dict[str, int] = smsc["statuses"]
    throttles = sum(statuses.get(s, 0) for s in THROTTLE_STATUSES)
    achieved = float(smsc["parts_per_s"] or 0.0)
    per_bind = [float(b["parts_per_s"] or 0.0) for b in smsc["binds"] if b["parts"]]
    total = [
        [t, round(sum(s[i][1] for s in timeline["series"].values()), 1)]
        for i, (t, _) in enumerate(next(iter(timeline["series"].values()), []))
    ]
    result: dict[str, Any] = {
        "binds": binds,
        "tps_per_bind": tps,
        "contracted_parts_per_s": contract,
        "recipients": recipients,
        "parts": parts,
        "accepted_parts": smsc["parts"],
        "achieved_parts_per_s": round(achieved, 1),
        "achieved_ratio": round(achieved / contract, 4),
        "min_bind_ratio": round(min(per_bind) / tps, 4) if per_bind else 0.0,
        "bind_parts_per_s": per_bind,
        "throttles": throttles,
        "statuses": statuses,
        "seconds": timeline["seconds"],
        "ideal_seconds": round(parts / contract, 3),
        "worker_wall_s": round(wall, 2),
        "duplicate_rows": timeline["duplicate_rows"],
        "series": total,
    }
    print(
        f"SMSC side: {smsc['parts']:,} parts accepted at {achieved:,.1f} parts/s = "
        f"{achieved / contract:.2%} of the contract (per bind {per_bind}); throttles "
        f"{throttles}; database: first submit to last answer {timeline['seconds']:.2f} s "
        f"(ideal {parts / contract:.2f} s)"
    )
    return result


if __name__ == "__main__":
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--binds", type=int, default=4)
    parser.add_argument("--tps", type=float, default=500.0, help="contracted parts/s per bind")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the run, about")
    parser.add_argument("--window", type=int, default=64)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.binds, args.tps, args.seconds, args.window))))
