"""Signing in and out of the console with an API token, and the language toggle.

Sign-in checks the token exactly as the API does (`commands.tokens.authenticate`), with the
API's budget of failed attempts per client address; the session then keeps the token's id only. The
sign-in page shows no token back, not even a wrong one, and a failure is logged with the client
address only (`console_authentication_failed`, like the API's `authentication_failed`).
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import quote

import structlog
from aiohttp import web

from broadcaster.commands.tokens import AuthenticationError
from broadcaster.commands.tokens import sign_in as open_session
from broadcaster.domain.caller import Caller
from broadcaster.http.context import REQUEST_ID, SERVICES
from broadcaster.http.guard import failed_sign_in_wait
from broadcaster.web import i18n
from broadcaster.web.middleware import redirect
from broadcaster.web.render import render
from broadcaster.web.security import safe_next
from broadcaster.web.session import Session
from broadcaster.web.state import LANG, SESSION, SESSION_CHANGED, SESSION_ENDED, user_of

log = structlog.get_logger(__name__)

MAX_TOKEN_FIELD = 200


def require_user(request: web.Request) -> Caller:
    """The signed-in holder; anyone else is sent to the sign-in page (and back afterwards)."""
    caller = user_of(request)
    if caller is None:
        target = request.path_qs if request.method == "GET" else "/console/"
        ended = "&ended=1" if request.get(SESSION_ENDED) else ""
        raise web.HTTPSeeOther(f"/console/sign-in?next={quote(target, safe='/')}{ended}")
    return caller


def _start(request: web.Request, session: Session) -> None:
    request[SESSION] = session
    request[SESSION_CHANGED] = True


async def sign_in_page(request: web.Request) -> web.StreamResponse:
    if user_of(request) is not None:
        return redirect("/console/")
    return render(
        request,
        "sign_in.html",
        next=safe_next(request.query.get("next")),
        error=None,
        ended=request.query.get("ended") == "1",
    )


async def sign_in(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    form = await request.post()
    token, requested = form.get("token"), form.get("next")
    text = token.strip()[:MAX_TOKEN_FIELD] if isinstance(token, str) else ""
    target = safe_next(requested if isinstance(requested, str) else None)
    try:
        caller, token_created = await open_session(
            services.commands, text, remote=request.remote, request_id=request.get(REQUEST_ID)
        )
    except AuthenticationError as exc:
        # Neither the token nor the API's message (it may quote the token's prefix) is logged.
        log.warning("console_authentication_failed", remote=request.remote, path=request.path)
        message, status = str(exc), 401
        wait = failed_sign_in_wait(services, request)
        if wait > 0:
            t = i18n.translator(request[LANG])
            message = t("too_many_sign_ins").format(wait=max(1, round(wait + 0.5)))
            status = 429
        return render(
            request, "sign_in.html", status=status, next=target, error=message, ended=False
        )
    assert caller.token_id is not None
    _start(request, request[SESSION].signed_in(caller.token_id, token_created))
    return redirect(target)


async def sign_out(request: web.Request) -> web.StreamResponse:
    _start(request, Session.anonymous(request[SESSION].lang))
    return redirect("/console/sign-in")


async def choose_language(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    lang = form.get("lang")
    if isinstance(lang, str) and lang in i18n.LANGUAGES:
        _start(request, replace(request[SESSION], lang=lang))
        request[LANG] = lang
    target = form.get("next")
    return redirect(safe_next(target if isinstance(target, str) else None))


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/sign-in", sign_in_page, name="sign_in_page")
    router.add_post("/sign-in", sign_in, name="sign_in")
    router.add_post("/sign-out", sign_out, name="sign_out")
    router.add_post("/language", choose_language, name="language")
