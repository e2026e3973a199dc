"""Drill reports in the console, from the drills module (`broadcaster.drills`) when installed.

The report page is the drills module's own self-contained HTML (`render_report_html`: inline
CSS, an inline SVG chart, no script), served under a policy of its own — inline styles, no
script at all, framable only by the console — and shown inside the console's page in a
sandboxed frame. The module is looked up at run time, so the console works (and says so)
without it.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Final

from aiohttp import web

from broadcaster.api.context import SERVICES
from broadcaster.web.auth import require_user
from broadcaster.web.gateway import invoke
from broadcaster.web.render import render

REPORT_CSP: Final = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; "
    "base-uri 'none'; form-action 'none'"
)


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def available() -> bool:
    html, runs = _module("broadcaster.drills.html"), _module("broadcaster.drills.runs")
    return (
        html is not None
        and runs is not None
        and hasattr(html, "render_report_html")
        and hasattr(runs, "load_report")
    )


async def runs_by_broadcast(request: web.Request) -> dict[int, dict[str, Any]]:
    """Recorded drill runs (schedule, verdict) by broadcast id; empty without the module."""
    runs = _module("broadcaster.drills.runs")
    if runs is None or not hasattr(runs, "list_runs"):
        return {}
    async with request.app[SERVICES].db.acquire() as conn:
        rows = await runs.list_runs(conn, 100)
    return {int(r["broadcast_id"]): r for r in rows if r.get("broadcast_id") is not None}


async def _report_html(request: web.Request) -> str | None:
    """The drills module's page for this broadcast (read permission checked like the API)."""
    caller = require_user(request)
    await invoke(request, caller, "getBroadcast")
    if not available():
        return None
    html, runs = _module("broadcaster.drills.html"), _module("broadcaster.drills.runs")
    assert html is not None
    assert runs is not None
    async with request.app[SERVICES].db.acquire() as conn:
        report = await runs.load_report(conn, int(request.match_info["broadcast_id"]))
    page: str = html.render_report_html(report)
    return page


async def report_page(request: web.Request) -> web.StreamResponse:
    """The console page around the report (banner, navigation, a frame with the report);
    a refusal (not a drill, no such broadcast) shows here rather than inside the frame."""
    page = await _report_html(request)
    return render(
        request,
        "drill_report.html",
        kind="drill",
        broadcast_id=int(request.match_info["broadcast_id"]),
        available=page is not None,
    )


async def report_raw(request: web.Request) -> web.StreamResponse:
    page = await _report_html(request)
    if page is None:
        raise web.HTTPNotFound(reason="the drills module is not installed")
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Content-Security-Policy": REPORT_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


def add_routes(router: web.UrlDispatcher) -> None:
    one = "/broadcasts/{broadcast_id:[0-9]{1,18}}"
    router.add_get(f"{one}/drill-report", report_page, name="drill_report")
    router.add_get(f"{one}/drill-report.html", report_raw, name="drill_report_raw")
