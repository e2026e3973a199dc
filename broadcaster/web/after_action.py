"""The after-action report in the console (issue 22): the afteraction package's self-contained
page shown in a sandboxed frame (as drill reports are: drill_reports.py), and the download of
the recipients not reached (role-restricted and audited by the command)."""

from __future__ import annotations

from aiohttp import web

from broadcaster.afteraction.html import render_html
from broadcaster.commands import reports
from broadcaster.http.streaming import stream_csv
from broadcaster.web.auth import require_user
from broadcaster.web.compose import ctx_of
from broadcaster.web.drill_reports import REPORT_CSP
from broadcaster.web.render import render


def _id(request: web.Request) -> int:
    return int(request.match_info["broadcast_id"])


async def report_page(request: web.Request) -> web.StreamResponse:
    """The console page around the report; a refusal or a missing broadcast shows here."""
    caller = require_user(request)
    await reports.after_action(ctx_of(request), caller, _id(request))
    return render(request, "after_action.html", broadcast_id=_id(request))


async def report_raw(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    page = render_html(await reports.after_action(ctx_of(request), caller, _id(request)))
    return web.Response(
        text=page,
        content_type="text/html",
        headers={"Content-Security-Policy": REPORT_CSP, "X-Frame-Options": "SAMEORIGIN"},
    )


async def not_reached(request: web.Request) -> web.StreamResponse:
    caller = require_user(request)
    lines = reports.not_reached_csv(ctx_of(request), caller, _id(request))
    return await stream_csv(request, lines, f"not-reached-{_id(request)}.csv")


def add_routes(router: web.UrlDispatcher) -> None:
    one = "/broadcasts/{broadcast_id:[0-9]{1,18}}"
    router.add_get(f"{one}/report", report_page, name="after_action")
    router.add_get(f"{one}/report.html", report_raw, name="after_action_raw")
    router.add_get(f"{one}/not-reached.csv", not_reached, name="not_reached")
