"""The edge middleware of the app (API and console alike): request ids, the access log, metrics,
and errors as JSON.

Each request:
1. a request id (from a well-formed `X-Request-Id`, else generated), echoed in the response and
   bound to every log line (with `broadcast_id` once known);
2. the handler; errors come out as `{"error": {"code", "message", "request_id"}}`: ApiError with
   its status, a command's refusal with its status hint (404, 403, 409, 422...), a database that
   does not answer as 503, anything unexpected as 500 (logged with its traceback).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from broadcaster.errors import InputError
from broadcaster.http.context import CALLER, OPERATION, REQUEST_ID, SERVICES, reply
from broadcaster.http.errors import ApiError, from_refusal
from broadcaster.http.schemas import REQUEST_ID as REQUEST_ID_SHAPE
from broadcaster.store.database import DATABASE_UNAVAILABLE, connection_lost

log = structlog.get_logger(__name__)

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

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    supplied = request.headers.get("X-Request-Id", "")
    request_id = supplied if REQUEST_ID_SHAPE.match(supplied) else uuid.uuid4().hex
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.monotonic()
    try:
        response = await _answer(request, handler, request_id)
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


async def _answer(request: web.Request, handler: Handler, request_id: str) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc, request_id)
    except web.HTTPException as exc:
        return _from_http_exception(exc, request_id)
    except InputError as exc:
        return error_response(from_refusal(exc), request_id)
    except DATABASE_UNAVAILABLE as exc:
        return _unavailable(exc, request_id)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        if connection_lost(exc):  # a pooled connection lost with the database: 503 as well
            return _unavailable(exc, request_id)
        log.exception("unexpected_error", method=request.method, path=request.path)
        message = f"unexpected error; the server log has the details under request id {request_id}"
        return error_response(ApiError(500, "internal_error", message), request_id)


def _unavailable(exc: BaseException, request_id: str) -> web.Response:
    log.error("database_unavailable", error=f"{type(exc).__name__}: {exc}")
    unavailable = ApiError(503, "unavailable", "the database does not answer: retry shortly")
    return error_response(unavailable, request_id)


def error_response(exc: ApiError, request_id: str) -> web.Response:
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
