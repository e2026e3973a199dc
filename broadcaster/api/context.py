"""What an API handler is given: the app's services and one checked request (`Call`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from broadcaster.commands.context import Context
from broadcaster.domain.caller import Caller
from broadcaster.http.context import Services
from broadcaster.http.errors import not_found

if TYPE_CHECKING:
    from broadcaster.api.routes import Route

MAX_ID = 2**63 - 1


@dataclass
class Call:
    """One request that passed authentication, the rate limit and the body checks."""

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

    @property
    def ctx(self) -> Context:
        """What the commands work with."""
        return self.services.commands

    def path_id(self, name: str) -> int:
        """An integer path parameter; 404 when it cannot be an id."""
        text = self.request.match_info.get(name, "")
        value = int(text) if text.isdigit() and len(text) <= 19 else 0
        if not 1 <= value <= MAX_ID:
            raise not_found(f"there is no {name.removesuffix('_id')} {text!r}")
        return value


Handler = Callable[[Call], Awaitable[web.StreamResponse]]
