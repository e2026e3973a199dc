"""Times shown to people, in the zone of the area a broadcast is about (issue 22).

The crisis cell of Réunion reads 14:05, not 10:05 UTC. Overseas départements have their own
zone; a configured zone (Settings.display_timezone) overrides. JSON keeps UTC.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final, cast
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


def zone_for(departements: Iterable[str] | Mapping[str, int], configured: str = "") -> str:
    """The configured zone, else the zone of most of the recipients when `departements` maps
    each to its recipients (a broadcast's groups: 100 people in Mayotte and 90,000 in La
    Réunion read Réunion's time), of most of the départements when it lists them (a list of
    broadcasts). A tie goes to metropolitan France, then to the first zone by name; no areas:
    metropolitan France."""
    if configured:
        check_zone(configured)
        return configured
    weights: Mapping[str, int] = (
        departements if isinstance(departements, Mapping) else Counter(departements)
    )
    zones: Counter[str] = Counter()
    for departement, recipients in weights.items():
        zones[zone_of(departement)] += recipients
    if not zones:
        return METROPOLE
    return min(zones, key=lambda zone: (-zones[zone], zone != METROPOLE, zone))


def recipients_by_departement(groups: Iterable[Mapping[str, object]]) -> dict[str, int]:
    """{département: recipients} of a broadcast's groups (one per département and language),
    as `zone_for` weighs them."""
    weights: Counter[str] = Counter()
    for group in groups:
        weights[str(group["departement"])] += int(cast(int, group["recipients"]))
    return dict(weights)


def zone_of_groups(groups: Iterable[Mapping[str, object]], configured: str = "") -> str:
    """The zone to show a broadcast's times in, from its groups: `zone_for` their recipients
    (the report, `status`, the console's broadcast page read it alike)."""
    return zone_for(recipients_by_departement(groups), configured)


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
