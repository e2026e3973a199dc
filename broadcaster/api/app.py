"""The aiohttp application: the edge middleware and the per-route request pipeline.

Each request, in this order:
1. a request id (from a well-formed `X-Request-Id`, else generated), echoed in the response and
   bound to every log line (with `broadcast_id` once known);
2. authentication (401), rate limit per token (429; failed authentications are limited per
   client address), role (403) — before the body is even read;
3. query parameters, Content-Type (415), body size (413), JSON syntax and schema (400);
4. the handler. Errors come out as `{"error": {"code", "message", "request_id"}}`: ApiError with
   its status, bad input found while planning (unknown area, template...) as 422, a database
   that does not answer as 503, anything unexpected as 500 (logged with its traceback).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from aiohttp import web

from broadcaster.api import schemas
from broadcaster.api.auth import Caller, authenticate
from broadcaster.api.cap import CapError
from broadcaster.api.context import (
    CALLER,
    OPERATION,
    REQUEST_ID,
    SERVICES,
    Call,
    Services,
    reply,
)
from broadcaster.api.errors import ApiError, bad_request, forbidden
from broadcaster.api.metrics import Metrics
from broadcaster.api.ratelimit import RateLimiter
from broadcaster.api.routes import CAP_MEDIA_TYPES, ROUTES, Route
from broadcaster.errors import InputError, TemplateError, UnknownAreaError
from broadcaster.settings import Settings
from broadcaster.smpp.pool import contracted_capacity
from broadcaster.store.database import DATABASE_UNAVAILABLE

log = structlog.get_logger(__name__)

AUTH_FAILURES_PER_S = 0.2
AUTH_FAILURE_BURST = 10
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    411: "length_required",
    413: "body_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    431: "headers_too_large",
}

if TYPE_CHECKING:
    from broadcaster.engine.worker import Worker


def create_app(
    settings: Settings,
    db: asyncpg.Pool[asyncpg.Record],
    worker: Worker | None = None,
    *,
    console: bool = False,
) -> web.Application:
    """The API over a database pool; `worker` (if any) is this process's engine, whose SMPP
    pool feeds /readyz and /metrics; `console` mounts the web console at /console."""
    services = Services(
        settings=settings,
        db=db,
        worker=worker,
        limiter=RateLimiter(settings.api_rate_per_second, settings.api_rate_burst),
        auth_limiter=RateLimiter(AUTH_FAILURES_PER_S, AUTH_FAILURE_BURST),
        metrics=Metrics(lambda: worker.pool if worker is not None else None),
        parts_per_second=contracted_capacity(worker.smscs) if worker is not None else 0.0,
    )
    app = web.Application(client_max_size=settings.api_max_body_bytes, middlewares=[edge])
    app[SERVICES] = services
    for route in ROUTES:
        app.router.add_route(
            route.method, route.aiohttp_path, endpoint(route), name=route.operation_id
        )
    if console:
        from broadcaster.web import setup as setup_console

        setup_console(app, services)
    return app


# -- edge middleware --------------------------------------------------------------------------


@web.middleware
async def edge(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    supplied = request.headers.get("X-Request-Id", "")
    request_id = supplied if schemas.REQUEST_ID.match(supplied) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.monotonic()
    try:
        try:
            response = await handler(request)
        except ApiError as exc:
            response = _error(exc, request_id)
        except web.HTTPException as exc:
            response = _from_http_exception(exc, request_id)
        except CapError as exc:
            response = _error(ApiError(exc.status, exc.code, str(exc)), request_id)
        except UnknownAreaError as exc:
            response = _error(ApiError(422, "unknown_area", str(exc)), request_id)
        except TemplateError as exc:
            response = _error(ApiError(422, "template_error", str(exc)), request_id)
        except InputError as exc:
            response = _error(ApiError(422, "invalid_input", str(exc)), request_id)
        except DATABASE_UNAVAILABLE as exc:
            log.error("database_unavailable", error=f"{type(exc).__name__}: {exc}")
            response = _error(
                ApiError(503, "unavailable", "the database does not answer: retry shortly"),
                request_id,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("unexpected_error", method=request.method, path=request.path)
            response = _error(
                ApiError(
                    500,
                    "internal_error",
                    f"unexpected error; the server log has the details under request id "
                    f"{request_id}",
                ),
                request_id,
            )
        response.headers["X-Request-Id"] = request_id
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        operation = request.get(OPERATION, "unmatched")
        request.app[SERVICES].metrics.requests.labels(operation, str(response.status)).inc()
        caller = request.get(CALLER)
        log.info(
            "http_request",
            method=request.method,
            path=request.path,
            status=response.status,
            ms=round((time.monotonic() - started) * 1000, 1),
            actor=caller.name if caller is not None else None,
            operation=operation,
        )
        return response
    finally:
        structlog.contextvars.clear_contextvars()


def _error(exc: ApiError, request_id: str) -> web.Response:
    return reply(exc.body(request_id), status=exc.status, headers=exc.headers)


def _from_http_exception(exc: web.HTTPException, request_id: str) -> web.Response:
    status = exc.status
    code = HTTP_CODES.get(status, "http_error")
    message = exc.reason
    if status == 404:
        message = "no such endpoint: see /v1/openapi.json"
    elif status == 405:
        allowed = exc.headers.get("Allow", "")
        message = f"method not allowed here; allowed: {allowed}"
    elif status == 413:
        message = "the body is larger than the limit: send less"
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    return reply(ApiError(status, code, message).body(request_id), status=status, headers=headers)


# -- per-route pipeline -----------------------------------------------------------------------


def endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        request[OPERATION] = route.operation_id
        services = request.app[SERVICES]
        caller = None
        if route.auth:
            caller = await _authenticate(request, services)
            request[CALLER] = caller
            structlog.contextvars.bind_contextvars(actor=caller.name)
            wait = services.limiter.take(f"token:{caller.token_id}", time.monotonic())
            if wait > 0:
                services.metrics.rate_limited.inc()
                raise ApiError(
                    429,
                    "rate_limited",
                    f"too many requests for this token: retry in {wait:.1f} s",
                    headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                )
            if (
                route.permission is not None
                and not caller.can(route.permission)
                and not route.creator_may
            ):
                from broadcaster.api import audit

                async with services.db.acquire() as conn:
                    await audit.record(
                        conn,
                        actor=caller.name,
                        action="denied",
                        subject=_subject(route, request),
                        request_id=request[REQUEST_ID],
                        role=caller.role,
                        operation=route.operation_id,
                        path=request.path,
                    )
                raise forbidden(
                    f"an {caller.role} token may not {route.operation_id}: it needs the "
                    f"{route.permission!r} permission ({_roles_with(route)})"
                )
        query = _query(route, request)
        body, raw = await _body(route, request)
        call = Call(
            request=request,
            services=services,
            route=route,
            request_id=request[REQUEST_ID],
            caller_or_none=caller,
            body=body,
            raw=raw,
            query=query,
        )
        return await route.handler(call)

    handle.__name__ = route.operation_id
    return handle


def _subject(route: Route, request: web.Request) -> str | None:
    """`broadcast:42` or `token:7` for a route about one resource (for the audit log)."""
    for name in route.path_params:
        return f"{name.removesuffix('_id')}:{request.match_info.get(name, '?')}"
    return None


def _roles_with(route: Route) -> str:
    from broadcaster.api.openapi import roles_for

    return "roles: " + ", ".join(roles_for(route))


async def _authenticate(request: web.Request, services: Services) -> Caller:
    """The caller, or 401; past a budget of failures per client address, 429 instead.

    A valid token always passes (a misbehaving neighbour behind the same NAT cannot lock the
    crisis cell out); guessing gains nothing anyway, tokens carry 256 random bits.
    """
    address = request.remote or "unknown"
    try:
        async with services.db.acquire() as conn:
            return await authenticate(conn, request.headers.get("Authorization"))
    except ApiError:
        log.warning("authentication_failed", remote=address, path=request.path)
        wait = services.auth_limiter.take(f"ip:{address}", time.monotonic())
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                "too many failed authentications from this address: retry in "
                f"{wait:.0f} s with a valid token",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            ) from None
        raise


def _query(route: Route, request: web.Request) -> dict[str, int | None]:
    allowed = {q.name: q for q in route.query}
    out: dict[str, int | None] = dict.fromkeys(allowed)
    for name, value in request.query.items():
        param = allowed.get(name)
        if param is None:
            known = ", ".join(allowed) or "none"
            raise bad_request(
                f"unknown query parameter {name!r}; allowed: {known}", code="invalid_query"
            )
        if not (
            value.isdigit() and len(value) <= 19 and param.minimum <= int(value) <= param.maximum
        ):
            raise bad_request(
                f"query parameter {name}={value!r} must be an integer from {param.minimum} "
                f"to {param.maximum}",
                code="invalid_query",
            )
        out[name] = int(value)
    return out


async def _body(route: Route, request: web.Request) -> tuple[dict[str, Any], bytes]:
    if route.body_schema is None and route.body_kind == "json":
        return {}, b""
    limit = request.app[SERVICES].settings.api_max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise ApiError(
            413,
            "body_too_large",
            f"the body is {request.content_length} bytes; the limit is {limit}",
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "body_too_large", f"the body is larger than {limit} bytes") from None
    media = request.content_type  # aiohttp: application/octet-stream when absent
    if not raw.strip():
        if route.body_required:
            raise bad_request(
                "a body is required: "
                + ("a CAP 1.2 <alert> document" if route.body_kind == "cap" else "a JSON object"),
                code="missing_body",
            )
        return {}, raw
    if route.body_kind == "cap":
        if media not in CAP_MEDIA_TYPES:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"Content-Type {media!r}: send the CAP alert as {', '.join(CAP_MEDIA_TYPES)}",
            )
        return {}, raw
    if media != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type {media!r}: send the body as application/json",
        )
    assert route.body_schema is not None
    return schemas.check(route.body_schema, schemas.parse_json(raw)), raw
