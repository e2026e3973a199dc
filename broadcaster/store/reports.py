"""What the after-action report of a broadcast reads (sql/queries/reports.sql): areas, outcomes
per area and language, per SMSC, the timeline's marks, the delivery curve, and who was not
reached. Read after the fact: these scan the broadcast's outcomes (status reads roll-ups)."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

CURVE_STEPS = 60
MARKS = (0.5, 0.9, 0.99)


@dataclass
class ReportRows:
    """The rows an after-action report is built from."""

    areas: dict[str, str]
    by_area_lang: list[dict[str, Any]]
    failures: list[dict[str, Any]]
    delivered_by_smsc: dict[str, int]
    undelivered: list[dict[str, Any]]
    """Parts accepted then reported not delivered by their receipts, per area, language, SMSC
    and stat."""
    first_part: datetime | None
    last_event: datetime | None
    accepted_at: dict[float, datetime | None] = field(default_factory=dict)
    delivered_at: dict[float, datetime | None] = field(default_factory=dict)
    curve_start: datetime | None = None
    curve_step_s: float = 1.0
    accepted_curve: dict[int, int] = field(default_factory=dict)
    delivered_curve: dict[int, int] = field(default_factory=dict)


async def area_names(conn: Conn, broadcast_id: int) -> dict[str, str]:
    """{département: name} of the broadcast's groups."""
    return {
        r["departement"]: r["name"] for r in await conn.fetch(queries["report_areas"], broadcast_id)
    }


async def rows(conn: Conn, broadcast_id: int, planned_parts: int) -> ReportRows:
    areas = await area_names(conn, broadcast_id)
    by_area = [dict(r) for r in await conn.fetch(queries["report_by_area_lang"], broadcast_id)]
    failures = [
        dict(r) for r in await conn.fetch(queries["report_failures_by_area_lang"], broadcast_id)
    ]
    by_smsc = {
        r["smsc"]: int(r["n"])
        for r in await conn.fetch(queries["report_delivered_by_smsc"], broadcast_id)
    }
    undelivered = [dict(r) for r in await conn.fetch(queries["report_undelivered"], broadcast_id)]
    span = await conn.fetchrow(queries["report_first_part"], broadcast_id)
    assert span is not None
    last_receipt = await conn.fetchval(queries["report_last_receipt"], broadcast_id)
    ends = [t for t in (span["last_answer"], last_receipt) if t is not None]
    out = ReportRows(
        areas,
        by_area,
        failures,
        by_smsc,
        undelivered,
        span["first_part"],
        max(ends) if ends else None,
    )
    for mark in MARKS:
        nth = max(1, math.ceil(mark * planned_parts))
        out.accepted_at[mark] = await conn.fetchval(
            queries["report_nth_accepted"], broadcast_id, nth
        )
        out.delivered_at[mark] = await conn.fetchval(
            queries["report_nth_delivered"], broadcast_id, nth
        )
    if out.first_part is not None and out.last_event is not None:
        seconds = max((out.last_event - out.first_part).total_seconds(), 1.0)
        out.curve_start = out.first_part
        out.curve_step_s = seconds / CURVE_STEPS
        for name, target in (
            ("report_accepted_curve", out.accepted_curve),
            ("report_delivered_curve", out.delivered_curve),
        ):
            for r in await conn.fetch(
                queries[name], broadcast_id, out.first_part, out.curve_step_s
            ):
                target[int(r["step"])] = int(r["n"])
    return out


@asynccontextmanager
async def not_reached(conn: Conn, broadcast_id: int) -> AsyncIterator[NotReached]:
    """The people to follow up by other means: the broadcast's recipients without every part
    accepted (sent to, or in a chunk never sent), and those reached whose part a receipt says
    was not delivered (sql/queries/reports.sql says how each is read); taken once into a
    temporary table of this connection, dropped after: how many, and the rows in msisdn order,
    from one snapshot."""
    await conn.execute(queries["report_not_reached_table"])
    try:
        await conn.execute(queries["report_not_reached_clear"])
        done = await conn.execute(queries["report_not_reached"], broadcast_id)
        yield NotReached(conn, int(done.split()[-1]))  # "INSERT 0 n"
    finally:
        await conn.execute(queries["report_not_reached_drop"])


@dataclass
class NotReached:
    """A list of recipients not reached, taken (`not_reached`)."""

    conn: Conn
    count: int

    async def rows(self) -> AsyncGenerator[tuple[Any, ...], None]:
        """(msisdn, département, commune, language, last refusal status or None, the stat of
        a receipt saying a part accepted was not delivered or None), in msisdn order."""
        async with self.conn.transaction():
            async for r in self.conn.cursor(queries["report_not_reached_rows"]):
                yield (
                    r["msisdn"],
                    r["departement"],
                    r["commune"],
                    r["lang"],
                    r["last_status"],
                    r["receipt_stat"],
                )
