"""Times shown to people in the area's zone (issue 22)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from broadcaster.domain.localtime import local, zone_for
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
