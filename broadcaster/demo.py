"""`broadcaster demo`: a whole broadcast on embedded defaults, checked against what was received.

It seeds synthetic subscribers into a database of its own (a throwaway cluster, or a scratch
database on DATABASE_URL's server, dropped at the end: a demo never writes into real data),
starts the mock SMSC in-process unless SMSCs are configured, broadcasts the `outage` template to
a few départements, and then proves from the mock's record that every recipient received
exactly the text rendered for its département and language, once. Then geography: synthetic
cells and last-seen locations (visitors included), and a polygon over central Paris broadcast
to the numbers present in it, checked the same way against who was present.

Its database being a rehearsal of its own, the demo takes the reference fallback numbers
(fictional, 01 99 00 xx xx) as that database's values; a real database refuses to send them
live until a person sets each (`broadcaster areas set-var`).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog

from broadcaster.commands.context import Context
from broadcaster.commands.planning import plan_as_json
from broadcaster.commands.sending import execute
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc.server import MockSmsc
from broadcaster.planning import Plan
from broadcaster.settings import Settings, SmscConfig
from broadcaster.smpp.pool import contracted_capacity
from broadcaster.store import subscribers
from broadcaster.store.areas import accept_placeholders_for_rehearsal
from broadcaster.store.cells import synth_cells
from broadcaster.store.chunks import present_numbers
from broadcaster.store.database import (
    create_database,
    create_pool,
    database,
    drop_database,
    ensure_migrated,
)
from broadcaster.store.locations import ingest, synth_lines

log = structlog.get_logger(__name__)

DEMO_AREAS = ("dep:75", "dep:92", "dep:93", "dep:94", "dep:13", "dep:69", "dep:971")
DEMO_POLYGON = "polygon:48.84,2.30 48.84,2.38 48.88,2.38 48.88,2.30 48.84,2.30"
"""Central Paris, from the 7th to the 11th arrondissement (CAP order: lat,lon; closed)."""
DEMO_SITES = 3000
"""Synthetic cell sites (three sectors each) over the départements, by population."""
DEMO_CALLER = Caller(name="cli:demo", role="admin", interface="cli")


@asynccontextmanager
async def demo_database(settings: Settings) -> AsyncIterator[str]:
    """A database the demo owns: scratch on DATABASE_URL's server, else a throwaway cluster."""
    if not settings.database_url:
        async with database(settings) as dsn:
            yield dsn
        return
    name = f"broadcaster_demo_{secrets.token_hex(4)}"
    dsn = await create_database(settings.database_url, name)
    log.info("demo_database_created", database=name)
    try:
        yield dsn
    finally:
        await drop_database(settings.database_url, name)


async def run_demo(
    settings: Settings, subscribers: int, record_file: Path | None = None
) -> dict[str, Any]:
    mock: MockSmsc | None = None
    smscs = settings.smscs
    if not smscs:
        mock = MockSmsc()
        port = await mock.start()
        smscs = (SmscConfig(name="mock", port=port, binds=2, window=256),)
        log.info("mock_smsc_started", port=port, reason="no SMSC configured")
    try:
        async with demo_database(settings) as dsn:
            await ensure_migrated(dsn, settings.sql_dir)
            db = await create_pool(dsn, min_size=2, max_size=6)
            try:
                async with db.acquire() as conn:
                    await seed_synthetic(conn, subscribers)
                    await accept_placeholders_for_rehearsal(conn)
                request = BroadcastRequest(
                    areas=DEMO_AREAS,
                    template="outage",
                    variables={},
                    created_by=DEMO_CALLER.name,
                )
                ctx = Context(db=db, settings=settings)
                plan, report = await execute(ctx, DEMO_CALLER, smscs, request)
                if mock is not None:
                    async with db.acquire() as conn:
                        expected = await _expected_texts(conn, plan)
                    report.update(_verify(expected, mock.record.messages))
                    report["mock"] = mock.stats_json()
                    if record_file is not None:
                        _write_record(record_file, mock.record.messages)
                report["polygon"] = await _polygon_broadcast(ctx, smscs, mock)
            finally:
                await db.close()
    finally:
        if mock is not None:
            await mock.stop()
    report["groups"] = [
        {
            "departement": g.departement,
            "language": g.language,
            "text": g.text,
            "encoding": g.message.encoding,
            "parts_per_message": g.message.part_count,
            "recipients": g.recipients,
        }
        for g in plan.groups
    ]
    return report


async def _polygon_broadcast(
    ctx: Context, smscs: Sequence[SmscConfig], mock: MockSmsc | None
) -> dict[str, Any]:
    """Cells, locations (half the subscribers, seen within 12 h, and visitors), and a live
    broadcast to those present in DEMO_POLYGON; checked against the numbers it took."""
    async with ctx.db.acquire() as conn:
        cells = await synth_cells(conn, DEMO_SITES)
        lines: list[bytes] = []

        async def keep(data: bytes) -> None:
            lines.append(data)

        await synth_lines(conn, 0.5, 1000, 12.0, keep)
        ingested = await ingest(conn, b"".join(lines).decode().splitlines())
    before = {d: len(t) for d, t in mock.record.messages.items()} if mock is not None else {}
    request = BroadcastRequest(
        areas=(DEMO_POLYGON,),
        template="outage",
        variables={},
        created_by=DEMO_CALLER.name,
        allow_language_fallback=True,  # visitors read languages the template has no text in
    )
    plan, report = await execute(ctx, DEMO_CALLER, smscs, request)
    report["area"] = DEMO_POLYGON
    report["cells_synthesised"] = cells
    report["locations_ingested"] = ingested.written
    report["preview"] = plan_as_json(plan, contracted_capacity(smscs))
    if mock is not None:
        received = {d: t[before.get(d, 0) :] for d, t in mock.record.messages.items()}
        async with ctx.db.acquire() as conn:
            rows = await present_numbers(conn, report["broadcast_id"])
        expected = {
            str(r["msisdn"]): plan.groups[plan.language_of[(r["departement"], r["lang"])]].text
            for r in rows
        }
        report.update(_verify(expected, {d: t for d, t in received.items() if t}))
    return report


async def _expected_texts(conn: Any, plan: Plan) -> dict[str, str]:
    """Each targeted subscriber's destination -> the text of its (département, language) group."""
    rows = await subscribers.in_departements(conn, sorted(plan.target.departements))
    return {
        str(msisdn): plan.groups[plan.language_of[(dep, lang)]].text for msisdn, dep, lang in rows
    }


def _verify(expected: dict[str, str], received: dict[str, list[str]]) -> dict[str, int]:
    verified = mismatched = missing = 0
    for destination, text in expected.items():
        got = received.get(destination, [])
        if got == [text]:
            verified += 1
        elif not got:
            missing += 1
        else:
            mismatched += 1
    unexpected = sum(1 for d in received if d not in expected)
    return {
        "verified": verified,
        "mismatched": mismatched,
        "missing": missing,
        "unexpected": unexpected,
    }


def _write_record(path: Path, received: dict[str, list[str]]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for destination, texts in received.items():
            for text in texts:
                out.write(json.dumps({"destination": destination, "text": text}) + "\n")
