"""Checked JSON bodies (`http.schemas`) to what the commands take: the API receives these
bodies, the console builds the same ones from its forms, so both mean the same thing."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from broadcaster.commands.broadcasts import FollowUp
from broadcaster.domain.requests import DEFAULT_EXPIRY, BroadcastRequest


def expires_in(body: dict[str, Any]) -> timedelta:
    seconds = body.get("expires_in_seconds")
    return DEFAULT_EXPIRY if seconds is None else timedelta(seconds=int(seconds))


def broadcast_request(body: dict[str, Any], created_by: str) -> BroadcastRequest:
    """A `BroadcastCreate` body as a request."""
    return BroadcastRequest(
        areas=tuple(body["areas"]),
        template=body["template"],
        variables=dict(body.get("variables", {})),
        exclude=tuple(body.get("exclude", ())),
        kind=body.get("kind", "live"),
        test_group_only=body.get("test_group_only", False),
        gsm_safe=body.get("gsm_safe", False),
        expires_in=expires_in(body),
        created_by=created_by,
        allow_language_fallback=body.get("allow_language_fallback", False),
        mode=body.get("mode", "auto"),
        freshness_s=round(float(body.get("freshness_hours", 6)) * 3600),
        visitor_languages=dict(body.get("visitor_languages", {})),
    )


def follow_up(body: dict[str, Any], default_template: str) -> FollowUp:
    """A `FollowUp` body (update or all-clear) as the command takes it."""
    return FollowUp(
        template=body.get("template", default_template),
        variables=dict(body.get("variables", {})),
        areas=tuple(body.get("areas", ())),
        exclude=tuple(body.get("exclude", ())),
        gsm_safe=body.get("gsm_safe", False),
        expires_in=expires_in(body),
        reached_only=body.get("reached_only", False),
        allow_language_fallback=body.get("allow_language_fallback", False),
    )


def fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    """What makes two requests the same for an idempotency key: method, path and the body's
    content (key order aside)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()
