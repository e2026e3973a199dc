"""Database outage: PostgreSQL stopped (`pg_ctl stop -m immediate`) for 10 s in the middle of a
200k-recipient broadcast, then started again; nobody restarts anything.

    python -m loadtest.db_outage --recipients 200000 --outage 10

The cluster is a throwaway one of this script's own (the shared server is never stopped); the
mock SMSC runs in this process, recording every text; `broadcaster worker --until-idle` runs in
its own process. Once a quarter of the parts are accepted the cluster is stopped, kept down for
`--outage` seconds, and started again. The worker must ride it out: stop submitting while
outcomes cannot be recorded (what is in flight is answered and kept in memory), keep its binds,
and resume by itself. Judged by the mock's record: nobody missing, recipients sent twice no
more than the in-flight window (binds × window); measured: parts submitted after the stop, and
the time from the database's return to the next submit. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.settings import PROJECT_ROOT, Settings
from broadcaster.store.areas import accept_placeholders_for_rehearsal
from broadcaster.store.database import ensure_migrated
from broadcaster.store.embedded import EmbeddedPostgres
from loadtest.common import description, quiet_logs

BINDS = 2
WINDOW = 256


def _log(path: Path) -> BinaryIO:
    return path.open("wb")


def _log_path() -> Path:
    """The worker's log, kept after the run (its last lines say how it rode the outage)."""
    return Path(tempfile.mkdtemp(prefix="bc-db-outage-")) / "worker.log"


def _read(path: Path) -> str:
    return path.read_text(errors="replace")


async def _prepare(dsn: str, recipients: int) -> tuple[int, set[str], int]:
    """Schema, subscribers, one approved broadcast to all of them: (id, recipients, parts)."""
    await ensure_migrated(dsn, PROJECT_ROOT / "sql")
    conn = await asyncpg.connect(dsn)
    try:
        await accept_placeholders_for_rehearsal(conn)
        await seed_synthetic(conn, recipients)
        regions = [r["code"] for r in await conn.fetch("SELECT code FROM regions ORDER BY code")]
        settings = Settings(database_url=dsn)
        request = BroadcastRequest(
            areas=["region:" + r for r in regions], template="outage", variables={}
        )
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
        expected = {
            str(r["msisdn"])
            for r in await conn.fetch(
                "SELECT msisdn FROM subscribers WHERE departement = ANY($1)",
                sorted(plan.target.departements),
            )
        }
    finally:
        await conn.close()
    return broadcast_id, expected, plan.parts


async def _next_submit_after(mock: MockSmsc, since: float, timeout: float) -> float | None:
    """Seconds from `since` (monotonic) to the first part the mock receives after it (polled
    every 2 ms; the parts of before the outage were all answered seconds earlier)."""
    seen = mock.submits
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if mock.submits != seen:
            return max(0.0, mock.last_submit - since)
        await asyncio.sleep(0.002)
    return None


async def main(recipients: int, outage: float) -> dict[str, Any]:
    mock = MockSmsc(MockConfig(seed=3))
    port = await mock.start()
    # A commit must survive the stop, as on a real server: the throwaway default
    # (synchronous_commit=off) loses the last ~0.6 s of acknowledged commits on `-m immediate`,
    # and those outcomes would be sent again. (fsync=off is harmless: the OS does not crash.)
    cluster = EmbeddedPostgres(settings={"synchronous_commit": "on"})
    dsn = await asyncio.to_thread(cluster.start)
    try:
        broadcast_id, expected, parts = await _prepare(dsn, recipients)
        print(f"broadcast {broadcast_id}: {len(expected):,} recipients, {parts:,} parts")
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "BROADCASTER_SMSC_URL": (
                f"smpp://outage:pw@127.0.0.1:{port}?binds={BINDS}&window={WINDOW}"
            ),
            "BROADCASTER_LOG_LEVEL": "info",
        }
        worker_log = _log_path()
        with _log(worker_log) as out:
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                *("-m", "broadcaster", "worker", "--until-idle"),
                env=env,
                stdout=out,
                stderr=out,
            )
        started = time.monotonic()
        while mock.submits < parts // 4 and worker.returncode is None:
            await asyncio.sleep(0.002)
        at_stop = mock.submits
        stop_began = time.monotonic()
        await asyncio.to_thread(cluster.stop_server)
        stopped = time.monotonic()
        print(
            f"database stopped after {at_stop:,} parts ({stopped - stop_began:.2f} s to stop), "
            f"down for {outage:g} s"
        )
        await asyncio.sleep(outage)
        during = mock.submits - at_stop
        last_during = mock.last_submit - stop_began
        alive = worker.returncode is None
        await asyncio.to_thread(cluster.start_server)
        back = time.monotonic()
        resume = await _next_submit_after(mock, back, timeout=120)
        print(
            f"database back after {back - stopped:.1f} s; the worker "
            f"{'was alive' if alive else 'had DIED'}; {during:,} parts submitted after the "
            f"stop (the last {last_during:.2f} s after it); next submit "
            + (f"{resume * 1000:.0f} ms after the return" if resume is not None else "NEVER")
        )
        await asyncio.wait_for(worker.wait(), 900)
        seconds = time.monotonic() - started
        conn = await asyncpg.connect(dsn)
        try:
            state = await conn.fetchval("SELECT state FROM broadcasts WHERE id = $1", broadcast_id)
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(cluster.stop)
    received = mock.record.messages
    await mock.stop()
    missing = len(expected - set(received))
    duplicates = sum(len(texts) - 1 for texts in received.values())
    window = BINDS * WINDOW
    log_text = _read(worker_log)
    print(
        f"final state {state}: {missing} missing, {duplicates} duplicates (in-flight window "
        f"{window}); worker exit {worker.returncode}, {seconds:.1f} s in all; its log: "
        f"{worker_log}"
    )
    return {
        "recipients": len(expected),
        "parts": parts,
        "state": state,
        "completed": int(state == "completed"),
        "missing": missing,
        "duplicates": duplicates,
        "in_flight_window": window,
        "duplicates_over_window": max(0, duplicates - window),
        "outage_s": round(back - stopped, 2),
        "parts_at_stop": at_stop,
        "submitted_after_stop": during,
        "last_submit_after_stop_s": round(last_during, 3),
        "resume_after_return_ms": round(resume * 1000, 1) if resume is not None else None,
        "worker_survived": int(alive),
        "worker_exit": worker.returncode,
        "restarts_by_hand": 0,
        "database_lost_logged": int("database_lost" in log_text),
        "seconds": round(seconds, 1),
    }


if __name__ == "__main__":
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--recipients", type=int, default=200_000)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the database is down")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.recipients, args.outage))))
