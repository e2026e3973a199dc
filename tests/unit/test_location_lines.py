"""Location lines checked in Python before their COPY: the SIM's country, each refusal's reason,
and the COPY row (a naive time is UTC; every time goes with its offset)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster.store.locations import Ingest, _batches, parse_line, sim_country

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
CELLS = {"IN1", "S75-1-0"}


@pytest.mark.parametrize(
    ("msisdn", "mcc", "country"),
    [
        ("4915100000001", "", "DE"),  # +49
        ("447700900001", "234", "GB"),  # the MCC
        ("447700900001", "208", "FR"),  # a French SIM roaming with a British number
        ("33612345678", "", "FR"),
        ("12025550123", "", "US"),  # +1: the first of NANP's regions
        ("35312345678", "999", "IE"),  # an MCC not in the table: the number's code (+353)
        ("99912345678", "", "ZZ"),  # no such calling code
    ],
)
def test_the_sim_country_from_the_mcc_else_the_calling_code(
    msisdn: str, mcc: str, country: str
) -> None:
    assert sim_country(msisdn, mcc) == country


def test_a_good_line_and_every_refusal() -> None:
    assert parse_line("33612345678,IN1,2026-12-06T08:00:00", NOW, CELLS) == (
        33612345678, "IN1", datetime(2026, 12, 6, 8, tzinfo=UTC), "FR"
    )  # fmt: skip
    assert parse_line(" 4915100000001 , S75-1-0 , 2026-12-06T09:00:00+01:00 , 262011234567890",
                      NOW, CELLS)[3] == "DE"  # fmt: skip
    refused = {
        "33612345678,IN1": "expected msisdn,cell_id,seen_at",
        "+33612345678,IN1,2026-12-06T08:00:00Z": "not an international number",
        "0612345678,IN1,2026-12-06T08:00:00Z": "not an international number",
        "33612345678,NOPE,2026-12-06T08:00:00Z": "unknown cell 'NOPE'",
        "33612345678,bad cell!,2026-12-06T08:00:00Z": "is malformed",
        "33612345678,IN1,yesterday": "not an ISO 8601 time",
        "33612345678,IN1,2026-12-06T10:00:00Z": "in the future",
        "33612345678,IN1,2026-12-06T08:00:00Z,20": "neither an MCC",
    }
    for line, reason in refused.items():
        answer = parse_line(line, NOW, CELLS)
        assert isinstance(answer, str) and reason in answer, (line, answer)


def test_batches_are_copy_text_and_rejects_keep_their_line_numbers() -> None:
    seen = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0, tzinfo=None)
    lines = [
        "msisdn,cell_id,seen_at",
        f"33612345678,IN1,{seen.isoformat()}",
        "broken",
        f"33612345679,IN1,{seen.isoformat()}",
        f"4915100000001,S75-1-0,{seen.isoformat()}Z,262",
    ]
    result = Ingest()
    batches = list(_batches(lines, result, 2, CELLS))
    utc = seen.replace(tzinfo=UTC).isoformat()
    assert batches == [
        f"33612345678\tIN1\t{utc}\tFR\n33612345679\tIN1\t{utc}\tFR\n".encode(),
        f"4915100000001\tS75-1-0\t{utc}\tDE\n".encode(),
    ]
    assert (result.read, result.written) == (4, 3)
    assert [(n, reason.split()[0]) for n, _line, reason in result.rejects] == [(3, "expected")]
