"""CSV rows are validated exactly; synthetic subscribers are realistic and distinct."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from broadcaster.domain.msisdn import MobileNumbers
from broadcaster.subscribers import (
    AreaCounter,
    ImportRules,
    Rejected,
    SubscriberRow,
    copy_batches,
    read_csv,
    synth_batches,
    synth_rows,
    validate_row,
)

KNOWN = frozenset({"75", "92", "2A", "971"})
RULES = ImportRules(KNOWN, MobileNumbers("FR"))


def test_valid_row_is_normalised() -> None:
    row = validate_row(
        {"msisdn": "+33 612345678", "departement": "2a", "commune": "2A004", "lang": "FR"}, RULES
    )
    assert row == (33612345678, "2A", "2A004", None, "fr", False)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"msisdn": "0112345678", "departement": "75", "lang": "fr"}, "not a mobile"),
        ({"msisdn": "33612a45678", "departement": "75", "lang": "fr"}, "not a phone number"),
        ({"msisdn": "33700000001", "departement": "75", "lang": "fr"}, "no range in use"),
        ({"msisdn": "33612345678", "departement": "99", "lang": "fr"}, "unknown département"),
        ({"msisdn": "33612345678", "departement": "75", "lang": "french"}, "two-letter"),
        ({"msisdn": "33612345678", "departement": "75", "lang": "xx"}, "ISO 639-1"),
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
        validate_row(record, RULES)


def test_read_csv_reports_line_numbers_and_duplicates() -> None:
    lines = [
        "msisdn,departement,commune,lang,test_group\n",
        "33612345678,75,75056,fr,0\n",
        "not-a-number,75,,fr,0\n",
        "33612345678,92,,en,1\n",
        "33730000001,971,97105,en,yes\n",
    ]
    items = list(read_csv(lines, RULES))
    rows = [i for i in items if not isinstance(i, Rejected)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r[0] for r in rows] == [33612345678, 33730000001]
    assert [(r.line, r.reason.split(" ")[0]) for r in rejected] == [(3, "msisdn"), (4, "msisdn")]
    assert "earlier" in rejected[1].reason


def test_numbers_are_stored_as_the_mobiles_they_are_or_refused() -> None:
    lines = [
        "msisdn,departement,lang\n",
        "612345678,75,fr\n",  # a spreadsheet's leftover of 0612345678
        "+330612345682,75,fr\n",
        "06 12 34 56 78,92,fr\n",  # the same subscriber as line 2
        "0690123456,971,fr\n",  # Guadeloupe, national
        "590690123457,971,fr\n",  # Guadeloupe, international
        "596696123456,971,fr\n",  # Martinique
        "262692123456,971,fr\n",  # La Réunion
        "33112345678,75,fr\n",
        "33900000001,75,fr\n",
    ]
    items = list(read_csv(lines, RULES))
    rows = [i for i in items if not isinstance(i, Rejected)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r[0] for r in rows] == [
        33612345678,
        33612345682,
        590690123456,
        590690123457,
        596696123456,
        262692123456,
    ]
    assert [(r.line, r.reason) for r in rejected] == [
        (4, "msisdn 33612345678 appears earlier in the file"),
        (9, "msisdn '33112345678' reads as +33112345678, a fixed-line number, not a mobile one"),
        (10, "msisdn '33900000001' reads as +33900000001, a VoIP number, not a mobile one"),
    ]


def test_languages_are_iso_639_1_codes_with_or_without_a_template() -> None:
    lines = ["msisdn,departement,lang\n", "33612345678,75,xx\n", "33612345679,75,br\n"]
    items = list(read_csv(lines, RULES))
    assert items == [
        Rejected(
            2,
            "language 'xx' is not a two-letter ISO 639-1 language code (fr, en, ar, ...)",
            "33612345678,75,xx",
        ),
        (33612345679, "75", None, None, "br", False),  # Breton: no template, a language
    ]


def test_read_csv_refuses_a_bad_header() -> None:
    items = list(read_csv(["number,dep\n", "1,2\n"], RULES))
    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert "msisdn" in items[0].reason
    # The one rejection stands for the whole file: it says so, and what a header names.
    items = list(read_csv(["msisdn,departement,language\n", "33612345678,75,fr\n"], RULES))
    assert [i.reason for i in items if isinstance(i, Rejected)] == [
        "header lacks column(s) lang (a header names msisdn, departement, lang, optionally "
        "commune, cell_id, test_group): no row was read"
    ]
    # A file separated by semicolons (a French spreadsheet's CSV) is told what to change.
    items = list(read_csv(["msisdn;departement;lang\n", "33612345678;75;fr\n"], RULES))
    (refused,) = [i.reason for i in items if isinstance(i, Rejected)]
    assert refused.startswith("header lacks column(s) msisdn, departement, lang; its fields ")
    assert "seem separated by ';', a tab or '|': the file must be comma-separated" in refused


def test_synth_is_proportional_distinct_and_has_a_test_group() -> None:
    populations = {"75": 2_100_000, "92": 1_600_000, "2A": 160_000, "971": 380_000}
    rows = list(synth_rows(10_000, populations, seed=3))
    assert len(rows) == 10_000
    assert len({r[0] for r in rows}) == 10_000
    per_dep = Counter(r[1] for r in rows)
    assert per_dep["75"] == pytest.approx(10_000 * 2_100 / 4_240, abs=2)
    assert all(33_600_000_000 <= r[0] < 33_800_000_000 for r in rows)
    assert {r[1] for r in rows if r[5]} == set(populations)
    assert all(validate_row(_as_record(r), RULES) == r for r in rows[:500])
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


# --- fast paths, COPY batches and area counts ----------------------------------------------------

POPULATIONS = {"75": 2_100_000, "92": 1_600_000, "2A": 160_000, "971": 380_000}


def _parse_copy(data: bytes) -> list[tuple[int, str, str | None, str | None, str, bool]]:
    rows = []
    for line in data.decode().splitlines():
        m, dep, commune, cell, lang, flag = line.split("\t")
        rows.append(
            (
                int(m),
                dep,
                None if commune == "\\N" else commune,
                None if cell == "\\N" else cell,
                lang,
                flag == "t",
            )
        )
    return rows


def test_fast_path_agrees_with_validate_row() -> None:
    lines = [
        "lang,msisdn,departement,commune,cell_id,test_group\n",
        "fr,33612345678,75,75056,C1,0\n",  # canonical: fast path
        "FR,+33 612345679, 92 ,,c.2:x-y,YES\n",  # normalised by validate_row
        "en,33612345680,2A,2A004,,true\n",
        "de,33612345681,971,97105,,\n",
        "es,33612345682,75\n",  # short row: missing fields are empty
    ]
    items = list(read_csv(lines, RULES))
    assert items == [
        (33612345678, "75", "75056", "C1", "fr", False),
        (33612345679, "92", None, "c.2:x-y", "fr", True),
        (33612345680, "2A", "2A004", None, "en", True),
        (33612345681, "971", "97105", None, "de", False),
        (33612345682, "75", None, None, "es", False),
    ]
    rows = list(synth_rows(2_000, POPULATIONS, seed=4))
    assert all(validate_row(_as_record(r), RULES) == r for r in rows)
    csv_lines = ["msisdn,departement,commune,cell_id,lang,test_group\n"]
    csv_lines += [",".join(_as_record(r).values()) + "\n" for r in rows]
    assert list(read_csv(csv_lines, RULES)) == rows


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("336123456789,75,75056,,fr,0,extra", "more fields"),
        ("０６12345678,75,,,fr,0", "not a phone number"),  # full-width digits
        ("612345678,75,,,xx,0", "'xx' is not a two-letter ISO 639-1 language code"),
        ("33112345678,75,,,fr,0", "+33112345678, a fixed-line number, not a mobile one"),
        ("33612345678,75,75056,,fr,2", "test_group"),
        ("33612345678,75,7505,,fr,0", "INSEE"),
        ("33612345678,75,,cell id,fr,0", "cell_id"),
    ],
)
def test_rejections_keep_their_reason(line: str, reason: str) -> None:
    header = "msisdn,departement,commune,cell_id,lang,test_group\n"
    items = list(read_csv([header, line + "\n"], RULES))
    assert len(items) == 1
    assert isinstance(items[0], Rejected)
    assert reason in items[0].reason
    assert items[0].line == 2


def test_header_with_spaces_is_read_and_repeated_columns_refused() -> None:
    items = list(read_csv(["msisdn, departement, lang\n", "33612345678,75,fr\n"], RULES))
    assert items == [(33612345678, "75", None, None, "fr", False)]
    items = list(read_csv(["msisdn,departement,lang,lang\n", "1,2,3,4\n"], RULES))
    assert isinstance(items[0], Rejected)
    assert "repeats" in items[0].reason


def test_copy_batches_format_rejections_and_counts() -> None:
    rejected: list[Rejected] = []
    counter = AreaCounter()
    bad = Rejected(3, "bad", "x")
    rows: list[SubscriberRow | Rejected] = [
        (33612345678, "75", "75056", "C1", "fr", False),
        bad,
        (33612345679, "75", None, None, "en", True),
        (33612345680, "92", "92012", "C1", "fr", False),
    ]
    batches = list(copy_batches(rows, rejected.append, counter, batch_rows=2))
    assert [b.rows for b in batches] == [2, 1]
    assert batches[0].data == (
        b"33612345678\t75\t75056\tC1\tfr\tf\n33612345679\t75\t\\N\t\\N\ten\tt\n"
    )
    assert rejected == [bad]
    assert sorted(counter.rows()) == sorted(
        [
            ("commune", "75", "75056", "fr", False, 1),
            ("commune", "92", "92012", "fr", False, 1),
            ("cell", "75", "C1", "fr", False, 1),
            ("cell", "92", "C1", "fr", False, 1),
            ("departement", "75", "", "fr", False, 1),
            ("departement", "75", "", "en", True, 1),
            ("departement", "92", "", "fr", False, 1),
        ]
    )


def test_synth_batches_are_synth_rows_and_count_them() -> None:
    counter = AreaCounter()
    batches = list(synth_batches(7_000, POPULATIONS, seed=8, counter=counter, batch_rows=1_000))
    rows = [r for b in batches for r in _parse_copy(b.data)]
    assert rows == list(synth_rows(7_000, POPULATIONS, seed=8))
    assert sum(b.rows for b in batches) == 7_000
    assert max(b.rows for b in batches) <= 1_000
    expected = AreaCounter()
    expected.add_rows(rows)
    assert sorted(counter.rows()) == sorted(expected.rows())
    whole = sum(n for kind, *_, n in counter.rows() if kind == "departement")
    assert whole == 7_000
    per_dep = [r for r in rows if r[1] == "92"]
    assert [r[0] for r in per_dep] == sorted(r[0] for r in per_dep)  # msisdn order


def test_synth_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="between 0 and"):
        next(synth_batches(10, POPULATIONS, start=199_999_995))


def test_a_row_wider_than_a_partial_header_is_refused() -> None:
    # The header lacks commune, cell_id and test_group: six fields are three too many, even
    # though six is the width of a full header.
    items = list(read_csv(["msisdn,departement,lang\n", "33612345678,75,fr,75056,C1,1\n"], RULES))
    assert items == [
        Rejected(2, "more fields than the header has columns", "33612345678,75,fr,75056,C1,1")
    ]


_TRICKY = {
    "msisdn": [
        "33612345678",
        "+33612345679",
        "33 612345680",
        "0612345678",
        "612345678",
        "+330612345682",
        "0690123456",
        "590690123456",
        "262692123456",
        "687791234",
        "33112345678",
        "33700000001",
        "1234567",
        "٣٣٦١٢٣٤٥٦٧٨",
    ],
    "departement": ["75", "2a", "2A", "971", "99", " 92 ", ""],
    "commune": ["", "75056", "2a004", "2A004", "97105", "7505", "92012"],
    "cell_id": ["", "C1", "c.2:x-y", "cell id", "a" * 32, "a" * 33],
    "lang": ["fr", "FR", "en", "f", "fre", "", "xx", "br", "ZU"],
    "test_group": ["", "0", "1", "true", "t", "yes", "N", "maybe"],
}


@pytest.mark.parametrize("seed", range(5))
def test_every_row_is_read_as_validate_row_reads_it(seed: int) -> None:
    """Whichever path a row takes (canonical fast path or not), the outcome is validate_row's."""
    rng = random.Random(seed)
    for _ in range(300):
        header = [
            c for c in _TRICKY if c in ("msisdn", "departement", "lang") or rng.random() < 0.7
        ]
        rng.shuffle(header)
        record = {c: rng.choice(_TRICKY[c]) for c in header}
        line = ",".join(record[c] for c in header) + "\n"
        items = list(read_csv([",".join(header) + "\n", line], RULES))
        try:
            expected: list[SubscriberRow | Rejected] = [validate_row(record, RULES)]
        except ValueError as exc:
            expected = [Rejected(2, str(exc), line.rstrip("\n"))]
        assert items == expected, (header, record)
