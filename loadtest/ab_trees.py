"""Two versions of the code, end to end with every part receipted, alternated on one database.

    git worktree add /tmp/before <commit>
    python -m loadtest.ab_trees --recipients 1000000 --rounds 2 /tmp/before .

On this shared 2-core machine the same code varies by ±15% from one run to the next, so a
change is judged against the code before it in the same invocation: each TREE (a checkout of
this repository) runs `broadcaster send` with its own package first on PYTHONPATH (from a
neutral working directory, so the current one does not shadow it), against a mock SMSC process
with `--receipts --receipt-delay-ms 200`, on one seeded scratch database, in ABBA order. Prints
per run msg/s and the CPU per message of send, the mock and PostgreSQL (with PostgreSQL's by
statement), then the medians per tree; the last line is one JSON object. Both trees must share
the schema (migrations) of the current one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from broadcaster.importer import seed_synthetic
from loadtest.common import (
    departements_for,
    description,
    live_send,
    mock_smsc,
    quiet_logs,
    scratch_database,
)
from loadtest.e2e_receipts import RECEIPTS, _cpu
from loadtest.mock_capacity import cpu_seconds

SAMPLE_S = 0.02


async def _by_statement(dsn: str, done: asyncio.Event, seconds: dict[str, float]) -> None:
    """CPU seconds of the database's backends by the statement each was running when sampled."""
    conn = await asyncpg.connect(dsn)
    last: dict[int, float] = {}
    try:
        while not done.is_set():
            rows = await conn.fetch(
                "SELECT pid, state, left(regexp_replace(query, '\\s+', ' ', 'g'), 40) AS q"
                " FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
            for row in rows:
                with contextlib.suppress(OSError):
                    now = cpu_seconds(int(row["pid"]))
                    key = str(row["q"]) if row["state"] != "idle" else "idle"
                    seconds[key] = seconds.get(key, 0.0) + now - last.get(row["pid"], now)
                    last[row["pid"]] = now
            await asyncio.sleep(SAMPLE_S)
    finally:
        await conn.close()


async def _run(dsn: str, deps: list[str], tree: Path, binds: int, window: int) -> dict[str, Any]:
    with mock_smsc("--no-record", *RECEIPTS) as mock:
        env = {
            "DATABASE_URL": dsn,
            "BROADCASTER_SMSC_URL": f"smpp://bc:pw@127.0.0.1:{mock.port}?binds={binds}&window={window}",
            "BROADCASTER_LOG_LEVEL": "warning",
            "PYTHONPATH": str(tree),
        }
        done = asyncio.Event()
        cpu: dict[int, float] = {}
        statements: dict[str, float] = {}
        samplers = [
            asyncio.create_task(_cpu(dsn, mock.proc.pid, done, cpu)),
            asyncio.create_task(_by_statement(dsn, done, statements)),
        ]
        areas = [f"--area=dep:{d}" for d in deps]
        report, _ = await asyncio.to_thread(live_send, *areas, "--template", "outage", env=env)
        done.set()
        await asyncio.gather(*samplers)
    per_msg = 1e6 / max(1, report["recipients"])
    mock_cpu = cpu.pop(mock.proc.pid, 0.0)
    top = sorted(statements.items(), key=lambda kv: -kv[1])[:4]
    return {
        "msgs_per_s": report["msgs_per_s"],
        "send_us": round(report["cpu_seconds"] * per_msg, 1),
        "mock_us": round(mock_cpu * per_msg, 1),
        "postgres_us": round(sum(cpu.values()) * per_msg, 1),
        "postgres_by_statement_us": {q: round(s * per_msg, 1) for q, s in top},
    }


async def main(
    recipients: int, rounds: int, trees: list[Path], binds: int, window: int
) -> dict[str, Any]:
    os.chdir(tempfile.gettempdir())  # `python -m` puts the working directory first on sys.path
    runs: dict[str, list[dict[str, Any]]] = {str(t): [] for t in trees}
    async with scratch_database() as dsn:
        conn = await asyncpg.connect(dsn)
        await seed_synthetic(conn, recipients)
        await conn.close()
        deps = await departements_for(dsn, recipients)
        for round_no in range(rounds):
            for tree in trees if round_no % 2 == 0 else trees[::-1]:
                got = await _run(dsn, deps, tree, binds, window)
                runs[str(tree)].append(got)
                print(
                    f"{tree}: {got['msgs_per_s']:,.0f} msg/s; CPU µs/msg send {got['send_us']}, "
                    f"mock {got['mock_us']}, PostgreSQL {got['postgres_us']} "
                    f"{got['postgres_by_statement_us']}",
                    flush=True,
                )
    medians = {
        name: {
            key: statistics.median(r[key] for r in rs)
            for key in ("msgs_per_s", "send_us", "mock_us", "postgres_us")
        }
        for name, rs in runs.items()
    }
    for name, m in medians.items():
        print(
            f"median {name}: {m['msgs_per_s']:,.0f} msg/s; send {m['send_us']}, mock "
            f"{m['mock_us']}, PostgreSQL {m['postgres_us']} µs/msg"
        )
    return {"recipients": recipients, "rounds": rounds, "medians": medians, "runs": runs}


if __name__ == "__main__":
    os.environ.setdefault("BROADCASTER_LOG_LEVEL", "warning")
    quiet_logs()
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("trees", nargs="+", type=lambda p: Path(p).resolve())
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=512)
    args = parser.parse_args()
    figures = asyncio.run(main(args.recipients, args.rounds, args.trees, args.binds, args.window))
    print(json.dumps(figures))
