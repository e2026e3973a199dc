"""What an operator asks for, before any check: the same shape from every way in (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from broadcaster.errors import InputError

DEFAULT_EXPIRY = timedelta(hours=2)
MAX_EXPIRY = timedelta(days=7)
"""The longest a broadcast may live, from every way in: stale guidance is dangerous (a
fallback number sent days late may be wrong)."""
MIN_EXPIRY = timedelta(seconds=1)


@dataclass(frozen=True)
class BroadcastRequest:
    """What an operator asks for, before any check."""

    areas: Sequence[str]
    template: str
    variables: Mapping[str, str]
    exclude: Sequence[str] = ()
    kind: str = "live"
    test_group_only: bool = False
    gsm_safe: bool = False
    expires_in: timedelta = DEFAULT_EXPIRY
    created_by: str = "cli"
    parent_id: int | None = None
    """An update or all-clear follows this broadcast: same areas unless others are named, and
    the parent is stopped if it is still sending."""
    reached_only: bool = False
    """With a parent: only the recipients the parent reached (accepted by the SMSC)."""
    max_parts: int | None = None
    """The most parts one message may take; None: the configured `max_parts`."""
    mode: str = "auto"
    """Who an area reaches: `present` (numbers last seen in its cells within `freshness_s`),
    `resident` (subscribers living there), `both`, or `auto` (present for a polygon or circle,
    resident for an administrative area or a cell id)."""
    freshness_s: int = 6 * 3600
    """How recent a location must be to count as present (6 h by default)."""
    visitor_languages: Mapping[str, str] = field(default_factory=dict)
    """Country (ISO 3166 alpha-2) -> language (ISO 639-1) for this broadcast's visitors, over
    the `country_languages` table (e.g. {"CH": "de"} near the German-speaking border)."""
    allow_language_fallback: bool = False
    """A live send may reach groups whose text is not in their language (no template in it,
    or a variable written for another); without it such a plan is refused."""


def parse_variables(pairs: Sequence[str]) -> dict[str, str]:
    """`name=value` or `name.lang=value` pairs from the command line; a malformed one is an
    InputError. The values are checked when planning (`TemplateCatalogue.check_variables`),
    as those of every other way in."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--var {pair!r} is not of the form name=value")
        out[name.strip()] = value
    return out


def check_expiry(expires_in: timedelta) -> timedelta:
    """An expiry within [MIN_EXPIRY, MAX_EXPIRY], or an InputError saying the limits."""
    if not MIN_EXPIRY <= expires_in <= MAX_EXPIRY:
        raise InputError(
            f"the expiry must be between 1 s and {MAX_EXPIRY.days} days, not "
            f"{expires_in.total_seconds():g} s: stale guidance is dangerous"
        )
    return expires_in
