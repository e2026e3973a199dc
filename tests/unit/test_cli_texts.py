"""What the CLI prints for people: every count says whether it counts recipients or parts."""

from __future__ import annotations

from typing import Any

import pytest

from broadcaster.cli.api import _audit_text
from broadcaster.cli.broadcasts import _demo_text, _report_text
from broadcaster.cli.control import _exit_of, _list_text, _status_text
from broadcaster.errors import EXIT_OK, EXIT_PARTIAL
from broadcaster.store.broadcasts import UNITS

STATUS: dict[str, Any] = {
    "broadcast_id": 3,
    "kind": "live",
    "template": "outage",
    "state": "completed",
    "waiting_for": None,
    "recipients": 1200,
    "parts": 2400,
    "chunks_done": 3,
    "chunks_total": 3,
    "accepted": 1190,
    "failed": 10,
    "duplicates": 2,
    "resent_in_flight": 3,
    "possibly_sent_twice": 5,
    "created_at": "2026-12-06T03:00:00+00:00",
    "created_by": "cli:root",
    "expires_at": "2026-12-06T05:00:00+00:00",
    "failed_by_status": {"0x00000045": 10, "0xFFFFFFFF": 2},
    "receipts": {"DELIVRD": {"count": 2370, "p50_s": 0.4}},
    "units": UNITS,
}


def test_status_labels_recipients_and_parts() -> None:
    text = _status_text(STATUS, {"13": "Bouches-du-Rhône", "974": "La Réunion"}, "Europe/Paris")
    # The areas by name; times in the zone of the areas (UTC stays in --json), to the second.
    assert "  areas: Bouches-du-Rhône (13), La Réunion (974)" in text
    assert "created 2026-12-06 04:00:00 CET (Europe/Paris) by cli:root" in text
    assert "started -, finished -, expires 2026-12-06 06:00:00 CET (Europe/Paris)" in text
    assert "+00:00" not in text and "approved by" not in text
    approved = {**STATUS, "approved_by": "bob", "started_at": "2026-12-06T03:00:01+00:00"}
    text_974 = _status_text(approved, {}, "Indian/Reunion")
    assert "by cli:root, approved by bob" in text_974
    assert "started 2026-12-06 07:00:01 +04 (Indian/Reunion)" in text_974
    assert "1,200 recipients in 2,400 SMS parts" in text
    assert "recipients: 1,190 accepted (every part), 10 failed; " in text
    assert (
        "parts possibly sent twice: 5 (3 resent after a loss or a timeout, 2 recorded twice)"
        in (text)
    )
    # By name, as the after-action report says it, and by code.
    assert "parts failed with ESME_RSUBMITFAIL (0x00000045): 10" in text
    assert "parts failed with no answer (timeout or lost connection) (0xFFFFFFFF): 2" in text
    assert "receipts DELIVRD: 2,370 parts" in text


@pytest.mark.parametrize(
    ("state", "failed", "chunks_done", "code"),
    [
        ("running", 5, 1, EXIT_OK),  # not over: not known yet
        ("completed", 0, 4, EXIT_OK),
        ("completed", 3, 4, EXIT_PARTIAL),
        ("cancelled", 0, 2, EXIT_PARTIAL),  # chunks never sent
        ("cancelled", 0, 4, EXIT_OK),  # cancelled once everything was sent, nobody failed
        ("expired", 1, 4, EXIT_PARTIAL),
    ],
)
def test_status_and_report_exit_by_who_was_reached(
    state: str, failed: int, chunks_done: int, code: int
) -> None:
    """By failures and chunks never sent, never by the recipients planned (numbers that joined
    the index since made a broadcast with failures look complete)."""
    status = {**STATUS, "state": state, "failed": failed, "chunks_done": chunks_done}
    assert _exit_of({**status, "chunks_total": 4, "recipients": 10, "accepted": 12}) == code


def test_the_final_report_labels_its_units() -> None:
    report = {**STATUS, "seconds": 2.0, "msgs_per_s": 600.0}
    text = _report_text(report)
    assert "1,200 recipients: 1,190 accepted, 10 failed; 2,400 parts, " in text
    assert "5 possibly sent twice (2 recorded twice)" in text
    assert "600 recipients/s" in text


def test_the_json_says_what_each_count_counts() -> None:
    assert UNITS["accepted"].startswith("recipients")
    assert UNITS["receipts"] == UNITS["part_outcomes"] == "parts"


def test_the_demo_does_not_advise_a_worker_for_receipts_its_dropped_database_never_gets() -> None:
    report = {
        **STATUS,
        "seconds": 2.0,
        "msgs_per_s": 600.0,
        "receipts_awaited": 2400,
        "receivers_bound": 0,
        "verified": 1200,
        "mismatched": 0,
        "missing": 0,
    }
    assert "run a worker" in _report_text(report)
    text = _demo_text(report)
    assert "run a worker" not in text
    assert "delivery receipts not awaited for 2,400 parts: the demo's database is dropped" in text
    assert text.endswith("1,200 recipients got exactly their text once; 0 mismatched, 0 missing")


def test_an_audit_filter_that_leaves_nothing_does_not_say_the_log_is_empty() -> None:
    assert _audit_text([], None) == "the audit log is empty"
    assert _audit_text([], 1) == "no audit entry before id 1 (the oldest ids are the lowest)"
    entry = {"id": 7, "at": "t", "actor": "cli:root", "action": "pause", "subject": None}
    line = _audit_text([{**entry, "details": {}}], 8)
    assert line.split() == ["7", "t", "cli:root", "pause", "-"]


def test_list_says_where_and_when_in_the_areas_zone() -> None:
    rows = [
        {
            "id": 9,
            "kind": "live",
            "state": "running",
            "template": "outage",
            "recipients": 90_100,
            "created_at": "2026-12-06T03:00:00+00:00",
            "departements": ["974"],
        },
        {
            "id": 8,
            "kind": "drill",
            "state": "completed",
            "template": "drill",
            "recipients": 7,
            "created_at": "2026-12-06T03:00:00+00:00",
            "departements": [str(d) for d in range(10, 21)],
        },
    ]
    lines = _list_text(rows, "").splitlines()
    assert lines[0].split()[-2:] == ["created", "areas"]
    assert "2026-12-06 07:00:00 +04 (Indian/Reunion)" in lines[1] and lines[1].endswith(" 974")
    assert "2026-12-06 04:00:00 CET (Europe/Paris)" in lines[2]
    assert lines[2].endswith("10, 11, 12, 13, 14, 15, 16, 17 +3")
    assert "UTC" in _list_text(rows, "UTC").splitlines()[1]


def test_the_report_tables_headers_stay_apart() -> None:
    """Each column's name is set off by a space ("not deliveredawaiting receipt" ran together)."""
    from broadcaster.afteraction.text import COLUMNS, _table

    row = {k: 1 for k, _n in COLUMNS} | {
        "key": "13",
        "name": "Bouches-du-Rhône",
        "failed_by_reason": {},
        "undelivered_by_stat": {},
    }
    head = _table("per area:", [row], "area")[1]
    for _k, name in COLUMNS:
        assert f" {name}" in head
    assert "deliveredawaiting" not in head and " awaiting receipt " in head
