"""What a handler is given: the app's services, and one checked request (`Call`)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from broadcaster.api.auth import Caller
from broadcaster.api.errors import not_found
from broadcaster.api.metrics import Metrics
from broadcaster.api.ratelimit import RateLimiter
from broadcaster.settings import Settings

if TYPE_CHECKING:
    from broadcaster.api.routes import Route
    from broadcaster.engine.worker import Worker

MAX_ID = 2**63 - 1


@dataclass
class Services:
    """Shared by every request of one app."""

    settings: Settings
    db: asyncpg.Pool[asyncpg.Record]
    worker: Worker | None
    limiter: RateLimiter
    auth_limiter: RateLimiter
    metrics: Metrics
    parts_per_second: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


SERVICES = web.AppKey("services", Services)
REQUEST_ID = web.RequestKey("request_id", str)
OPERATION = web.RequestKey("operation", str)
CALLER = web.RequestKey("caller", Caller)


@dataclass
class Call:
    """One request that passed authentication, authorisation and the body checks."""

    request: web.Request
    services: Services
    route: Route
    request_id: str
    caller_or_none: Caller | None
    body: dict[str, Any]
    raw: bytes
    query: dict[str, int | None]

    @property
    def caller(self) -> Caller:
        assert self.caller_or_none is not None, "route is not authenticated"
        return self.caller_or_none

    def path_id(self, name: str) -> int:
        """An integer path parameter; 404 when it cannot be an id."""
        text = self.request.match_info.get(name, "")
        value = int(text) if text.isdigit() and len(text) <= 19 else 0
        if not 1 <= value <= MAX_ID:
            raise not_found(f"there is no {name.removesuffix('_id')} {text!r}")
        return value


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return str(value)


def dumps(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False)


def reply(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(data, status=status, headers=headers, dumps=dumps)
