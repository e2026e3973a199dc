"""Times shown to people in the area's zone (issue 22)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broadcaster.domain.localtime import local, recipients_by_departement, zone_for
from broadcaster.errors import InputError

NOON_UTC = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("deps", "zone", "shown"),
    [
        (["75"], "Europe/Paris", "13:00:00"),
        (["971"], "America/Guadeloupe", "08:00:00"),
        (["972"], "America/Martinique", "08:00:00"),
        (["973"], "America/Cayenne", "09:00:00"),
        (["974"], "Indian/Reunion", "16:00:00"),
        (["976"], "Indian/Mayotte", "15:00:00"),
        (["974", "974", "13"], "Indian/Reunion", "16:00:00"),
        ([], "Europe/Paris", "13:00:00"),
    ],
)
def test_each_area_reads_its_own_clock(deps: list[str], zone: str, shown: str) -> None:
    assert zone_for(deps) == zone
    assert (
        local(NOON_UTC, zone) == f"2026-12-06 {shown} {local(NOON_UTC, zone).split()[2]} ({zone})"
    )
    assert shown in local(NOON_UTC, zone)


def test_a_configured_zone_wins_and_a_wrong_one_is_refused() -> None:
    assert zone_for(["974"], "UTC") == "UTC"
    with pytest.raises(InputError, match="not an IANA zone"):
        zone_for(["75"], "Europe/Pariss")
    assert local(None, "Europe/Paris") == "-"


@pytest.mark.parametrize(
    ("recipients", "zone"),
    [
        ({"976": 100, "974": 90_000}, "Indian/Reunion"),
        ({"976": 90_000, "974": 100}, "Indian/Mayotte"),
        ({"974": 5, "976": 5}, "Indian/Mayotte"),  # a tie: the first zone by name
        ({"75": 5, "974": 5}, "Europe/Paris"),  # a tie with the metropole: the metropole
        ({"971": 10, "972": 10, "75": 19}, "Europe/Paris"),  # zones, not départements, weigh
        ({"971": 10, "974": 4, "75": 3, "13": 3}, "America/Guadeloupe"),
    ],
)
def test_a_broadcast_reads_the_clock_of_most_of_its_recipients(
    recipients: dict[str, int], zone: str
) -> None:
    """Weighed by recipients, not by départements: before, Mayotte's 100 people and Réunion's
    90,000 tied (one département each) and the zone went to the first counted."""
    assert zone_for(recipients) == zone


def test_recipients_by_departement_adds_a_departements_languages() -> None:
    groups = [
        {"departement": "974", "lang": "fr", "recipients": 70},
        {"departement": "974", "lang": "en", "recipients": 30},
        {"departement": "976", "lang": "fr", "recipients": 99},
    ]
    assert recipients_by_departement(groups) == {"974": 100, "976": 99}
    assert zone_for(recipients_by_departement(groups)) == "Indian/Reunion"
