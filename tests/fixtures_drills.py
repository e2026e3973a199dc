"""Drill fixtures (auto-loaded by conftest): a controlled clock, a small subscriber population
with a test group, and a real local HTTP server that records webhook POSTs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web

# dep:75 and dep:13: test-group subscribers (who drills reach) and public ones (never reached).
TEST_GROUP = {"75": 60, "13": 40}
PUBLIC = {"75": 30, "13": 20}


class FakeClock:
    """A clock the test moves: `sleep` advances it at once (yielding to the loop), `set` and
    `advance` jump. Nothing waits for real time."""

    def __init__(self, start: datetime) -> None:
        self.current = start.astimezone(UTC)

    def now(self) -> datetime:
        return self.current

    async def sleep(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
        await asyncio.sleep(0)

    def set(self, when: datetime) -> None:
        self.current = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self.current += delta


def subscriber_rows() -> list[tuple[int, str, str, str, bool]]:
    """(msisdn, département, commune, lang, test_group): a few hundred, fr and en speakers."""
    rows: list[tuple[int, str, str, str, bool]] = []
    commune = {"75": "75056", "13": "13055"}
    for n, dep in enumerate(("75", "13")):
        base = 33600000000 + n * 1_000_000
        for i in range(TEST_GROUP[dep]):
            rows.append((base + i, dep, commune[dep], "en" if i % 5 == 0 else "fr", True))
        for i in range(PUBLIC[dep]):
            rows.append((base + 500_000 + i, dep, commune[dep], "fr", False))
    return rows


async def seed_subscribers(conn: asyncpg.Connection[asyncpg.Record] | Any) -> None:
    await conn.executemany(
        "INSERT INTO subscribers (msisdn, departement, commune, lang, test_group) "
        "VALUES ($1, $2, $3, $4, $5)",
        subscriber_rows(),
    )


@dataclass
class WebhookSink:
    """A local aiohttp server that records what is POSTed to it."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200


@pytest.fixture
async def webhook_sink() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink(url="")

    async def receive(request: web.Request) -> web.Response:
        sink.received.append(await request.json())
        return web.json_response({"ok": True}, status=sink.status)

    app = web.Application()
    app.router.add_post("/alarms", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    sink.url = f"http://{host}:{port}/alarms"
    try:
        yield sink
    finally:
        await runner.cleanup()
