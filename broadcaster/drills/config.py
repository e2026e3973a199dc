"""Drill settings that are not per schedule, from `BROADCASTER_DRILL_*` environment variables,
and the check of a webhook URL (per schedule or global)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from broadcaster.errors import ConfigError, InputError

MAX_URL_LENGTH = 500


@dataclass(frozen=True)
class DrillSettings:
    webhook_url: str | None = None
    """Where failing drills are POSTed when their schedule names no webhook of its own."""
    poll_s: float = 10.0
    """Longest pause between two scheduler passes: a fire time is acted on at most this late."""
    webhook_timeout_s: float = 10.0
    webhook_retry_delays: tuple[float, ...] = (1.0, 3.0)
    """Pauses before the second and third attempt of a webhook that failed."""

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
        return cls(webhook_url=url, poll_s=poll)


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
