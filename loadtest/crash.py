"""Crash test: a worker killed with SIGKILL mid-broadcast, three times, then run to the end.

    python loadtest/crash.py --recipients 200000

The mock SMSC runs in this process (recording every text); `broadcaster worker --until-idle` runs
in its own process and is killed at random points. At the end: every recipient has exactly one
accepted outcome in the database, the mock's record shows who is missing (must be nobody) and
who got the message twice. A duplicate can only come from a part the SMSC accepted but whose
outcome was not yet written when the worker died; `duplicate_bound` is the number of such parts,
measured at each kill (SMSC-accepted parts minus outcomes recorded). Last line: one JSON object.
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
from loadtest.common import quiet_logs, scratch_database


async def _worker(env: dict[str, str]) -> asyncio.subprocess.Process:
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


async def main(recipients: int, kills: int, seed: int) -> dict[str, object]:
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
        }
        bound = 0
        for kill in range(kills):
            proc = await _worker(env)
            start = mock.submits
            target = start + rng.randint(plan.parts // (kills * 4), plan.parts // (kills + 1))
            deadline = time.monotonic() + 60
            while mock.submits < target and proc.returncode is None:
                if time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.005)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            recorded = await conn.fetchval(
                "SELECT count(*) FROM deliveries WHERE broadcast_id = $1", broadcast_id
            )
            unrecorded = mock.submits - recorded
            bound += unrecorded
            print(
                f"kill {kill + 1}: after {mock.submits:,} parts accepted by the SMSC, "
                f"{recorded:,} outcomes recorded -> up to {unrecorded:,} possible duplicates"
            )
            await asyncio.sleep(0.1)
        # Let the leases of the killed workers expire, then finish.
        await conn.execute(
            "UPDATE broadcast_chunks SET lease_until = now() WHERE broadcast_id = $1 AND NOT done",
            broadcast_id,
        )
        proc = await _worker(env)
        await asyncio.wait_for(proc.wait(), 600)
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
        f"(bound {bound})"
    )
    return {
        "recipients": len(expected),
        "state": state,
        "exactly_once_in_db": exactly_once_in_db,
        "missing": missing,
        "duplicates": duplicates,
        "duplicate_bound": bound,
        "kills": kills,
    }


async def _regions(conn: asyncpg.Connection) -> list[str]:
    return [r["code"] for r in await conn.fetch("SELECT code FROM regions ORDER BY code")]


if __name__ == "__main__":
    quiet_logs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.recipients, args.kills, args.seed))))
