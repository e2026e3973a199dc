"""The console as a sub-application of the API's app, mounted at /console.

It shares the API's services (database pool, settings, this process's worker and SMPP pool,
rate limiters, metrics) and runs inside the API's edge middleware (request ids, access log), so
a console click and an API call leave the same traces.
"""

from __future__ import annotations

from aiohttp import web

from broadcaster.http.context import SERVICES, Services
from broadcaster.web import (
    after_action,
    auth,
    broadcast,
    compose,
    drill_reports,
    geo,
    pages,
    progress,
)
from broadcaster.web.middleware import console_pipeline
from broadcaster.web.render import PAGES_DIR, environment
from broadcaster.web.session import SessionCodec
from broadcaster.web.state import CONSOLE, PREFIX, Console


def create_console(services: Services, codec: SessionCodec | None = None) -> web.Application:
    console = web.Application(
        client_max_size=services.settings.api_max_body_bytes, middlewares=[console_pipeline]
    )
    console[SERVICES] = services
    console[CONSOLE] = Console(codec=codec or SessionCodec.from_env(), pages=environment(PAGES_DIR))
    console[progress.HUB] = progress.Hub(services.commands)
    console[geo.BUILDING] = {}
    router = console.router
    auth.add_routes(router)
    pages.add_routes(router)
    compose.add_routes(router)
    broadcast.add_routes(router)
    drill_reports.add_routes(router)
    after_action.add_routes(router)
    geo.add_routes(router)
    router.add_get("/broadcasts/{broadcast_id:[0-9]{1,18}}/events", progress.stream, name="events")
    router.add_static("/static", PAGES_DIR / "static", name="static")
    console.on_shutdown.append(_closing)
    console.on_shutdown.append(geo.finish_building)
    console.on_cleanup.append(progress.stop_hub)
    return console


async def _closing(app: web.Application) -> None:
    app[CONSOLE].closing.set()


async def _to_console(request: web.Request) -> web.StreamResponse:
    return web.Response(status=302, headers={"Location": f"{PREFIX}/"})


def setup(app: web.Application, services: Services, codec: SessionCodec | None = None) -> None:
    """Mount the console on the API's app (before it starts); `/` leads to it."""
    app.add_subapp(PREFIX, create_console(services, codec))
    app.router.add_get("/", _to_console, name="console_root")
