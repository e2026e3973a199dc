"""The console's request pipeline: session, language, who is signed in, CSRF, HTML errors.

Each console request, inside the API's edge middleware (request id, access log):
1. the signed session cookie, or a fresh anonymous session (it carries the sign-in form's CSRF
   token);
2. the language: the session's choice, else Accept-Language;
3. the signed-in holder, re-read from the token row (a revoked token ends the session);
4. for a POST: a readable form (400 otherwise: a multipart field without a name, bytes that
   are not the declared charset), same origin, then the CSRF token (403 otherwise), then the
   holder's rate limit (429, as the API's), all before the handler runs;
5. the handler, which calls the commands (they check roles and audit); a refusal or failure
   becomes an HTML page in the visitor's language, with the refusal's status;
6. security headers (CSP...) and the cookie when the session changed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from broadcaster.commands.tokens import holder
from broadcaster.errors import InputError
from broadcaster.http.context import CALLER, REQUEST_ID, SERVICES
from broadcaster.http.errors import ApiError
from broadcaster.http.guard import limit
from broadcaster.store.database import DATABASE_UNAVAILABLE, connection_lost
from broadcaster.web import i18n
from broadcaster.web.refusals import without_cli_advice
from broadcaster.web.render import render
from broadcaster.web.security import add_headers, csrf_ok, policy, same_origin
from broadcaster.web.session import COOKIE, Session, set_cookie
from broadcaster.web.state import (
    CONSOLE,
    LANG,
    SESSION,
    SESSION_CHANGED,
    SESSION_ENDED,
    USER,
    user_of,
)

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@web.middleware
async def console_pipeline(request: web.Request, handler: Handler) -> web.StreamResponse:
    console = request.app[CONSOLE]
    session = console.codec.loads(request.cookies.get(COOKIE))
    request[SESSION_CHANGED] = session is None
    if session is None:
        session = Session.anonymous()
    request[SESSION] = session
    settings = request.app[SERVICES].settings
    request[LANG] = session.lang or i18n.negotiate(
        request.headers.get("Accept-Language"), settings.default_language
    )
    try:
        response = await _handle(request, handler)
    except web.HTTPException as exc:
        if exc.status < 400:  # a plain response: returning the exception is deprecated
            response = redirect(exc.headers.get("Location", "/console/"), exc.status)
        else:
            response = _http_error(request, exc)
    add_headers(response, policy(settings.map_tiles_url))
    if request[SESSION_CHANGED] and not response.prepared:
        set_cookie(response, request, console.codec.dumps(request[SESSION]))
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app[SERVICES]
    try:
        await _resolve_user(request)
        if request.method not in SAFE_METHODS:
            try:
                form = await request.post()
            except (ValueError, LookupError) as exc:  # LookupError: an unknown charset
                log.warning(
                    "console_bad_form",
                    path=request.path,
                    remote=request.remote,
                    error=f"{type(exc).__name__}: {exc}",
                )
                return _page(request, 400, "error", i18n_key="bad_form")
            if not same_origin(request) or not csrf_ok(form, request[SESSION].csrf):
                log.warning("console_csrf_refused", path=request.path, remote=request.remote)
                return _page(request, 403, "forbidden_title", i18n_key="csrf_failed")
            user = user_of(request)
            if user is not None:
                limit(services, user)
        return await handler(request)
    except ApiError as exc:
        message = without_cli_advice(exc.message)
        return _page(request, exc.status, _title(request, exc.status), message=message)
    except InputError as exc:
        message = without_cli_advice(str(exc))  # no "see `broadcaster list`" on a web page
        return _page(request, exc.status, _title(request, exc.status), message=message)
    except DATABASE_UNAVAILABLE as exc:
        log.error("database_unavailable", error=f"{type(exc).__name__}: {exc}")
        return _page(request, 503, "error", i18n_key="unavailable")
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except Exception as exc:
        if connection_lost(exc):  # a pooled connection lost with the database: 503 as well
            log.error("database_unavailable", error=f"{type(exc).__name__}: {exc}")
            return _page(request, 503, "error", i18n_key="unavailable")
        log.exception("unexpected_error", method=request.method, path=request.path)
        services.metrics.requests.labels("console", "500").inc()
        return _page(
            request,
            500,
            "error",
            message=f"{i18n.translator(request[LANG])('server_error')} {request[REQUEST_ID]}",
        )


async def _resolve_user(request: web.Request) -> None:
    """Who is signed in, from the token row itself: revoked or unknown ends the session."""
    session = request[SESSION]
    if session.token_id is None:
        return
    async with request.app[SERVICES].db.acquire() as conn:
        found = await holder(
            conn, session.token_id, "console", request.get(REQUEST_ID), request.remote
        )
    if found is None or found[1] != session.token_created:
        log.info("console_session_ended", token_id=session.token_id)
        request[SESSION] = Session.anonymous(session.lang)
        request[SESSION_CHANGED] = True
        request[SESSION_ENDED] = True
        return
    caller = found[0]
    request[USER] = caller
    request[CALLER] = caller  # the edge middleware's access log names the actor
    structlog.contextvars.bind_contextvars(actor=caller.name)


def redirect(location: str, status: int = 303) -> web.Response:
    """See Other: after a POST the browser GETs the result (no resubmission on reload)."""
    return web.Response(status=status, headers={"Location": location})


def _title(request: web.Request, status: int) -> str:
    """The heading of a refusal. "Nothing was stored or sent" is said of creating only: an
    action refused on an existing broadcast (approve, cancel, update...) was not done, and the
    broadcast may well have gone out."""
    if status in (403, 404):
        return {403: "forbidden_title", 404: "not_found_title"}[status]
    on_broadcast = request.method not in SAFE_METHODS and "broadcast_id" in request.match_info
    return "action_not_done" if on_broadcast else "refused"


def _page(
    request: web.Request,
    status: int,
    title_key: str,
    *,
    message: str | None = None,
    i18n_key: str | None = None,
) -> web.Response:
    t = i18n.translator(request[LANG])
    return render(
        request,
        "error.html",
        status=status,
        title=t(title_key),
        message=t(i18n_key) if i18n_key else (message or ""),
    )


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    key = _title(request, exc.status) if exc.status in (403, 404) else "error"
    return _page(request, exc.status, key, message=exc.reason)
