"""What every request of the app shares (`Services`), and the request keys the edge sets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import asyncpg
from aiohttp import web

from broadcaster.commands.context import Context
from broadcaster.domain.caller import Caller
from broadcaster.http.metrics import Metrics
from broadcaster.http.ratelimit import RateLimiter
from broadcaster.settings import Settings

if TYPE_CHECKING:
    from broadcaster.engine.worker import Worker


@dataclass
class Services:
    """Shared by every request of one app."""

    commands: Context
    """What the commands work with (database, settings, sending capacity)."""
    worker: Worker | None
    """This process's worker (its SMPP pool feeds /readyz, /metrics and the live pages)."""
    limiter: RateLimiter
    auth_limiter: RateLimiter
    metrics: Metrics

    @property
    def settings(self) -> Settings:
        return self.commands.settings

    @property
    def db(self) -> asyncpg.Pool[asyncpg.Record]:
        return self.commands.db

    @property
    def parts_per_second(self) -> float:
        return self.commands.parts_per_second


SERVICES = web.AppKey("services", Services)
REQUEST_ID = web.RequestKey("request_id", str)
OPERATION = web.RequestKey("operation", str)
CALLER = web.RequestKey("caller", Caller)


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
