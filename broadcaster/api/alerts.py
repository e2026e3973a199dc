"""`POST /v1/cap`: CAP 1.2 alerts from the national alerting platform, parsed
(`broadcaster.cap`), then ingested (`commands.cap`: Alert, Update, Cancel, replays)."""

from __future__ import annotations

from aiohttp import web

from broadcaster import cap
from broadcaster.api.context import Call
from broadcaster.commands.cap import ingest
from broadcaster.http.context import reply


async def post(call: Call) -> web.StreamResponse:
    outcome = await ingest(call.ctx, call.caller, cap.parse(call.raw))
    if outcome.created is None:
        return reply(outcome.body)
    return reply(
        outcome.body,
        status=201,
        headers={"Location": f"/v1/broadcasts/{outcome.created}"},
    )
