"""Shared pieces of the load tests: a scratch database, the mock SMSC in its own process.

Every load test is bounded in count and time, talks only to 127.0.0.1, and cleans up after
itself (the scratch database is dropped, the mock process is stopped).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.importer import seed_synthetic
from broadcaster.logs import configure_logging
from broadcaster.settings import PROJECT_ROOT, Settings
from broadcaster.store.areas import accept_placeholders_for_rehearsal
from broadcaster.store.database import database, ensure_migrated

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


async def _answers(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=1.0)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """A migrated database of our own on DATABASE_URL's server, the local one, or embedded;
    a rehearsal one, whose reference placeholder numbers live sends may carry."""
    server = os.environ.get("DATABASE_URL") or LOCAL_SERVER
    if not await _answers(server):
        async with database(Settings()) as embedded:
            await _migrate_for_rehearsal(embedded)
            yield embedded
        return
    name = f"bc_loadtest_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    try:
        await _migrate_for_rehearsal(dsn)
        yield dsn
    finally:
        admin = await asyncpg.connect(server)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _migrate_for_rehearsal(dsn: str) -> None:
    await ensure_migrated(dsn, PROJECT_ROOT / "sql")
    conn = await asyncpg.connect(dsn)
    try:
        await accept_placeholders_for_rehearsal(conn)
    finally:
        await conn.close()


class MockProcess:
    """`broadcaster mock-smsc` running in a process of its own (see `mock_smsc`)."""

    def __init__(self, proc: subprocess.Popen[str], port: int, stats_port: int | None) -> None:
        self.proc = proc
        self.port = port
        self.stats_port = stats_port
        self.final: dict[str, Any] | None = None
        """The statistics it printed when stopped with SIGTERM (None if killed)."""

    def stats(self) -> dict[str, Any]:
        """Its live statistics (GET /stats); needs `stats=True`."""
        if self.stats_port is None:
            raise RuntimeError("the mock was started without a stats port")
        url = f"http://127.0.0.1:{self.stats_port}/stats"
        with urllib.request.urlopen(url, timeout=10) as resp:
            stats: dict[str, Any] = json.loads(resp.read())
        return stats

    def kill(self) -> None:
        """SIGKILL: an SMSC that goes down without a word (no unbind, no statistics)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM (unbinds every client), then keep the statistics it prints last."""
        proc = self.proc
        if proc.poll() is None:
            proc.terminate()
            try:
                out, _ = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            lines = out.strip().splitlines()
            if lines:
                try:
                    self.final = json.loads(lines[-1])
                except json.JSONDecodeError:
                    self.final = None
        if proc.stdout is not None:
            proc.stdout.close()


@contextmanager
def mock_smsc(*args: str, stats: bool = False) -> Iterator[MockProcess]:
    """`broadcaster mock-smsc` in its own process on a free port, stopped on exit.

    `args` are its flags (`--no-record`, `--tps 500`...); `stats=True` also serves GET /stats.
    """
    command = [sys.executable, "-m", "broadcaster", "mock-smsc", "--port", "0", *args]
    if stats:
        command += ["--stats-port", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the mock SMSC did not start: {' '.join(command)}")
        event = json.loads(line)
        mock = MockProcess(proc, int(event["port"]), event.get("stats_port"))
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    try:
        yield mock
    finally:
        mock.stop()


@contextmanager
def mock_smsc_process(*args: str) -> Iterator[int]:
    """`broadcaster mock-smsc` in its own process on a free port; yields the port."""
    with mock_smsc(*args) as mock:
        yield mock.port


def broadcaster_cli(
    *args: str, env: dict[str, str], timeout: float = 600, prefix: Sequence[str] = ()
) -> tuple[dict[str, Any], float]:
    """Run the CLI with --json; return its last JSON line and the wall time.

    `prefix` goes between the interpreter and `-m broadcaster` (e.g. `-m pyinstrument ...`).
    """
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *prefix, "-m", "broadcaster", "--json", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
        check=False,
    )
    elapsed = time.monotonic() - started
    if not proc.stdout.strip():
        raise RuntimeError(f"broadcaster {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), elapsed


def live_send(
    *send_args: str, env: dict[str, str], prefix: Sequence[str] = ()
) -> tuple[dict[str, Any], float]:
    """`broadcaster send ... --yes` as a script sends live: preview first, then say how many
    recipients it expects (`--expect-recipients`, refused if the plan differs)."""
    target = [a for a in send_args if a != "--yes"]
    preview, _ = broadcaster_cli("preview", *target, env=env)
    expected = str(preview["recipients"])
    return broadcaster_cli(
        "send", *target, "--yes", "--expect-recipients", expected, env=env, prefix=prefix
    )


async def departements_for(dsn: str, at_least: int) -> list[str]:
    """Smallest prefix of départements (by code) holding at least `at_least` subscribers."""
    conn = await asyncpg.connect(dsn)
    rows = await conn.fetch(
        "SELECT departement, count(*) AS n FROM subscribers GROUP BY 1 ORDER BY 1"
    )
    await conn.close()
    chosen, total = [], 0
    for r in rows:
        chosen.append(r["departement"])
        total += r["n"]
        if total >= at_least:
            break
    return chosen


def description(doc: str | None) -> str:
    """A script's `--help` description: its docstring's first paragraph, on one line (its first
    line alone stopped mid-sentence)."""
    return " ".join((doc or "").split("\n\n", 1)[0].split())


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def quiet_logs() -> None:
    """Structured logs of this process to stderr, warnings and above (stdout is for figures)."""
    configure_logging(level=os.environ.get("BROADCASTER_LOG_LEVEL", "warning"))


async def delivery_timeline(dsn: str, broadcast_id: int, bucket: float = 1.0) -> dict[str, Any]:
    """What the database recorded for one broadcast, on a clock starting at its first submit.

    `first_submit` / `last_answer` are epoch seconds; `by_smsc` the accepted parts per SMSC;
    `series` maps each SMSC to `[t, accepted parts/s]` per `bucket` seconds (t: bucket start,
    seconds after the first submit); `duplicate_rows` counts outcomes beyond one per part.
    """
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT extract(epoch FROM min(submitted_at))::float8 AS first_submit, "
            "extract(epoch FROM max(answered_at))::float8 AS last_answer, "
            "count(*) FILTER (WHERE status = 0) AS accepted_rows, "
            "count(*) AS rows FROM deliveries WHERE broadcast_id = $1",
            broadcast_id,
        )
        assert row is not None
        first = row["first_submit"] or 0.0
        parts = await conn.fetchval(
            "SELECT count(*) FROM (SELECT DISTINCT msisdn, part FROM deliveries "
            "WHERE broadcast_id = $1 AND status = 0) t",
            broadcast_id,
        )
        per_bucket = await conn.fetch(
            "SELECT smsc, floor((extract(epoch FROM answered_at) - $2) / $3)::int AS b, "
            "count(*) AS n FROM deliveries WHERE broadcast_id = $1 AND status = 0 "
            "GROUP BY 1, 2 ORDER BY 1, 2",
            broadcast_id,
            first,
            bucket,
        )
    finally:
        await conn.close()
    last = row["last_answer"] or first
    series: dict[str, list[list[float]]] = {}
    by_smsc: dict[str, int] = {}
    last_bucket = max((r["b"] for r in per_bucket), default=-1)
    for r in per_bucket:
        by_smsc[r["smsc"]] = by_smsc.get(r["smsc"], 0) + r["n"]
    for smsc in sorted(by_smsc):
        counts = {r["b"]: r["n"] for r in per_bucket if r["smsc"] == smsc}
        points = []
        for b in range(last_bucket + 1):
            width = min(bucket, last - first - b * bucket)  # the last bucket is partial
            if width >= bucket / 4:
                points.append([round(b * bucket, 3), round(counts.get(b, 0) / width, 1)])
        series[smsc] = points
    return {
        "first_submit": first,
        "last_answer": last,
        "seconds": round(last - first, 3),
        "accepted_parts": parts,
        "accepted_rows": row["accepted_rows"],
        "duplicate_rows": row["accepted_rows"] - parts,
        "rows": row["rows"],
        "by_smsc": by_smsc,
        "series": series,
    }


async def seed_and_create_outage(dsn: str, parts: int) -> tuple[int, int, int]:
    """`parts` synthetic subscribers, then `create_outage_broadcast(dsn, parts)` over them."""
    conn = await asyncpg.connect(dsn)
    try:
        await seed_synthetic(conn, parts)
    finally:
        await conn.close()
    return await create_outage_broadcast(dsn, parts)


async def create_outage_broadcast(dsn: str, parts: int | None = None) -> tuple[int, int, int]:
    """An approved `outage` broadcast to the smallest prefix of départements (by code) whose
    plan holds at least `parts` parts (None: every département); returns (id, recipients,
    parts)."""
    conn = await asyncpg.connect(dsn)
    try:
        settings = Settings(database_url=dsn)
        everywhere = [f"dep:{d}" for d in await departements_for(dsn, 10**12)]
        request = BroadcastRequest(areas=everywhere, template="outage", variables={})
        plan = await make_plan(conn, settings, request)
        if parts is not None:
            per_dep: dict[str, int] = {}
            for group in plan.groups:
                per_dep[group.departement] = per_dep.get(group.departement, 0) + group.parts
            chosen, total = [], 0
            for dep in sorted(per_dep):
                chosen.append(f"dep:{dep}")
                total += per_dep[dep]
                if total >= parts:
                    break
            request = BroadcastRequest(areas=chosen, template="outage", variables={})
            plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    finally:
        await conn.close()
    return broadcast_id, plan.recipients, plan.parts


async def run_workers(env: dict[str, str], count: int, timeout: float) -> float:
    """`broadcaster worker --until-idle` in `count` processes of their own, until every one
    has returned; returns the wall time. Their stderr goes to a temporary file, shown if one
    fails; on timeout they are killed and TimeoutError raised."""
    with tempfile.TemporaryFile("w+") as errors:
        started = time.monotonic()
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "broadcaster",
                "worker",
                "--until-idle",
                env={**os.environ, "BROADCASTER_LOG_LEVEL": "warning", **env},
                stdout=asyncio.subprocess.DEVNULL,
                stderr=errors,
            )
            for _ in range(count)
        ]
        try:
            codes = await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout)
        except TimeoutError:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
            raise
        elapsed = time.monotonic() - started
        if any(codes):
            errors.seek(0)
            raise RuntimeError(f"a worker exited with {codes}:\n{errors.read()[-3000:]}")
    return elapsed
