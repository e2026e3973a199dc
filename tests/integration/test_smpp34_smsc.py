"""Against an SMSC we did not write: the `smpp34` server (Rust SMPP core), run as a process.

What it saw (its log: one line per part received, kills included) against what broadcaster
reports: every part sent once, receipts in hex or in decimal matched to the right handset, and
after a kill -9 and a restart that reuses message ids, no receipt counted twice or claimed by
the wrong broadcast. Each test prints a `WIRE ...` line (the table of the closing note).
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine.worker import Worker
from broadcaster.importer import seed_synthetic
from broadcaster.settings import Settings, SmscConfig
from broadcaster.store import broadcasts as store_broadcasts
from broadcaster.store.database import create_pool

SCRIPT = Path(__file__).resolve().parents[1] / "smpp34_smsc.py"


class Smpp34:
    """The smpp34 SMSC process: start, kill -9, start again on the same port."""

    def __init__(self, log: Path, ids: str, *extra: str) -> None:
        self.extra = extra
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = log
        self.ids = ids
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, first_id: int = 0x1000) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--port",
            str(self.port),
            "--log",
            str(self.log),
            "--ids",
            self.ids,
            "--first-id",
            str(first_id),
            *self.extra,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 30)
        assert line.strip() == b"ready", line

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGKILL)
            await self.process.wait()

    def seen(self) -> list[dict[str, str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def smsc(self, **overrides: Any) -> SmscConfig:
        values: dict[str, Any] = {
            "name": "smpp34",
            "port": self.port,
            "binds": 1,
            "window": 16,
            "response_timeout_s": 2.0,
        }
        values.update(overrides)
        return SmscConfig(**values)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


@pytest.fixture
async def smpp34_smsc(tmp_path: Path) -> AsyncIterator[Callable[..., Smpp34]]:
    started: list[Smpp34] = []

    def make(ids: str, *extra: str) -> Smpp34:
        server = Smpp34(tmp_path / f"seen-{len(started)}.jsonl", ids, *extra)
        started.append(server)
        return server

    yield make
    for server in started:
        await server.kill()


async def _plan(db: asyncpg.Pool, db_dsn: str, areas: tuple[str, ...]) -> tuple[int, int]:
    request = BroadcastRequest(areas=areas, template="outage", variables={})
    settings = Settings(database_url=db_dsn, chunk_size=200)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    return broadcast_id, plan.parts


async def _outcome(db: asyncpg.Pool, broadcast_id: int) -> tuple[dict[str, Any], int]:
    """(progress, receipts matched to the right handset) of one broadcast."""
    async with db.acquire() as conn:
        status = await store_broadcasts.progress(conn, broadcast_id)
        right = await conn.fetchval(
            "SELECT count(*) FROM receipts WHERE broadcast_id = $1 AND match = 'matched'"
            " AND msisdn::text = reported_msisdn",
            broadcast_id,
        )
    return status, int(right)


def _twice(seen: list[dict[str, str]]) -> int:
    """Copies beyond one of the same part (same octets) to the same handset."""
    return sum(n - 1 for n in Counter((s["to"], s["part"]) for s in seen).values())


def _delivered(status: dict[str, Any]) -> int:
    return int(status["receipts"].get("DELIVRD", {}).get("count", 0))


@pytest.mark.parametrize("ids", ["hex", "decimal"])
async def test_smpp34_receipts_in_hex_or_decimal_land_on_the_right_people(
    db: asyncpg.Pool, db_dsn: str, smpp34_smsc: Callable[..., Smpp34], ids: str
) -> None:
    async with db.acquire() as conn:
        await seed_synthetic(conn, 4_000, seed=3)
    server = smpp34_smsc(ids)
    await server.start()
    broadcast_id, parts = await _plan(db, db_dsn, ("dep:75", "dep:13"))
    runs = await Worker(db, [server.smsc()]).run(until_idle=True)
    assert [r.state for r in runs] == ["completed"]
    status, right = await _outcome(db, broadcast_id)
    async with db.acquire() as conn:
        recorded = await conn.fetchval("SELECT count(*) FROM receipts")
    seen = server.seen()
    print(
        f"WIRE smpp34 {ids} receipt ids: parts={parts} receipts_recorded={recorded}"
        f" matched_right={right} duplicates_seen={_twice(seen)}"
        f" duplicates_reported={status['possibly_sent_twice']}"
    )
    assert len(seen) == parts and _twice(seen) == 0 == status["possibly_sent_twice"]
    assert recorded == parts == right == _delivered(status)


async def test_smpp34_killed_mid_send_and_restarted_reusing_ids_reports_the_truth(
    db: asyncpg.Pool, db_dsn: str, smpp34_smsc: Callable[..., Smpp34]
) -> None:
    async with db.acquire() as conn:
        await seed_synthetic(conn, 8_000, seed=3)
    server = smpp34_smsc("decimal")
    await server.start()
    first, first_parts = await _plan(db, db_dsn, ("dep:75",))
    worker = Worker(db, [server.smsc()])
    running = asyncio.create_task(worker.run(until_idle=True))
    for _ in range(600):  # kill -9 once a third of it is through
        if len(server.seen()) >= first_parts // 3:
            break
        await asyncio.sleep(0.01)
    await server.kill()
    await asyncio.sleep(0.3)
    await server.start()  # the same first id: ids of the first life are given out again
    runs = await asyncio.wait_for(running, 120)
    assert [r.state for r in runs] == ["completed"]
    second, second_parts = await _plan(db, db_dsn, ("dep:13",))
    runs = await Worker(db, [server.smsc()]).run(until_idle=True)
    assert [r.state for r in runs] == ["completed"]
    seen = server.seen()
    reused = sum(n - 1 for n in Counter(s["id"] for s in seen).values())
    for broadcast_id, parts, name in (
        (first, first_parts, "killed"),
        (second, second_parts, "after"),
    ):
        status, right = await _outcome(db, broadcast_id)
        async with db.acquire() as conn:
            recorded = await conn.fetchval(
                "SELECT count(*) FROM receipts WHERE broadcast_id = $1", broadcast_id
            )
            rows = await conn.fetch(
                "SELECT DISTINCT msisdn FROM deliveries WHERE broadcast_id = $1", broadcast_id
            )
        destinations = {str(r["msisdn"]) for r in rows}
        mine = [s for s in seen if s["to"] in destinations]
        assert len({s["to"] for s in mine}) == len(destinations)
        print(
            f"WIRE smpp34 kill -9 + restart ({name}): parts={parts} receipts_recorded={recorded}"
            f" matched_right={right} duplicates_seen={_twice(mine)}"
            f" duplicates_reported={status['possibly_sent_twice']} ids_reused={reused}"
        )
        # What the SMSC saw twice, broadcaster reports (or more: it cannot know which of
        # the parts in flight at the kill got through).
        assert status["possibly_sent_twice"] >= _twice(mine)
        # No inflation: never more deliveries than parts, each on its own handset.
        assert _delivered(status) <= parts
        assert right == _delivered(status)
    assert reused > 0  # the restart did give out the same ids again


async def test_smpp34_unbinding_us_mid_send_makes_no_duplicate(
    db: asyncpg.Pool, db_dsn: str, smpp34_smsc: Callable[..., Smpp34]
) -> None:
    async with db.acquire() as conn:
        await seed_synthetic(conn, 4_000, seed=3)
    server = smpp34_smsc("hex", "--unbind-after", "60")
    await server.start()
    broadcast_id, parts = await _plan(db, db_dsn, ("dep:75", "dep:13"))
    runs = await Worker(db, [server.smsc()]).run(until_idle=True)
    assert [r.state for r in runs] == ["completed"]
    status, right = await _outcome(db, broadcast_id)
    seen = server.seen()
    print(
        f"WIRE smpp34 SMSC-initiated unbind: parts={parts} matched_right={right}"
        f" duplicates_seen={_twice(seen)} duplicates_reported={status['possibly_sent_twice']}"
    )
    assert {(s["to"], s["part"]) for s in seen} and len(seen) >= parts
    assert status["possibly_sent_twice"] >= _twice(seen)
    assert right == _delivered(status) <= parts
