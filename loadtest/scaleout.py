"""Scale-out: one broadcast shared by 1, then 2 `broadcaster worker` processes.

    python loadtest/scaleout.py --recipients 500000 --tps 5000

The mock SMSC (its own process) enforces `--tps` parts/s per bind and each worker opens 2 binds,
so the SMSC side is TPS-limited and a second worker brings twice the binds. Prints the time for
each run, the speed-up, and (from the database) that nobody was sent twice. Last line: JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

import asyncpg

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.importer import seed_synthetic
from broadcaster.settings import Settings
from loadtest.common import (
    departements_for,
    description,
    mock_smsc_process,
    quiet_logs,
    scratch_database,
)


async def _run(dsn: str, port: int, tps: float, workers: int) -> tuple[float, int, int]:
    conn = await asyncpg.connect(dsn)
    settings = Settings(database_url=dsn)
    areas = [f"dep:{d}" for d in await departements_for(dsn, 10**9)]
    request = BroadcastRequest(areas=areas, template="outage", variables={})
    plan = await make_plan(conn, settings, request)
    broadcast_id = await create_broadcast(conn, settings, request, plan)
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "BROADCASTER_SMSC_URL": f"smpp://w:pw@127.0.0.1:{port}?binds=2&tps={tps}&window=64",
        "BROADCASTER_LOG_LEVEL": "warning",
    }
    started = time.monotonic()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-m", "broadcaster", "worker", "--until-idle", env=env
        )
        for _ in range(workers)
    ]
    await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), 900)
    elapsed = time.monotonic() - started
    twice = await conn.fetchval(
        "SELECT count(*) FROM (SELECT msisdn, part FROM deliveries WHERE broadcast_id = $1 "
        "GROUP BY 1, 2 HAVING count(*) > 1) t",
        broadcast_id,
    )
    done = await conn.fetchval(
        "SELECT count(DISTINCT msisdn) FROM deliveries WHERE broadcast_id = $1 AND status = 0",
        broadcast_id,
    )
    await conn.close()
    return elapsed, done, twice


async def main(recipients: int, tps: float) -> dict[str, object]:
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        await seed_synthetic(conn, recipients)
        await conn.close()
        with mock_smsc_process("--no-record", "--tps", str(tps)) as port:
            one, done1, twice1 = await _run(dsn, port, tps, 1)
            print(f"1 worker : {done1:,} recipients in {one:.1f} s, {twice1} parts sent twice")
            two, done2, twice2 = await _run(dsn, port, tps, 2)
            print(f"2 workers: {done2:,} recipients in {two:.1f} s, {twice2} parts sent twice")
    return {
        "recipients": recipients,
        "tps_per_bind": tps,
        "binds_per_worker": 2,
        "one_worker_s": round(one, 2),
        "two_workers_s": round(two, 2),
        "one_worker_msgs_per_s": round(done1 / one, 1),
        "two_workers_msgs_per_s": round(done2 / two, 1),
        "speedup": round(one / two, 2),
        "sent_twice": twice1 + twice2,
        "accepted_one": done1,
        "accepted_two": done2,
    }


if __name__ == "__main__":
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--recipients", type=int, default=500_000)
    parser.add_argument("--tps", type=float, default=5000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.recipients, args.tps))))
