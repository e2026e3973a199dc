"""Drill settings that are not per schedule, from `BROADCASTER_DRILL_*` environment variables,
the check of a webhook URL (per schedule or global), and where webhooks may go
(`WebhookPolicy`, pure: the addresses are resolved by `drills.alarm`).

A webhook URL is a secret (it may carry credentials or a query token): it is shown masked
(`mask_url`), to admins only. Its destination must be an origin listed in
`BROADCASTER_WEBHOOK_ALLOW` (`scheme://host[:port]`, `:*` for any port; the global
`BROADCASTER_DRILL_WEBHOOK_URL`'s origin is allowed too: the deployer set it), or else https to
public addresses only: loopback, private, link-local, shared, reserved and multicast addresses
are refused, so that a webhook cannot probe the internal network.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from broadcaster.errors import ConfigError, InputError

MAX_URL_LENGTH = 500
DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOW_ENV = "BROADCASTER_WEBHOOK_ALLOW"
REFUSED = "refused by policy"
"""What a refused destination is called wherever people see it (the details go to the log)."""


class WebhookRefusedError(InputError):
    """A webhook destination outside the policy: nothing is posted there."""

    code = "webhook_refused"


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    host = (parts.hostname or "").lower().rstrip(".")
    return parts.scheme.lower(), host, parts.port or DEFAULT_PORTS.get(parts.scheme.lower(), 0)


def public_address(address: str) -> bool:
    """Whether an IP address is a public unicast one (not loopback, private, link-local,
    shared, reserved, unspecified or multicast; an IPv4-mapped IPv6 address as its IPv4)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class WebhookPolicy:
    """Where webhooks may be posted: `allow`ed origins (any address), else https to public
    addresses."""

    allow: frozenset[tuple[str, str, int | None]] = frozenset()
    """(scheme, host, port) triples; port None: any port."""

    @classmethod
    def parse(cls, entries: Iterable[str]) -> WebhookPolicy:
        """From `scheme://host[:port]` entries (`:*`: any port); ConfigError on a bad one."""
        allowed: set[tuple[str, str, int | None]] = set()
        for raw in entries:
            entry = raw.strip().rstrip("/")
            if not entry:
                continue
            any_port = entry.endswith(":*")
            try:
                parts = urlsplit(entry.removesuffix(":*") if any_port else entry)
                scheme, host, port = _origin(parts)
                if parts.path or parts.query or parts.username or not host:
                    raise ValueError(entry)
            except ValueError:
                raise ConfigError(
                    f"{ALLOW_ENV}: {raw!r} is not scheme://host[:port] (e.g. "
                    "https://alerts.example, http://10.1.2.3:8080, http://127.0.0.1:*)"
                ) from None
            if scheme not in DEFAULT_PORTS:
                raise ConfigError(f"{ALLOW_ENV}: {raw!r}: the scheme must be http or https")
            allowed.add((scheme, host, None if any_port else port))
        return cls(frozenset(allowed))

    def with_origin_of(self, url: str | None) -> WebhookPolicy:
        """This policy, plus the origin of `url` (the deployer's global webhook)."""
        if url is None:
            return self
        return WebhookPolicy(self.allow | {_origin(urlsplit(url))})

    def allowed(self, url: str) -> bool:
        """Whether the URL's origin is explicitly allowed (then any address is)."""
        scheme, host, port = _origin(urlsplit(url))
        return (scheme, host, port) in self.allow or (scheme, host, None) in self.allow

    def check_url(self, url: str) -> str:
        """The checked URL, or WebhookRefusedError: what can be told before resolving the
        host (the scheme, an address or a local name given literally)."""
        url = check_webhook_url(url)
        if self.allowed(url):
            return url
        scheme, host, _port = _origin(urlsplit(url))
        if scheme != "https":
            raise WebhookRefusedError(
                f"webhook {REFUSED}: only https to a public address, or an origin listed in "
                f"{ALLOW_ENV}"
            )
        literal = _literal_address(host)
        if literal is not None and not public_address(literal):
            raise WebhookRefusedError(
                f"webhook {REFUSED}: not a public address (list the origin in {ALLOW_ENV})"
            )
        if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
            raise WebhookRefusedError(
                f"webhook {REFUSED}: a local name (list the origin in {ALLOW_ENV})"
            )
        return url

    def check_addresses(self, url: str, addresses: Iterable[str]) -> list[str]:
        """The addresses the URL's host resolved to, all of them checked (a host with one
        private address among public ones is refused: the connection could go to either)."""
        found = list(addresses)
        if not found:
            raise WebhookRefusedError(f"webhook {REFUSED}: the host has no address")
        if self.allowed(url):
            return found
        refused = [a for a in found if not public_address(a)]
        if refused:
            raise WebhookRefusedError(
                f"webhook {REFUSED}: the host resolves to a non-public address"
            )
        return found


def _literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def mask_url(url: str | None) -> str | None:
    """`https://host[:port]/…`: enough to recognise a webhook, without its path, query or
    credentials (which may be secrets)."""
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}/…"


@dataclass(frozen=True)
class DrillSettings:
    webhook_url: str | None = None
    """Where failing drills are POSTed when their schedule names no webhook of its own."""
    poll_s: float = 10.0
    """Longest pause between two scheduler passes: a fire time is acted on at most this late."""
    webhook_timeout_s: float = 10.0
    webhook_retry_delays: tuple[float, ...] = (1.0, 3.0)
    """Pauses before the second and third attempt of a webhook that failed."""
    webhook_policy: WebhookPolicy = WebhookPolicy()
    """Where webhooks may go (`BROADCASTER_WEBHOOK_ALLOW`, plus the global webhook's origin)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DrillSettings:
        env = os.environ if env is None else env
        url = env.get("BROADCASTER_DRILL_WEBHOOK_URL") or None
        if url is not None:
            try:
                url = check_webhook_url(url)
            except InputError as exc:
                raise ConfigError(f"BROADCASTER_DRILL_WEBHOOK_URL: {exc}") from None
        raw_poll = env.get("BROADCASTER_DRILL_POLL_S", "10")
        try:
            poll = float(raw_poll)
            if not 0.1 <= poll <= 600:
                raise ValueError(raw_poll)
        except ValueError:
            raise ConfigError(
                f"BROADCASTER_DRILL_POLL_S={raw_poll!r}: seconds between 0.1 and 600"
            ) from None
        policy = WebhookPolicy.parse(env.get(ALLOW_ENV, "").split(","))
        return cls(webhook_url=url, poll_s=poll, webhook_policy=policy.with_origin_of(url))


def check_webhook_url(url: str) -> str:
    """An http(s) URL with a host, or an InputError saying what is expected."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        _ = parts.port  # raises on a port that is not a number in range
    except ValueError:
        host = None
    if (
        host is None
        or parts.scheme not in ("http", "https")
        or len(url) > MAX_URL_LENGTH
        or any(ord(c) < 33 for c in url.strip())
    ):
        raise InputError(
            f"webhook URL {url!r} is not usable: give an http:// or https:// URL with a host "
            f"(at most {MAX_URL_LENGTH} characters), e.g. https://alerts.example/drills"
        )
    return url.strip()
