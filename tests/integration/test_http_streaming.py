"""A CSV streamed over real HTTP (`http.streaming.stream_csv`, the list of recipients not
reached): a client that goes away mid-way ends the stream, its lines are closed at once (their
database connection given back), and it is logged as abandoned, never as a database outage."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator

import structlog
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer

from broadcaster.commands import reports
from broadcaster.commands.context import Context
from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.http.streaming import stream_csv
from broadcaster.importer import seed_synthetic
from broadcaster.settings import Settings
from broadcaster.store.database import create_pool

LINES = 5_000_000
"""Far more than the socket buffers hold (about 150 MB): the client leaves mid-way."""


async def _read_a_little_and_leave(server: BaseTestServer, octets: int) -> tuple[bytes, bytes]:
    """GET /export, read its head and up to `octets` of its body, then drop the connection
    (a reset, as a client gone): (head, what was read)."""
    assert server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /export HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    first = await reader.read(octets)
    writer.transport.abort()
    return head, first


async def test_a_client_gone_mid_export_ends_it_quietly() -> None:
    closed = asyncio.Event()
    produced = 0

    async def lines() -> AsyncGenerator[str, None]:
        nonlocal produced
        try:
            yield "msisdn,departement,commune,language,why\n"
            for n in range(LINES):
                produced += 1
                yield f"+33{600000000 + n},75,75101,fr,not sent\n"
        finally:
            closed.set()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await stream_csv(request, lines(), "not-reached-1.csv")

    app = web.Application()
    app.router.add_get("/export", handler)
    with structlog.testing.capture_logs() as logs:
        async with TestServer(app, host="127.0.0.1") as server:
            head, first = await _read_a_little_and_leave(server, 65536)
            await asyncio.wait_for(closed.wait(), 30)
            await asyncio.sleep(0.05)  # the handler returns
    assert b"200 OK" in head and b'filename="not-reached-1.csv"' in head
    assert b"+33600000000,75,75101,fr,not sent" in first
    assert 0 < produced < LINES
    events = [entry["event"] for entry in logs]
    assert "csv_export_abandoned" in events
    assert not [e for e in events if "database" in e or "unexpected" in e], events


ADMIN = Caller(name="cell", role="admin", interface="api")
BIG = ["dep:75", "dep:13", "dep:59", "dep:69", "dep:92", "dep:93", "dep:33", "dep:31"]


async def test_an_export_abandoned_mid_way_is_audited_and_its_connection_given_back(
    db_dsn: str,
) -> None:
    """The list of a broadcast never sent, exported over HTTP from the database, the client
    gone after the first lines: the export is on record with how many numbers the list held,
    every pooled connection is back, and nothing is logged as a database outage."""
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await seed_synthetic(conn, 300_000, seed=7)
            settings = Settings(database_url=db_dsn)
            request = BroadcastRequest(areas=BIG, template="outage", variables={})
            plan = await make_plan(conn, settings, request)
            broadcast_id = await create_broadcast(conn, settings, request, plan)
        ctx = Context(db=pool, settings=settings)

        async def handler(request: web.Request) -> web.StreamResponse:
            lines = reports.not_reached_csv(ctx, ADMIN, broadcast_id)
            return await stream_csv(request, lines, f"not-reached-{broadcast_id}.csv")

        app = web.Application()
        app.router.add_get("/export", handler)
        with structlog.testing.capture_logs() as logs:
            async with TestServer(app, host="127.0.0.1") as server:
                _, first = await _read_a_little_and_leave(server, 4096)
                for _ in range(200):  # the handler ends, its connection is given back
                    if pool.get_idle_size() == pool.get_size():
                        break
                    await asyncio.sleep(0.05)
                idle, size = pool.get_idle_size(), pool.get_size()
        async with pool.acquire() as conn:
            exports = await conn.fetch(
                "SELECT actor, details FROM audit_log WHERE action = 'export_not_reached'"
            )
    finally:
        await pool.close()
    assert plan.recipients > 50_000
    assert b"\r\nmsisdn,departement,commune,language,why\n+33" in first  # (chunked)
    assert idle == size
    assert len(exports) == 1 and exports[0]["actor"] == "cell"
    assert json.loads(exports[0]["details"])["recipients"] == plan.recipients
    events = [entry["event"] for entry in logs]
    assert "csv_export_abandoned" in events
    assert not [e for e in events if "database" in e or "unexpected" in e], events
