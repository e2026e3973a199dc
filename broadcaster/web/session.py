"""Console sessions: a signed cookie, no table, never the token.

The cookie holds a random session id, the CSRF secret of that session, the id (and creation
time) of the API token that signed in, and the chosen language, signed with itsdangerous and
refused after `MAX_AGE_S`. The token itself is checked once at sign-in and never stored: each
request looks the token row up by id, so revoking the token ends every console session it opened
at the next click. The cookie is HttpOnly (no script reads it), SameSite=Strict (no other site
sends it) and Secure over HTTPS.

The signing key comes from BROADCASTER_WEB_SECRET (set it, the same everywhere, when several
`serve` processes sit behind one address); without it each process makes its own, and sessions
end when it restarts.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from typing import Any, Final

import structlog
from aiohttp import web
from itsdangerous import BadSignature, URLSafeTimedSerializer

from broadcaster.errors import ConfigError

log = structlog.get_logger(__name__)

COOKIE: Final = "bc_console"
MAX_AGE_S: Final = 12 * 3600
"""A crisis shift: sign in again after it."""
SECRET_ENV: Final = "BROADCASTER_WEB_SECRET"  # noqa: S105 - the variable's name
MIN_SECRET_LENGTH: Final = 32


@dataclass(frozen=True)
class Session:
    sid: str
    csrf: str
    token_id: int | None = None
    token_created: str | None = None
    """The token row's creation time: a cookie cannot outlive a database that reused the id."""
    lang: str | None = None

    @classmethod
    def anonymous(cls, lang: str | None = None) -> Session:
        return cls(sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(32), lang=lang)

    def signed_in(self, token_id: int, token_created: str) -> Session:
        """A fresh session for a signed-in holder (new id and CSRF secret: no fixation)."""
        fresh = Session.anonymous(self.lang)
        return replace(fresh, token_id=token_id, token_created=token_created)


class SessionCodec:
    """Signs sessions into cookie values and back."""

    def __init__(self, secret: str | bytes) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="broadcaster-console-session")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> SessionCodec:
        values = os.environ if env is None else env
        secret = values.get(SECRET_ENV, "")
        if secret and len(secret) < MIN_SECRET_LENGTH:
            raise ConfigError(
                f"{SECRET_ENV} is {len(secret)} characters long: use at least "
                f"{MIN_SECRET_LENGTH} random characters (e.g. `openssl rand -hex 32`)"
            )
        if not secret:
            log.info("console_session_key_generated", note=f"set {SECRET_ENV} to share sessions")
            return cls(secrets.token_bytes(32))
        return cls(secret)

    def dumps(self, session: Session) -> str:
        data: dict[str, Any] = {"s": session.sid, "c": session.csrf}
        if session.token_id is not None:
            data["t"] = session.token_id
            data["tc"] = session.token_created
        if session.lang is not None:
            data["l"] = session.lang
        return self._serializer.dumps(data)

    def loads(self, value: str | None) -> Session | None:
        """The session of a cookie value; None when absent, forged, malformed or too old."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=MAX_AGE_S)
        except BadSignature:  # SignatureExpired included
            return None
        if not isinstance(data, dict):
            return None
        sid, csrf = data.get("s"), data.get("c")
        token_id, token_created, lang = data.get("t"), data.get("tc"), data.get("l")
        if not (isinstance(sid, str) and isinstance(csrf, str)):
            return None
        if token_id is not None and not (
            isinstance(token_id, int) and isinstance(token_created, str)
        ):
            return None
        return Session(
            sid=sid,
            csrf=csrf,
            token_id=token_id,
            token_created=token_created,
            lang=lang if isinstance(lang, str) else None,
        )


def set_cookie(response: web.StreamResponse, request: web.Request, value: str) -> None:
    response.set_cookie(
        COOKIE,
        value,
        path="/console",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=MAX_AGE_S,
    )
