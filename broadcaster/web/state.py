"""What the console keeps per app and per request (aiohttp keys), in one place."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import jinja2
from aiohttp import web

from broadcaster.domain.caller import Caller
from broadcaster.web.session import Session, SessionCodec

PREFIX = "/console"
"""Where the console is mounted in the API's app."""


@dataclass
class Console:
    """Shared by every console request of one app."""

    codec: SessionCodec
    pages: jinja2.Environment
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at shutdown: live progress streams end instead of holding the server up."""


CONSOLE = web.AppKey("console", Console)
SESSION = web.RequestKey("console_session", Session)
SESSION_CHANGED = web.RequestKey("console_session_changed", bool)
SESSION_ENDED = web.RequestKey("console_session_ended", bool)
"""The cookie named a holder whose token is gone: the sign-in page says why."""
USER = web.RequestKey("console_user", Caller)
LANG = web.RequestKey("console_lang", str)


def user_of(request: web.Request) -> Caller | None:
    return request.get(USER)
