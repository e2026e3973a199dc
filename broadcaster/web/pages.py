"""The console's listings: what awaits the visitor's approval and recent broadcasts (the home
page), drills with their reports, and the audit log — each read through the command the API's
operation calls, with its permission."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from broadcaster.commands.broadcasts import approval_queue, list_recent
from broadcaster.commands.tokens import audit_log as read_audit_log
from broadcaster.web import drill_reports
from broadcaster.web.auth import require_user
from broadcaster.web.compose import ctx_of, names_of_departements
from broadcaster.web.render import render

LIST_LIMIT: Final = 50
AUDIT_PAGE: Final = 100
MAX_ID: Final = 2**63 - 1


async def home(request: web.Request) -> web.StreamResponse:
    """Recent broadcasts, and first what awaits the visitor's approval (not their own)."""
    caller = require_user(request)
    broadcasts = await list_recent(ctx_of(request), caller, LIST_LIMIT)
    queue = await approval_queue(ctx_of(request), caller)
    return render(
        request,
        "home.html",
        kind=None,
        broadcasts=broadcasts,
        queue=queue,
        names=await names_of_departements(request),
    )


async def queue_count(request: web.Request) -> web.StreamResponse:
    """How many broadcasts await the visitor's approval (the badge polls it)."""
    caller = require_user(request)
    queue = await approval_queue(ctx_of(request), caller)
    response = web.json_response({"count": len(queue), "ids": [int(b["id"]) for b in queue]})
    response.headers["Cache-Control"] = "no-store"
    return response


async def drills(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    recent = await list_recent(ctx_of(request), caller, 500)
    listed = [b for b in recent if b["kind"] == "drill"][:LIST_LIMIT]
    return render(
        request,
        "drills.html",
        kind="drill",
        broadcasts=listed,
        names=await names_of_departements(request),
        runs=await drill_reports.runs_by_broadcast(request, caller),
    )


async def audit_log(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    raw = request.query.get("before", "")
    before = int(raw) if raw.isdigit() and 1 <= int(raw or 0) <= MAX_ID else None
    entries = await read_audit_log(ctx_of(request), caller, AUDIT_PAGE, before)
    older = entries[-1]["id"] if len(entries) == AUDIT_PAGE else None
    return render(request, "audit.html", kind=None, entries=entries, older=older)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", home, name="home")
    router.add_get("/queue.json", queue_count, name="queue_count")
    router.add_get("/drills", drills, name="drills")
    router.add_get("/audit", audit_log, name="audit")
