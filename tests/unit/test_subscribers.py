"""CSV rows are validated exactly; synthetic subscribers are realistic and distinct."""

from __future__ import annotations

from collections import Counter

import pytest

from broadcaster.subscribers import Rejected, read_csv, synth_rows, validate_row

KNOWN = {"75", "92", "2A", "971"}


def test_valid_row_is_normalised() -> None:
    row = validate_row(
        {"msisdn": "+33 612345678", "departement": "2a", "commune": "2A004", "lang": "FR"}, KNOWN
    )
    assert row == (33612345678, "2A", "2A004", None, "fr", False)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"msisdn": "0612345678", "departement": "75", "lang": "fr"}, "international"),
        ({"msisdn": "33612a45678", "departement": "75", "lang": "fr"}, "international"),
        ({"msisdn": "33612345678", "departement": "99", "lang": "fr"}, "unknown département"),
        ({"msisdn": "33612345678", "departement": "75", "lang": "french"}, "two-letter"),
        (
            {"msisdn": "33612345678", "departement": "75", "commune": "92012", "lang": "fr"},
            "not in département",
        ),
        (
            {"msisdn": "33612345678", "departement": "75", "lang": "fr", "test_group": "maybe"},
            "test_group",
        ),
    ],
)
def test_invalid_rows_say_why(record: dict[str, str], reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        validate_row(record, KNOWN)


def test_read_csv_reports_line_numbers_and_duplicates() -> None:
    lines = [
        "msisdn,departement,commune,lang,test_group\n",
        "33612345678,75,75056,fr,0\n",
        "not-a-number,75,,fr,0\n",
        "33612345678,92,,en,1\n",
        "33700000001,971,97105,en,yes\n",
    ]
    items = list(read_csv(lines, KNOWN))
    rows = [i for i in items if not isinstance(i, Rejected)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r[0] for r in rows] == [33612345678, 33700000001]
    assert [(r.line, r.reason.split(" ")[0]) for r in rejected] == [(3, "msisdn"), (4, "msisdn")]
    assert "earlier" in rejected[1].reason


def test_read_csv_refuses_a_bad_header() -> None:
    items = list(read_csv(["number,dep\n", "1,2\n"], KNOWN))
    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert "msisdn" in items[0].reason


def test_synth_is_proportional_distinct_and_has_a_test_group() -> None:
    populations = {"75": 2_100_000, "92": 1_600_000, "2A": 160_000, "971": 380_000}
    rows = list(synth_rows(10_000, populations, seed=3))
    assert len(rows) == 10_000
    assert len({r[0] for r in rows}) == 10_000
    per_dep = Counter(r[1] for r in rows)
    assert per_dep["75"] == pytest.approx(10_000 * 2_100 / 4_240, abs=2)
    assert all(33_600_000_000 <= r[0] < 33_800_000_000 for r in rows)
    assert {r[1] for r in rows if r[5]} == set(populations)
    assert all(validate_row(_as_record(r), KNOWN) == r for r in rows[:500])
    assert Counter(r[4] for r in rows)["fr"] > 8_500


def test_synth_batches_do_not_collide() -> None:
    populations = {"75": 1, "92": 1}
    first = {r[0] for r in synth_rows(1_000, populations, seed=1)}
    second = {r[0] for r in synth_rows(1_000, populations, seed=1, start=1_000)}
    assert not first & second


def _as_record(row: tuple[object, ...]) -> dict[str, str]:
    msisdn, dep, commune, cell, lang, test = row
    return {
        "msisdn": str(msisdn),
        "departement": str(dep),
        "commune": str(commune or ""),
        "cell_id": str(cell or ""),
        "lang": str(lang),
        "test_group": "1" if test else "0",
    }
