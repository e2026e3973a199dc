"""Roll-ups: a broadcast's counts kept as counters, moved with each outcome flush (in its
transaction) and each receipt batch (receipts.sql), so that `status`, the console, the API and
/metrics read a handful of rows whatever the size of the broadcast (issue 22).

Per-recipient counts (recorded, accepted, failed, duplicates) depend on a recipient's earlier
parts: each flush reads those of its recipients (one index lookup each, under a per-broadcast
lock) and adds the difference between their state before and after. Not those whose first
outcome in the first claim of their (home) chunk is in the flush (`Fresh`): nothing can be
recorded for them before, as long as nobody claimed the chunk since (checked under the lock).
The lookup was most of the roll-ups' cost in a send without receipts (issue 22).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

BUCKET_BASE_S = 0.01
BUCKET_RATIO = 1.1
"""Receipt delays are counted in buckets: bucket b holds delays from 0.01 s × 1.1^b."""


@dataclass(frozen=True)
class Fresh:
    """Recipients of a flush with nothing recorded before it if their chunks (first claimed by
    the flushing run, home chunks) have not been claimed again since."""

    recipients: set[int]
    chunks: Sequence[int]


NONE_FRESH = Fresh(set(), ())


@dataclass
class Recipient:
    """What a recipient's recorded parts say (delivery_summary's columns for one msisdn)."""

    parts: int = 0
    accepted: set[int] = field(default_factory=set)
    seen: set[int] = field(default_factory=set)
    failed_rows: int = 0
    rows: int = 0

    def add(self, part: int, parts: int, status: int) -> None:
        self.parts = max(self.parts, parts)
        self.rows += 1
        self.seen.add(part)
        if status == 0:
            self.accepted.add(part)
        else:
            self.failed_rows += 1

    def counts(self) -> tuple[int, int, int, int]:
        """(recorded, accepted, failed, duplicate rows) of this recipient."""
        if not self.rows:
            return (0, 0, 0, 0)
        return (
            1,
            int(len(self.accepted) == self.parts),
            int(self.failed_rows > 0),
            self.rows - len(self.seen),
        )


def recipient_delta(
    prior: Iterable[tuple[int, int, int, int]], rows: Iterable[tuple[int, int, int, int]]
) -> tuple[int, int, int, int]:
    """How the per-recipient counts move when `rows` are added to `prior`, both of
    (msisdn, part, parts, status)."""
    state: dict[int, Recipient] = {}
    for msisdn, part, parts, status in prior:
        state.setdefault(msisdn, Recipient()).add(part, parts, status)
    before = [r.counts() for r in state.values()]
    for msisdn, part, parts, status in rows:
        state.setdefault(msisdn, Recipient()).add(part, parts, status)
    after = [r.counts() for r in state.values()]
    moved = [sum(c[i] for c in after) - sum(c[i] for c in before) for i in range(4)]
    return (moved[0], moved[1], moved[2], moved[3])


def outcome_delta(
    prior: Sequence[tuple[int, int, int, int]], rows: Sequence[tuple[Any, ...]]
) -> tuple[int, int, int, int]:
    """`recipient_delta` of outcome rows (deliveries' columns: msisdn, part, parts, status at
    1 to 4), `prior` as there.

    Most rows are a one-part message to a recipient with no other row, recorded once: they are
    counted directly, without a tuple or a `Recipient` each (this runs for every outcome flush:
    a `Recipient` each cost ~9 µs a message at 1M, a 4-tuple each ~0.35). The rows of every
    other recipient (all of them: the test is per recipient) go through `recipient_delta`."""
    known = {p[0] for p in prior}
    per_recipient = Counter([r[1] for r in rows])
    recorded = accepted = 0
    others: list[tuple[int, int, int, int]] = []
    for row in rows:
        msisdn = row[1]
        if row[3] == 1 and per_recipient[msisdn] == 1 and msisdn not in known:
            recorded += 1
            if row[4] == 0:
                accepted += 1
        else:
            others.append((msisdn, row[2], row[3], row[4]))
    moved = recipient_delta(prior, others) if others else (0, 0, 0, 0)
    return (
        moved[0] + recorded,
        moved[1] + accepted,
        moved[2] + recorded - accepted,
        moved[3],
    )


_SMSC_STATUS = itemgetter(6, 4)
"""(smsc, status) of an outcome row (deliveries' columns)."""


async def add_outcomes(
    conn: Conn, broadcast_id: int, rows: Sequence[tuple[Any, ...]], fresh: Fresh = NONE_FRESH
) -> None:
    """Move the counters for outcome rows (deliveries' columns) about to be COPYed, inside the
    caller's transaction, before the COPY (the lookup must not see them); the `fresh`
    recipients are not looked up unless their chunks were claimed again or the broadcast
    reaches present numbers too (a number could then come in two chunks)."""
    await conn.execute(queries["rollup_lock"], broadcast_id)
    skip: set[int] = set()
    if fresh.recipients and await conn.fetchval(
        queries["rollup_chunks_first_claimed"], broadcast_id, list(fresh.chunks)
    ):
        skip = fresh.recipients
    msisdns = sorted({r[1] for r in rows if r[1] not in skip})
    prior = await conn.fetch(queries["rollup_prior_parts"], broadcast_id, msisdns)
    delta = outcome_delta([(p["msisdn"], p["part"], p["parts"], p["status"]) for p in prior], rows)
    await conn.execute(queries["rollup_add_recipients"], broadcast_id, *delta)
    by_outcome = Counter(map(_SMSC_STATUS, rows))
    keys = sorted(by_outcome)
    await conn.execute(
        queries["rollup_add_outcomes"],
        broadcast_id,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [by_outcome[k] for k in keys],
    )


def percentile(buckets: Sequence[tuple[int, int]], q: float) -> float | None:
    """The q-quantile (0-1) of delays counted in (bucket, n), at the bucket's middle."""
    total = sum(n for _b, n in buckets)
    if not total:
        return None
    rank = q * total
    seen = 0
    for bucket, n in sorted(buckets):
        seen += n
        if seen >= rank:
            return BUCKET_BASE_S * BUCKET_RATIO**bucket * math.sqrt(BUCKET_RATIO)
    return BUCKET_BASE_S * BUCKET_RATIO ** sorted(buckets)[-1][0]


def _at_most(estimate: float | None, most: float | None) -> float | None:
    """A percentile estimated at its bucket's middle, never above the largest delay seen (a
    p50 of 14.67 s over a max of 14.05 s), to the millisecond (the buckets are 10% wide: more
    digits say nothing)."""
    if estimate is None:
        return None
    shown = round(estimate, 3)
    if most is not None and shown > most:  # the max, to the millisecond below (never above)
        shown = math.floor(most * 1000) / 1000
    return shown


@dataclass(frozen=True)
class Rolled:
    """A broadcast's roll-ups, as status reads them."""

    recorded: int
    accepted: int
    failed: int
    duplicates: int
    by_outcome: dict[tuple[str, int], int]
    receipts: dict[str, dict[str, float | int | None]]

    @property
    def part_outcomes(self) -> int:
        return sum(self.by_outcome.values())

    def failed_by_status(self) -> dict[int, int]:
        out: Counter[int] = Counter()
        for (_smsc, status), n in self.by_outcome.items():
            if status != 0:
                out[status] += n
        return dict(out.most_common())


async def read(conn: Conn, broadcast_id: int) -> Rolled:
    """The roll-ups of one broadcast: a few rows."""
    people = await conn.fetchrow(queries["rollup_recipients"], broadcast_id)
    outcomes = await conn.fetch(queries["rollup_outcomes"], broadcast_id)
    stats = await conn.fetch(queries["rollup_receipts"], broadcast_id)
    delays: dict[str, list[tuple[int, int]]] = {}
    for r in await conn.fetch(queries["rollup_receipt_delays"], broadcast_id):
        delays.setdefault(r["stat"], []).append((int(r["bucket"]), int(r["n"])))
    receipts: dict[str, dict[str, float | int | None]] = {}
    for r in stats:
        if r["parts"]:
            got = delays.get(r["stat"], [])
            most = r["max_s"]
            receipts[r["stat"]] = {
                "count": int(r["parts"]),
                "p50_s": _at_most(percentile(got, 0.5), most),
                "p95_s": _at_most(percentile(got, 0.95), most),
                "max_s": most,
            }
    return Rolled(
        recorded=int(people["recorded"]) if people else 0,
        accepted=int(people["accepted"]) if people else 0,
        failed=int(people["failed"]) if people else 0,
        duplicates=int(people["duplicates"]) if people else 0,
        by_outcome={(r["smsc"], int(r["status"])): int(r["parts"]) for r in outcomes},
        receipts=receipts,
    )


async def compare(conn: Conn, broadcast_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(roll-ups, full recount from the outcomes), in the same shape: equal when all is well."""
    rolled = await conn.fetchval(queries["rollup_read"], broadcast_id)
    counted = await conn.fetchval(queries["rollup_recount"], broadcast_id)
    return _json(rolled), _json(counted)


def _json(value: Any) -> dict[str, Any]:
    return json.loads(value) if isinstance(value, str) else dict(value)
