"""The missed-run policy: run the latest fire time within the grace period, record the others as
missed, never run a backlog, always move past now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broadcaster.drills.cron import CronSpec
from broadcaster.drills.policy import MAX_MISSED_RECORDED, MIN_GRACE, decide, grace_floor

DAILY = CronSpec.parse("0 12 * * *", "Europe/Paris", datetime(2026, 12, 1, tzinfo=UTC))
NOON = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)  # 12:00 Paris
GRACE = timedelta(hours=1)


def test_not_due_yet() -> None:
    assert decide(DAILY, NOON, NOON - timedelta(seconds=1), GRACE) is None


def test_due_now_runs_it_and_moves_on() -> None:
    decision = decide(DAILY, NOON, NOON + timedelta(seconds=3), GRACE)
    assert decision is not None
    assert decision.run_at == NOON
    assert decision.missed == ()
    assert decision.missed_total == 0
    assert decision.next_run_at == NOON + timedelta(days=1)


def test_late_within_the_grace_period_still_runs() -> None:
    decision = decide(DAILY, NOON, NOON + timedelta(minutes=59), GRACE)
    assert decision is not None
    assert decision.run_at == NOON
    assert decision.missed == ()


def test_past_the_grace_period_it_is_missed_not_run() -> None:
    decision = decide(DAILY, NOON, NOON + timedelta(hours=2), GRACE)
    assert decision is not None
    assert decision.run_at is None
    assert decision.missed == (NOON,)
    assert decision.missed_total == 1
    assert decision.next_run_at == NOON + timedelta(days=1)


def test_after_days_down_only_the_latest_runs_the_others_are_missed() -> None:
    now = NOON + timedelta(days=3, minutes=10)
    decision = decide(DAILY, NOON, now, GRACE)
    assert decision is not None
    assert decision.run_at == NOON + timedelta(days=3)
    assert decision.missed == tuple(NOON + timedelta(days=d) for d in range(3))
    assert decision.next_run_at == NOON + timedelta(days=4)


def test_a_long_outage_records_a_bounded_number_of_missed_fire_times() -> None:
    now = NOON + timedelta(days=40, hours=5)
    decision = decide(DAILY, NOON, now, GRACE)
    assert decision is not None
    assert decision.run_at is None
    assert decision.missed_total == 41
    assert len(decision.missed) == MAX_MISSED_RECORDED
    assert decision.missed[-1] == NOON + timedelta(days=40)
    assert decision.next_run_at > now


def test_a_grace_below_the_floor_is_raised_to_it() -> None:
    # A scheduler always acts a little after the fire time: with a grace of 0, an on-time drill
    # seen 5 s late would be recorded as missed.
    decision = decide(DAILY, NOON, NOON + timedelta(seconds=5), timedelta(0))
    assert decision is not None and decision.run_at == NOON and decision.missed == ()
    floor = grace_floor(45.0)  # twice the poll interval when that is more than a minute
    assert floor == timedelta(seconds=90)
    assert grace_floor(1.0) == MIN_GRACE == timedelta(seconds=60)
    late = decide(DAILY, NOON, NOON + timedelta(seconds=89), timedelta(seconds=3), floor)
    assert late is not None and late.run_at == NOON
    too_late = decide(DAILY, NOON, NOON + timedelta(seconds=91), timedelta(seconds=3), floor)
    assert too_late is not None and too_late.run_at is None and too_late.missed == (NOON,)
