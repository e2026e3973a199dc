"""Drill reports in the console, from the drills package (`broadcaster.drills`).

The report page is the drills package's own self-contained HTML (`render_report_html`: inline
CSS, an inline SVG chart, no script), served under a policy of its own — inline styles, no
script at all, framable only by the console — and shown inside the console's page in a
sandboxed frame.
"""

from __future__ import annotations

from typing import Any, Final

from aiohttp import web

from broadcaster.commands import drills
from broadcaster.domain.caller import Caller
from broadcaster.drills.html import render_report_html
from broadcaster.web.auth import require_user
from broadcaster.web.compose import ctx_of
from broadcaster.web.render import render

REPORT_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)


async def runs_by_broadcast(request: web.Request, caller: Caller) -> dict[int, dict[str, Any]]:
    """Recorded drill runs (schedule, verdict) by broadcast id."""
    rows = await drills.runs(ctx_of(request), caller, 100)
    return {int(r["broadcast_id"]): r for r in rows if r.get("broadcast_id") is not None}


async def _report_html(request: web.Request) -> str:
    """The drills package's page for this broadcast (read permission checked like the API's)."""
    caller = require_user(request)
    report = await drills.report(ctx_of(request), caller, int(request.match_info["broadcast_id"]))
    return render_report_html(report)


async def report_page(request: web.Request) -> web.StreamResponse:
    """The console page around the report (banner, navigation, a frame with the report);
    a refusal (not a drill, no such broadcast) shows here rather than inside the frame."""
    await _report_html(request)
    return render(
        request,
        "drill_report.html",
        kind="drill",
        broadcast_id=int(request.match_info["broadcast_id"]),
    )


async def report_raw(request: web.Request) -> web.StreamResponse:
    page = await _report_html(request)
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Content-Security-Policy": REPORT_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    one = "/broadcasts/{broadcast_id:[0-9]{1,18}}"
    router.add_get(f"{one}/drill-report", report_page, name="drill_report")
    router.add_get(f"{one}/drill-report.html", report_raw, name="drill_report_raw")
