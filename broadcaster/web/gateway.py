"""The console's way into the API: call an API operation in-process, as the API would.

Every action the console offers (preview, create, approve, cancel, pause, resume, update,
all-clear, listings, the audit log) runs the API's own handler from the route table, after the
API's own checks on the same route entry: its permission (403, recorded in the audit log), the
per-token rate limit for changes, and its JSON schema for the body. So the two-person rule, the
creator-may-cancel rule, drill targeting and every input check live in one place only, and the
console cannot grow a second, laxer copy of them.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final, cast

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from broadcaster.api import audit, schemas
from broadcaster.api.auth import Caller
from broadcaster.api.broadcasts import IDEMPOTENCY_HEADER
from broadcaster.api.context import OPERATION, REQUEST_ID, SERVICES, Call
from broadcaster.api.errors import ApiError, forbidden
from broadcaster.api.routes import ROUTES, Route

BY_OPERATION: Final[dict[str, Route]] = {route.operation_id: route for route in ROUTES}


def route_of(operation_id: str) -> Route:
    return BY_OPERATION[operation_id]


def allowed(caller: Caller, operation_id: str) -> bool:
    """Whether the caller's role passes the route's permission check (the handler may still
    refuse: the two-person rule, a cancel by someone who did not create the broadcast)."""
    route = route_of(operation_id)
    return route.permission is None or caller.can(route.permission) or route.creator_may


async def invoke(
    request: web.Request,
    caller: Caller,
    operation_id: str,
    body: dict[str, Any] | None = None,
    *,
    query: dict[str, int | None] | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """Run one API operation for `caller`; its JSON answer, or the ApiError it refused with.

    Path parameters come from the console route's own match (`{broadcast_id}`).
    """
    route = route_of(operation_id)
    services = request.app[SERVICES]
    request_id = request.get(REQUEST_ID, "console")
    request[OPERATION] = f"console:{operation_id}"
    if route.method != "GET":
        wait = services.limiter.take(f"token:{caller.token_id}", time.monotonic())
        if wait > 0:
            services.metrics.rate_limited.inc()
            raise ApiError(
                429, "rate_limited", f"too many requests for this token: retry in {wait:.1f} s"
            )
    if not allowed(caller, operation_id):
        async with services.db.acquire() as conn:
            await audit.record(
                conn,
                actor=caller.name,
                action="denied",
                subject=_subject(route, request),
                request_id=request_id,
                role=caller.role,
                operation=operation_id,
                path=request.path,
            )
        raise forbidden(
            f"an {caller.role} token may not {operation_id}: it needs the "
            f"{route.permission!r} permission"
        )
    checked: dict[str, Any] = {}
    if route.body_schema is not None:
        checked = schemas.check(route.body_schema, body or {})
    headers = CIMultiDict(request.headers)
    headers.popall(IDEMPOTENCY_HEADER, None)
    if idempotency_key is not None:
        headers[IDEMPOTENCY_HEADER] = idempotency_key
    call = Call(
        request=cast(web.Request, _AsApiRequest(request, CIMultiDictProxy(headers))),
        services=services,
        route=route,
        request_id=request_id,
        caller_or_none=caller,
        body=checked,
        raw=b"",
        query={**dict.fromkeys(q.name for q in route.query), **(query or {})},
    )
    response = await route.handler(call)
    assert isinstance(response, web.Response)
    assert response.text is not None
    answer: dict[str, Any] = json.loads(response.text)
    return answer


class _AsApiRequest:
    """The console's request as an API handler reads it: the same method, path and path
    parameters, with the form's Idempotency-Key as a header (a read request cannot be cloned)."""

    def __init__(self, request: web.Request, headers: CIMultiDictProxy[str]) -> None:
        self._request = request
        self.headers = headers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


def _subject(route: Route, request: web.Request) -> str | None:
    for name in route.path_params:
        return f"{name.removesuffix('_id')}:{request.match_info.get(name, '?')}"
    return None
