"""Times shown to people, in the zone of the area a broadcast is about (issue 22).

The crisis cell of Réunion reads 14:05, not 10:05 UTC. Overseas départements have their own
zone; a configured zone (Settings.display_timezone) overrides. JSON keeps UTC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broadcaster.errors import InputError

METROPOLE: Final = "Europe/Paris"
OVERSEAS: Final[dict[str, str]] = {
    "971": "America/Guadeloupe",
    "972": "America/Martinique",
    "973": "America/Cayenne",
    "974": "Indian/Reunion",
    "976": "Indian/Mayotte",
}


def zone_of(departement: str) -> str:
    return OVERSEAS.get(departement, METROPOLE)


def zone_for(departements: Iterable[str], configured: str = "") -> str:
    """The configured zone, else the zone most of the areas are in (metropolitan France when
    there are none)."""
    if configured:
        check_zone(configured)
        return configured
    zones = Counter(zone_of(d) for d in departements)
    return zones.most_common(1)[0][0] if zones else METROPOLE


def check_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"time zone {name!r} is not an IANA zone name (e.g. Europe/Paris, Indian/Reunion)"
        ) from None


def local(at: datetime | None, zone: str) -> str:
    """`2026-12-06 14:05:03 +04 (Indian/Reunion)`; '-' for no time."""
    if at is None:
        return "-"
    shown = at.astimezone(check_zone(zone))
    return f"{shown:%Y-%m-%d %H:%M:%S} {shown:%Z} ({zone})"


def local_short(at: datetime | None, zone: str) -> str:
    """`14:05:03` in the zone (chart labels)."""
    return "-" if at is None else f"{at.astimezone(check_zone(zone)):%H:%M:%S}"
