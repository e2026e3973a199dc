"""The API's routes on the app, and the pipeline each API request goes through.

Each request, in this order (after the edge middleware, `http.edge`):
1. authentication (401; failed authentications are limited per client address), then the rate
   limit per token (429) — before the body is even read;
2. query parameters, Content-Type (415), body size (413), JSON syntax and schema (400);
3. the handler, which calls a command: the command checks the caller's role (403, audited) and
   everything else (404, 409, 422), and the edge turns its refusal into JSON.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from broadcaster.api.context import Call
from broadcaster.api.routes import CAP_MEDIA_TYPES, ROUTES, Route
from broadcaster.http import schemas
from broadcaster.http.context import CALLER, OPERATION, REQUEST_ID, SERVICES
from broadcaster.http.errors import ApiError, bad_request
from broadcaster.http.guard import identify, limit

log = structlog.get_logger(__name__)


def add_routes(app: web.Application) -> None:
    """Every route of the route table, on the app (whose SERVICES are set)."""
    for route in ROUTES:
        app.router.add_route(
            route.method, route.aiohttp_path, endpoint(route), name=route.operation_id
        )


def endpoint(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        request[OPERATION] = route.operation_id
        services = request.app[SERVICES]
        caller = None
        if route.auth:
            caller = await identify(request, services, request.headers.get("Authorization"), "api")
            request[CALLER] = caller
            structlog.contextvars.bind_contextvars(actor=caller.name)
            limit(services, caller)
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
    raw = await _read(request)
    if not raw.strip():
        if route.body_required:
            raise bad_request(
                "a body is required: "
                + ("a CAP 1.2 <alert> document" if route.body_kind == "cap" else "a JSON object"),
                code="missing_body",
            )
        return {}, raw
    media = request.content_type  # aiohttp: application/octet-stream when absent
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


async def _read(request: web.Request) -> bytes:
    """The body, refused unread (413) when it says it is larger than the limit."""
    limit_bytes = request.app[SERVICES].settings.api_max_body_bytes
    if request.content_length is not None and request.content_length > limit_bytes:
        raise ApiError(
            413,
            "body_too_large",
            f"the body is {request.content_length} bytes; the limit is {limit_bytes}",
        )
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(
            413, "body_too_large", f"the body is larger than {limit_bytes} bytes"
        ) from None
