"""Crash test: a worker killed with SIGKILL mid-broadcast, three times, restarted as an operator
would, and left to finish.

    python -m loadtest.crash --recipients 200000

The mock SMSC runs in this process (recording every text); `broadcaster worker --until-idle` runs
in its own process and is killed at random points. After each kill the operator's move is
repeated, nothing more: start `broadcaster worker --until-idle` again. Nothing touches the
database's leases: the restarted worker waits for the dead one's leases to expire
(`--lease-seconds`, the same for every worker, as an operator would configure them) and takes
its chunks up; the last one runs until the broadcast is done. At the end: every recipient has
exactly one accepted outcome in the database, the mock's record shows who is missing (must be
nobody) and who got the message twice. A duplicate can only come from a part the SMSC accepted
but whose outcome was not yet written when the worker died; `duplicate_bound` is the number of
such parts, measured at each kill (SMSC-accepted parts minus outcomes recorded). Last line: one
JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time

import asyncpg

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.settings import Settings
from loadtest.common import description, quiet_logs, scratch_database


async def _worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    """What the operator types after a crash: `broadcaster worker --until-idle`."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "broadcaster",
        "worker",
        "--until-idle",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def main(recipients: int, kills: int, seed: int, lease: float) -> dict[str, object]:
    rng = random.Random(seed)
    mock = MockSmsc(MockConfig(seed=seed))
    port = await mock.start()
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        await seed_synthetic(conn, recipients)
        settings = Settings(database_url=dsn)
        request = BroadcastRequest(
            areas=["region:" + r for r in await _regions(conn)], template="outage", variables={}
        )
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
        print(f"broadcast {broadcast_id}: {plan.recipients:,} recipients, {plan.parts:,} parts")
        env = {
            "DATABASE_URL": dsn,
            "BROADCASTER_SMSC_URL": f"smpp://crash:pw@127.0.0.1:{port}?binds=2&window=256",
            "BROADCASTER_LOG_LEVEL": "warning",
            "BROADCASTER_LEASE_SECONDS": f"{lease:g}",
        }
        bound = 0
        recorded = 0
        proc = await _worker(env)
        for kill in range(kills):
            start, recorded_before = mock.submits, recorded
            target = start + rng.randint(plan.parts // (kills * 4), plan.parts // (kills + 1))
            deadline = time.monotonic() + 60 + lease
            while mock.submits < target and proc.returncode is None:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.005)
            if proc.returncode is None:
                proc.send_signal(signal.SIGKILL)
            await proc.wait()
            recorded = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE broadcast_id = $1", broadcast_id
            )
            # What this worker had the SMSC accept and did not record before it died.
            unrecorded = (mock.submits - start) - (recorded - recorded_before)
            bound += unrecorded
            print(
                f"kill {kill + 1}: this worker had {mock.submits - start:,} parts accepted by "
                f"the SMSC and recorded {recorded - recorded_before:,} outcomes -> up to "
                f"{unrecorded:,} possible duplicates"
            )
            # The operator starts it again; it waits for the dead one's leases to expire.
            proc = await _worker(env)
        restarted = time.monotonic()
        await asyncio.wait_for(proc.wait(), 600)
        last_run_s = time.monotonic() - restarted
        state = await conn.fetchval("SELECT state FROM broadcasts WHERE id = $1", broadcast_id)
        per_recipient = await conn.fetch(
            "SELECT msisdn, count(*) FILTER (WHERE status = 0) AS ok, max(parts) AS parts "
            "FROM deliveries WHERE broadcast_id = $1 GROUP BY msisdn",
            broadcast_id,
        )
        expected = {
            str(r["msisdn"])
            for r in await conn.fetch(
                "SELECT msisdn FROM subscribers WHERE departement = ANY($1)",
                sorted(plan.target.departements),
            )
        }
        await conn.close()
    received = mock.record.messages
    await mock.stop()
    exactly_once_in_db = sum(1 for r in per_recipient if r["ok"] == r["parts"])
    missing = len(expected - set(received))
    duplicates = sum(len(texts) - 1 for texts in received.values())
    print(
        f"final state {state}: {exactly_once_in_db:,}/{len(expected):,} recipients with exactly "
        f"one accepted outcome; mock: {missing} missing, {duplicates} duplicates "
        f"(bound {bound}); the last worker, started right after kill {kills}, exited "
        f"{proc.returncode} after {last_run_s:.1f} s (lease {lease:g} s)"
    )
    return {
        "recipients": len(expected),
        "state": state,
        "exactly_once_in_db": exactly_once_in_db,
        "missing": missing,
        "duplicates": duplicates,
        "duplicate_bound": bound,
        "kills": kills,
        "lease_seconds": lease,
        "last_worker_exit": proc.returncode,
        "last_worker_s": round(last_run_s, 1),
        "sql_on_leases": False,
        "completed": int(state == "completed"),
        "duplicates_over_bound": max(0, duplicates - bound),
    }


async def _regions(conn: asyncpg.Connection) -> list[str]:
    return [r["code"] for r in await conn.fetch("SELECT code FROM regions ORDER BY code")]


if __name__ == "__main__":
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--lease-seconds", type=float, default=10.0, help="every worker's BROADCASTER_LEASE_SECONDS"
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.recipients, args.kills, args.seed, args.lease_seconds))))
