"""The console's listings: recent broadcasts (the home page), drills with their reports, and
the audit log — each read through the command the API's operation calls, with its permission."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from broadcaster.commands.broadcasts import list_recent
from broadcaster.commands.tokens import audit_log as read_audit_log
from broadcaster.web import drill_reports
from broadcaster.web.auth import require_user
from broadcaster.web.compose import ctx_of
from broadcaster.web.render import render

LIST_LIMIT: Final = 50
AUDIT_PAGE: Final = 100
MAX_ID: Final = 2**63 - 1


async def home(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    broadcasts = await list_recent(ctx_of(request), caller, LIST_LIMIT)
    return render(request, "home.html", kind=None, broadcasts=broadcasts)


async def drills(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    recent = await list_recent(ctx_of(request), caller, 500)
    listed = [b for b in recent if b["kind"] == "drill"][:LIST_LIMIT]
    return render(
        request,
        "drills.html",
        kind="drill",
        broadcasts=listed,
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
    router.add_get("/drills", drills, name="drills")
    router.add_get("/audit", audit_log, name="audit")
