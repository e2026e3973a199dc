"""Who is calling, and how often: authentication with a budget of failures per client address,
and the per-token rate limit — the same for the API and the console."""

from __future__ import annotations

import time

import structlog
from aiohttp import web

from broadcaster.commands.tokens import AuthenticationError, authenticate
from broadcaster.domain.caller import Caller, Interface
from broadcaster.http.context import REQUEST_ID, Services
from broadcaster.http.errors import ApiError

log = structlog.get_logger(__name__)


def limit(services: Services, caller: Caller) -> None:
    """429 when the caller's token has used up its rate (every change; the API's reads too)."""
    wait = services.limiter.take(f"token:{caller.token_id}", time.monotonic())
    if wait > 0:
        services.metrics.rate_limited.inc()
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests for this token: retry in {wait:.1f} s",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )


def failed_sign_in_wait(services: Services, request: web.Request) -> float:
    """Count a failed authentication against the client's address; the seconds it must now
    wait (0: it may try again at once)."""
    address = request.remote or "unknown"
    return services.auth_limiter.take(f"ip:{address}", time.monotonic())


async def identify(
    request: web.Request, services: Services, authorization: str | None, interface: Interface
) -> Caller:
    """The caller of a bearer token, or AuthenticationError (401); past a budget of failures per
    client address, 429 instead.

    A valid token always passes (a misbehaving neighbour behind the same NAT cannot lock the
    crisis cell out); guessing gains nothing anyway, tokens carry 256 random bits.
    """
    try:
        async with services.db.acquire() as conn:
            return await authenticate(
                conn,
                authorization,
                interface=interface,
                request_id=request.get(REQUEST_ID),
                origin=request.remote,
            )
    except AuthenticationError:
        log.warning("authentication_failed", remote=request.remote, path=request.path)
        wait = failed_sign_in_wait(services, request)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                "too many failed authentications from this address: retry in "
                f"{wait:.0f} s with a valid token",
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            ) from None
        raise
