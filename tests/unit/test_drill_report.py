"""The drill report is a pure function of part outcomes: counts, timings, per SMSC and per area,
and a verdict against the thresholds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import jsonschema
import pytest

from broadcaster.drills.report import (
    DrillInfo,
    PartRow,
    Thresholds,
    build_report,
    percentile,
)
from broadcaster.drills.text import render_report_text
from broadcaster.errors import InputError
from broadcaster.http.schemas import DRILL_REPORT

T0 = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)


def part(
    msisdn: int,
    *,
    smsc: str = "a",
    dep: str = "75",
    status: int = 0,
    accept_s: float = 0.01,
    delivered_s: float | None = 2.0,
    stat: str = "DELIVRD",
    sent_s: float = 0.0,
    part_no: int = 1,
) -> PartRow:
    submitted = T0 + timedelta(seconds=sent_s)
    receipt = None if delivered_s is None or status else submitted + timedelta(seconds=delivered_s)
    return PartRow(
        msisdn=msisdn,
        part=part_no,
        departement=dep,
        smsc=smsc,
        status=status,
        submitted_at=submitted,
        answered_at=submitted + timedelta(seconds=accept_s),
        receipt_stat=stat if receipt else None,
        receipt_at=receipt,
    )


def info(planned: int, state: str = "completed", refusal: str | None = None) -> DrillInfo:
    return DrillInfo(
        drill_id=7,
        state=state,
        template="drill",
        planned_parts=planned,
        recipients=planned,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=5),
        schedule="monthly",
        areas=("dep:75", "dep:13"),
        refusal=refusal,
    )


def test_everything_delivered_in_time_passes() -> None:
    rows = [part(i, smsc="a" if i % 2 else "b", dep="75" if i < 50 else "13") for i in range(100)]
    report = build_report(info(100), rows, Thresholds())
    assert report.passed
    assert report.verdict == "pass"
    assert report.total.accepted == report.total.delivered == report.total.delivered_in_time == 100
    assert [b.name for b in report.by_smsc] == ["a", "b"]
    assert [b.name for b in report.by_area] == ["13", "75"]
    assert report.total.time_to_delivery.p50_s == pytest.approx(2.0)
    assert report.total.time_to_accept.max_s == pytest.approx(0.01)
    assert {c.scope for c in report.checks} >= {"all", "smsc a", "smsc b", "area 75", "area 13"}


def test_one_smsc_losing_its_receipts_fails_that_smsc_and_the_drill() -> None:
    rows = [part(i, smsc="a") for i in range(60)]
    rows += [part(100 + i, smsc="b", delivered_s=None) for i in range(40)]
    report = build_report(info(100), rows, Thresholds())
    assert not report.passed
    failed = {c.scope for c in report.failures}
    assert failed == {"all", "smsc b", "area 75"}
    b = next(x for x in report.by_smsc if x.name == "b")
    assert b.accepted == 40
    assert b.delivered == 0
    assert b.undelivered_by_stat == {"no receipt": 40}
    assert "smsc b: 0.0% of 40 part(s) delivered within 300 s" in " ".join(
        c.message for c in report.failures
    )


def test_late_deliveries_do_not_count_as_in_time() -> None:
    rows = [part(i) for i in range(98)] + [part(98, delivered_s=400), part(99, delivered_s=301)]
    report = build_report(info(100), rows, Thresholds())
    assert report.total.delivered == 100
    assert report.total.delivered_in_time == 98
    assert not report.passed  # 98% < 99%
    assert build_report(info(100), rows, Thresholds(min_delivered_ratio=0.98)).passed
    assert build_report(info(100), rows, Thresholds(delivery_within_s=400)).passed


def test_failures_by_status_and_receipt_stat() -> None:
    rows = [part(i) for i in range(95)]
    rows += [part(95, status=0x58), part(96, status=0x58), part(97, status=-1)]
    rows += [part(98, stat="UNDELIV"), part(99, stat="EXPIRED")]
    report = build_report(info(100), rows, Thresholds())
    total = report.total
    assert total.failed_by_status == {"0x00000058": 2, "none": 1}
    assert total.undelivered_by_stat == {"EXPIRED": 1, "UNDELIV": 1}
    assert total.accepted == 97
    assert total.delivered == 95


def test_a_resent_part_counts_once_with_its_best_outcome() -> None:
    rows = [part(1, status=0x58, sent_s=0), part(1, sent_s=1), part(1, delivered_s=None, sent_s=2)]
    report = build_report(info(1), rows, Thresholds())
    assert report.total.submitted == 1
    assert report.total.delivered == 1
    assert report.passed


def test_parts_never_submitted_count_against_the_drill() -> None:
    rows = [part(i) for i in range(50)]
    report = build_report(info(100, state="expired"), rows, Thresholds())
    assert report.total.expected == 100
    assert report.total.delivered_ratio == 0.5
    names = {c.name for c in report.failures}
    assert names == {"completed", "delivered_within"}


def test_a_refused_or_empty_drill_fails_with_the_reason() -> None:
    refused = build_report(
        info(10, state="failed", refusal="drill refused: not test group"), [], Thresholds()
    )
    assert not refused.passed
    assert "drill refused: not test group" in refused.failures[0].message
    empty = build_report(info(0), [], Thresholds())
    assert not empty.passed
    assert any("no test-group subscriber" in c.message for c in empty.failures)


def test_slow_acceptance_fails_the_p95_check() -> None:
    rows = [part(i, smsc="slow", accept_s=8.0) for i in range(10)]
    rows += [part(100 + i, smsc="fast") for i in range(10)]
    report = build_report(info(20), rows, Thresholds())
    assert {(c.name, c.scope) for c in report.failures} == {
        ("accept_p95", "all"),
        ("accept_p95", "smsc slow"),
    }


def test_timeline_is_cumulative_per_smsc_and_bounded() -> None:
    rows = [part(i, smsc="a", delivered_s=i * 0.5) for i in range(1000)]
    rows += [part(5000, smsc="b", delivered_s=None)]
    report = build_report(info(1001), rows, Thresholds())
    a = report.timeline["a"]
    assert len(a) <= 200
    assert a[-1][1] == 1000
    assert [n for _, n in a] == sorted(n for _, n in a)
    assert report.timeline["b"] == ()


def test_to_json_is_plain_json() -> None:
    report = build_report(info(3), [part(1), part(2, smsc="b"), part(3, status=8)], Thresholds())
    data = json.loads(json.dumps(report.to_json()))
    assert data["verdict"] == "fail"
    assert data["drill_id"] == 7
    assert data["total"]["failed_by_status"] == {"0x00000008": 1}
    assert data["thresholds"] == {
        "min_delivered_ratio": 0.99,
        "delivery_within_seconds": 300.0,
        "max_accept_p95_seconds": 5.0,
    }
    assert data["failures"]


def test_percentile_interpolates_like_postgres() -> None:
    assert percentile([1.0], 0.95) == 1.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)


@pytest.mark.parametrize(
    "data",
    [
        {"min_delivered_ratio": 1.5},
        {"min_delivered_ratio": 0},
        {"delivery_within_seconds": 0},
        {"max_accept_p95_seconds": -1},
        {"min_delivered_ratio": "high"},
        {"surprise": 1},
    ],
)
def test_bad_thresholds_are_refused(data: dict[str, object]) -> None:
    with pytest.raises(InputError):
        Thresholds.from_json(data)


def test_thresholds_round_trip() -> None:
    t = Thresholds(min_delivered_ratio=0.95, delivery_within_s=120, max_accept_p95_s=2)
    assert Thresholds.from_json(t.to_json()) == t
    assert Thresholds.from_json(None) == Thresholds()


def test_a_drill_read_in_its_delivery_window_is_pending_not_failed() -> None:
    """Read 30 s into a 300 s window with receipts still to come, a drill said FAIL (exit 3);
    it is pending until the window ends, then fails if deliveries still fall short. A failure
    that no receipt can mend (the broadcast not completed) fails at once."""
    rows = [part(i, delivered_s=None) for i in range(10)]  # accepted, no receipt yet
    report = build_report(info(10), rows, Thresholds(delivery_within_s=300))
    assert report.verdict == "fail" and not report.pending
    early = report.judged_at(T0 + timedelta(seconds=30))
    assert early.pending and early.verdict == "pending"
    assert early.open_until == T0 + timedelta(seconds=300)
    assert early.to_json()["verdict"] == "pending"
    assert early.to_json()["open_until"] == (T0 + timedelta(seconds=300)).isoformat()
    text = render_report_text(early)
    assert ": PENDING;" in text and "PENDING: its delivery window is open until" in text
    assert "FAILED" not in text
    late = report.judged_at(T0 + timedelta(seconds=301))
    assert late.verdict == "fail" and late.open_until is None
    refused = build_report(info(10, state="cancelled"), rows, Thresholds(delivery_within_s=300))
    assert refused.judged_at(T0 + timedelta(seconds=30)).verdict == "fail"
    passed = build_report(info(10), [part(i) for i in range(10)], Thresholds())
    assert passed.judged_at(T0 + timedelta(seconds=1)).verdict == "pass"
    # What no receipt can mend fails at once, window open or not: every part refused, or
    # receipted UNDELIV, or too few left awaiting to reach the threshold.
    early_at = T0 + timedelta(seconds=30)
    refused_all = build_report(info(10), [part(i, status=0x45) for i in range(10)], Thresholds())
    assert refused_all.judged_at(early_at).verdict == "fail"
    undeliv = [part(i, stat="UNDELIV") for i in range(10)]
    assert build_report(info(10), undeliv, Thresholds()).judged_at(early_at).verdict == "fail"
    short = [part(i, stat="UNDELIV") for i in range(5)] + [
        part(i, delivered_s=None) for i in range(5, 10)
    ]
    assert build_report(info(10), short, Thresholds()).judged_at(early_at).verdict == "fail"
    could = [part(i) for i in range(9)] + [part(9, delivered_s=None)]
    assert build_report(info(10), could, Thresholds()).judged_at(early_at).verdict == "pending"


def test_every_verdict_fits_the_published_schema() -> None:
    """The API's drill report as its OpenAPI schema says it (a pending one broke it)."""
    rows = [part(i) for i in range(9)] + [part(9, delivered_s=None)]
    report = build_report(info(10), rows, Thresholds())
    for at in (T0 + timedelta(seconds=30), T0 + timedelta(hours=1)):
        body = json.loads(json.dumps(report.judged_at(at).to_json()))
        jsonschema.validate(body, DRILL_REPORT)
    assert {report.judged_at(T0).verdict, report.verdict} == {"pending", "fail"}
