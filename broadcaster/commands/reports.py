"""The after-action report of a broadcast (issue 22) and the list of who it did not reach: for
the CLI, the API and the console alike.

The report is read by anyone who may read reports; the list of recipients not reached holds
phone numbers, so exporting it is an operation of its own (`exportNotReached`, the roles that
approve broadcasts) and every export is audited with how many numbers left.
"""

from __future__ import annotations

import contextlib
import csv
import io
from collections.abc import AsyncGenerator
from typing import Any

from broadcaster.afteraction.build import Inputs, build, reason
from broadcaster.commands.access import authorize
from broadcaster.commands.context import Context
from broadcaster.domain.caller import Caller
from broadcaster.domain.localtime import zone_of_groups
from broadcaster.store import audit
from broadcaster.store import broadcasts as store
from broadcaster.store import reports as store_reports

CSV_HEADER = ("msisdn", "departement", "commune", "language", "why")


def _subject(broadcast_id: int) -> str:
    return f"broadcast:{broadcast_id}"


async def after_action(ctx: Context, caller: Caller, broadcast_id: int) -> dict[str, Any]:
    """The report as a JSON-ready dict: times in UTC, with `*_local` in the area's zone."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getReport", _subject(broadcast_id))
        status = await store.progress(conn, broadcast_id)
        record = dict(await store.get_broadcast(conn, broadcast_id))
        groups = [dict(r) for r in await store.groups(conn, broadcast_id)]
        trail = await audit.of_subject(conn, _subject(broadcast_id))
        rows = await store_reports.rows(conn, broadcast_id, int(record["parts"]))
        follow_ups = await store.follow_ups(conn, broadcast_id)
    zone = zone_of_groups(groups, ctx.settings.display_timezone)
    return build(Inputs(status, record, groups, trail, rows, zone, follow_ups))


async def not_reached_csv(
    ctx: Context, caller: Caller, broadcast_id: int
) -> AsyncGenerator[str, None]:
    """CSV lines (header first) of the broadcast's recipients to follow up by other means, and
    why: never sent (cancelled, expired), the last refusal, or accepted but reported not
    delivered by a receipt (`receipt UNDELIV`: the phone never got it). Audited before the first
    number leaves, with how many the list holds: an export cut short (a client gone, a file
    that could not be written) is on record too."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "exportNotReached", _subject(broadcast_id))
        await store.get_broadcast(conn, broadcast_id)  # NotFoundError: nothing is exported
        async with store_reports.not_reached(conn, broadcast_id) as listed:
            await audit.record(
                conn, caller, "export_not_reached", _subject(broadcast_id), recipients=listed.count
            )
            yield _line(CSV_HEADER)
            async with contextlib.aclosing(listed.rows()) as rows:  # closed first if cut short
                async for msisdn, dep, commune, lang, status, stat in rows:
                    yield _line((f"+{msisdn}", dep, commune or "", lang, _why(status, stat)))


def _why(status: int | None, stat: str | None) -> str:
    """Why a recipient is on the list: a refusal, a receipt, or never sent."""
    if status is not None:
        return reason(int(status))
    if stat is not None:
        return f"receipt {stat}: not delivered"
    return "not sent"


def _line(values: tuple[object, ...]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(values)
    return out.getvalue()
