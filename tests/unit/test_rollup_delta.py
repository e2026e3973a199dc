"""The per-recipient counts an outcome flush adds: the direct count of one-part, first-time
recipients (`outcome_delta`, on rows as the flush has them) agrees with counting every
recipient's parts (random flushes, pure)."""

from __future__ import annotations

import random

from broadcaster.store.rollups import Recipient, outcome_delta, recipient_delta

Row = tuple[int, int, int, int]


def _by_recipients(prior: list[Row], rows: list[Row]) -> tuple[int, ...]:
    """The reference: every recipient through `Recipient`, before and after."""

    def totals(all_rows: list[Row]) -> list[int]:
        state: dict[int, Recipient] = {}
        for msisdn, part, parts, status in all_rows:
            state.setdefault(msisdn, Recipient()).add(part, parts, status)
        return [sum(r.counts()[i] for r in state.values()) for i in range(4)]

    before, after = totals(prior), totals(prior + rows)
    return tuple(a - b for a, b in zip(after, before, strict=True))


def _rows(rng: random.Random, n: int) -> list[Row]:
    out: list[Row] = []
    for _ in range(n):
        parts = rng.choice((1, 1, 1, 2, 3))
        status = rng.choice((0, 0, 0, 0x58, 0x0B))
        out.append((rng.randrange(20), rng.randrange(1, parts + 1), parts, status))
    return out


def test_direct_counts_equal_the_recipient_by_recipient_count() -> None:
    rng = random.Random(22)
    for _ in range(500):
        prior, rows = _rows(rng, rng.randrange(0, 15)), _rows(rng, rng.randrange(0, 30))
        want = _by_recipients(prior, rows)
        assert recipient_delta(prior, rows) == want
        as_flushed = [
            (9, m, part, parts, status, "A1", "s", None, None) for m, part, parts, status in rows
        ]
        assert outcome_delta(prior, as_flushed) == want


def test_one_part_first_time_recipients() -> None:
    rows = [(1, 1, 1, 0), (2, 1, 1, 0x58), (3, 1, 1, 0)]
    assert recipient_delta([], rows) == (3, 2, 1, 0)
    assert recipient_delta([(3, 1, 1, 0)], [(3, 1, 1, 0)]) == (0, 0, 0, 1)  # recorded twice
    flushed = [(9, m, part, parts, status, "A1", "s") for m, part, parts, status in rows]
    assert outcome_delta([], flushed) == (3, 2, 1, 0)
    assert outcome_delta([(3, 1, 1, 0)], flushed[2:]) == (0, 0, 0, 1)
