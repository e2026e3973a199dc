"""Browser-side defences of the console: CSP and friends, CSRF, safe redirects.

- Content-Security-Policy: scripts and styles only from the console's own static files (no
  inline script, no inline style, no eval), no framing by others (the console frames only its
  own drill reports), forms post only to this origin.
- CSRF: every POST carries the session's CSRF token in a hidden field, compared in constant
  time; a cross-site request is refused before that by its Origin / Sec-Fetch-Site headers.
  SameSite=Strict cookies are a third layer, not the only one.
"""

from __future__ import annotations

import hmac
import re
from typing import Any, Final
from urllib.parse import urlsplit

from aiohttp import web
from multidict import MultiDictProxy

from broadcaster.errors import InputError

CSRF_FIELD: Final = "csrf_token"
CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
_NEXT: Final = re.compile(r"/console/[A-Za-z0-9/_.?=&%-]*")
_UNSAFE: Final = re.compile(r"[\x00-\x1f\x7f\\]")
"""Control characters (a newline would split the Location header) and backslashes (which
browsers read as `/`): a `next` carrying one is a forged link, refused with 400."""


def add_headers(response: web.StreamResponse, csp: str = CSP) -> None:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, csp if name == "Content-Security-Policy" else value)


def policy(map_tiles_url: str) -> str:
    """The console's CSP: `CSP`, with the map's tile server (a checked https origin, see
    settings) added to img-src when one is configured."""
    if not map_tiles_url:
        return CSP
    parts = urlsplit(map_tiles_url)
    return CSP.replace("img-src 'self' data:", f"img-src 'self' data: https://{parts.netloc}")


def same_origin(request: web.Request) -> bool:
    """False when the browser says the request comes from another site."""
    if request.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None or origin == "null":
        return origin is None
    # The host only: behind a TLS-terminating proxy the scheme seen here is http.
    return urlsplit(origin).netloc == request.host


def csrf_ok(form: MultiDictProxy[Any], expected: str) -> bool:
    sent = form.get(CSRF_FIELD)
    return isinstance(sent, str) and bool(expected) and hmac.compare_digest(sent, expected)


class BadRedirectError(InputError):
    """A redirect target that cannot be a link inside the console (400: the request is bad)."""

    status = 400
    code = "bad_redirect"


def safe_next(path: str | None, default: str = "/console/") -> str:
    """A redirect target inside the console, never another site (`//evil`, `https:`...): a
    same-origin path under /console/, else `default`. InputError (400) for a target carrying a
    control character or a backslash: no redirect is built from it."""
    if not path:
        return default
    if _UNSAFE.search(path):
        raise BadRedirectError(
            "the link's `next` target holds a control character or a backslash: "
            "open the console from its own address"
        )
    if _NEXT.fullmatch(path) and "//" not in path:
        return path
    return default
