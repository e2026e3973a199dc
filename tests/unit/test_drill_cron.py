"""Cron schedules in a time zone: the first Monday at 12:00 Paris time, summer and winter, DST
gaps and overlaps, and the refusals (bad expression, unknown zone, too frequent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster.drills.cron import CronSpec
from broadcaster.errors import InputError

FIRST_MONDAY = "0 12 * * 1#1"


def test_first_monday_at_noon_paris_follows_summer_and_winter_time() -> None:
    spec = CronSpec.parse(FIRST_MONDAY, "Europe/Paris", datetime(2026, 11, 29, tzinfo=UTC))
    fires = spec.upcoming(datetime(2026, 11, 29, tzinfo=UTC), 6)
    assert fires == [
        datetime(2026, 12, 7, 11, 0, tzinfo=UTC),  # CET: UTC+1
        datetime(2027, 1, 4, 11, 0, tzinfo=UTC),
        datetime(2027, 2, 1, 11, 0, tzinfo=UTC),
        datetime(2027, 3, 1, 11, 0, tzinfo=UTC),
        datetime(2027, 4, 5, 10, 0, tzinfo=UTC),  # CEST: UTC+2
        datetime(2027, 5, 3, 10, 0, tzinfo=UTC),
    ]
    assert all(f.weekday() == 0 and f.day <= 7 for f in fires)


def test_next_after_is_strictly_after() -> None:
    spec = CronSpec.parse(FIRST_MONDAY, "Europe/Paris")
    fire = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
    assert spec.next_after(fire) == datetime(2027, 1, 4, 11, 0, tzinfo=UTC)
    assert spec.next_after(fire.replace(second=0) - timedelta(seconds=1)) == fire


def test_a_time_skipped_by_the_clock_change_fires_once_just_after() -> None:
    # 28 March 2027, Paris: 02:00 -> 03:00. 02:30 does not exist that day.
    spec = CronSpec.parse("30 2 * * *", "Europe/Paris", datetime(2027, 3, 1, tzinfo=UTC))
    fires = spec.upcoming(datetime(2027, 3, 27, 12, tzinfo=UTC), 2)
    assert fires == [
        datetime(2027, 3, 28, 1, 0, tzinfo=UTC),  # 03:00 CEST, the first minute that exists
        datetime(2027, 3, 29, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


def test_a_time_that_happens_twice_fires_once() -> None:
    # 31 October 2027, Paris: 03:00 -> 02:00. 02:30 happens twice; the drill runs once.
    spec = CronSpec.parse("30 2 * * *", "Europe/Paris", datetime(2027, 10, 1, tzinfo=UTC))
    fires = spec.upcoming(datetime(2027, 10, 30, 12, tzinfo=UTC), 2)
    assert fires == [
        datetime(2027, 10, 31, 0, 30, tzinfo=UTC),  # the first 02:30 (CEST)
        datetime(2027, 11, 1, 1, 30, tzinfo=UTC),  # 02:30 CET
    ]


def test_overseas_time_zones_are_honoured() -> None:
    spec = CronSpec.parse("0 12 * * 1#1", "America/Cayenne", datetime(2026, 11, 29, tzinfo=UTC))
    assert spec.next_after(datetime(2026, 11, 29, tzinfo=UTC)) == datetime(
        2026, 12, 7, 15, 0, tzinfo=UTC
    )


def test_the_expression_is_explained_in_words() -> None:
    text = CronSpec.parse(FIRST_MONDAY, "Europe/Paris").explain()
    assert "first Monday" in text
    assert "Europe/Paris" in text


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("", "5 fields"),
        ("0 12 * *", "5 fields"),
        ("0 0 12 * * 1", "5 fields"),  # a seconds field: not for drills
        ("61 12 * * 1", "not valid"),
        ("0 12 * * 1#6", "not valid"),
        ("0 12 32 * *", "not valid"),
        ("0 0 30 2 *", "not valid"),
        ("noon on mondays", "5 fields"),
        ("a b c d e", "not valid"),
        ("*/5 * * * *", "at most once an hour"),
        ("* 12 * * 1", "at most once an hour"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(expression: str, words: str) -> None:
    with pytest.raises(InputError, match=words) as caught:
        CronSpec.parse(expression, "Europe/Paris")
    assert "0 12 * * 1#1" in str(caught.value) or "hour" in str(caught.value)


@pytest.mark.parametrize("zone", ["Europe/Pariss", "Mars/Olympus", "", "../etc/passwd", "Europe"])
def test_unknown_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(InputError, match="unknown time zone"):
        CronSpec.parse(FIRST_MONDAY, zone)
