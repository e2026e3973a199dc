"""Delivery receipts, each matched to the part it answers as it is recorded.

A batch is COPYed into a session's staging table, then one set-based statement
(`receipts_match` in sql/queries/receipts.sql) finds for each receipt the accepted part it
answers (but those the sending process matched in memory, which come with their part:
engine/sent_parts.py) and appends it to `receipts` with that part, or with why it names none
('unmatched', 'ambiguous'), and counts it in the roll-ups if it is the first copy stored.
Nothing is matched at read time: `status`, reports and drills read the stored answer. One
batch at a time across processes (`receipts_lock`), so that each sees the copies every batch
before it stored, numbered in that order (`batch`: the recounts take the same copy)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

RECEIPT_COLUMNS = (
    "smsc",
    "message_id",
    "text_message_id",
    "reported_msisdn",
    "stat",
    "err",
    "done_epoch",
    "received_epoch",
)
"""What the SMSC said, as both shapes below start: times in seconds since 1970 (float)."""
STAGED_COLUMNS = (*RECEIPT_COLUMNS, "first_key", "more_keys")
"""A receipt as `record` takes it: its keys as the first and a list of the others (None:
none): cheap for COPY to encode, one row per part sent (`receipts_stage`; `staged` makes one
from datetimes and a list of keys)."""
MATCHED_COLUMNS = (
    *RECEIPT_COLUMNS,
    "broadcast_id",
    "msisdn",
    "part",
    "submitted_epoch",
    "departement",
)
"""A receipt matched by the process that sent its part: `RECEIPT_COLUMNS`, then the part it
answers, when that part was submitted and the recipient's home département (None: looked
up)."""
CLOCK_SLACK_S = 5.0
"""A receipt may name a submission recorded up to this many seconds after it was received (the
submitting and the receiving process clocks may differ a little)."""


def staged(
    smsc: str,
    message_id: str,
    text_message_id: str | None,
    reported_msisdn: str | None,
    stat: str,
    err: str | None,
    done_at: datetime | None,
    received_at: datetime,
    keys: Sequence[str],
) -> tuple[object, ...]:
    """A row of `STAGED_COLUMNS` (aware datetimes; the keys of `domain.receipt_ids.keys`)."""
    return (
        smsc,
        message_id,
        text_message_id,
        reported_msisdn,
        stat,
        err,
        None if done_at is None else done_at.timestamp(),
        received_at.timestamp(),
        *key_columns(keys),
    )


def key_columns(keys: Sequence[str]) -> tuple[str | None, list[str] | None]:
    """`first_key` and `more_keys` of a receipt's keys."""
    if not keys:
        return None, None
    return keys[0], list(keys[1:]) or None


@dataclass(frozen=True, slots=True)
class Matched:
    """A receipt matched through one key: the evidence of an SMSC's id form (`auto`)."""

    smsc: str
    message_id: str
    text_message_id: str | None
    key: str


@dataclass(frozen=True, slots=True)
class Recorded:
    """What `record` did with a batch: the evidence of id forms, and the receipts held back."""

    matched: list[Matched]
    """For the SMSCs being learnt, the receipts matched and the key that matched each."""
    held: list[tuple[object, ...]]
    """Receipts (rows of `STAGED_COLUMNS`) that found no part yet, younger than the hold: not
    stored, to be tried again (their submission may not be recorded yet)."""


async def record(
    conn: Conn,
    rows: Sequence[tuple[object, ...]],
    learning: Sequence[str] = (),
    hold_s: float = 0.0,
    matched: Sequence[tuple[object, ...]] = (),
) -> Recorded:
    """Match and append receipts (rows of `STAGED_COLUMNS`) in one transaction, but those that
    name no recorded part and were received less than `hold_s` seconds ago (returned, held);
    append with them those `matched` already (rows of `MATCHED_COLUMNS`). Matched after every
    batch before it, in any process (`receipts_lock`, taken once the batch is staged in this
    session's table; read committed, so that the match sees what the wait was for): a
    receipt's copies are counted once."""
    async with conn.transaction(isolation="read_committed"):
        await conn.execute(queries["receipts_stage"])
        if rows:
            await conn.copy_records_to_table("receipts_in", records=rows, columns=STAGED_COLUMNS)
        if matched:
            await conn.copy_records_to_table(
                "receipts_in", records=matched, columns=MATCHED_COLUMNS
            )
        await conn.execute(queries["receipts_lock"])
        found = await conn.fetch(queries["receipts_match"], CLOCK_SLACK_S, list(learning), hold_s)
    return Recorded(
        matched=[
            Matched(r["smsc"], r["message_id"], r["text_message_id"], r["key"])
            for r in found
            if not r["held"]
        ],
        held=[_staged_record(r, r["keys"]) for r in found if r["held"]],
    )


async def take_back(conn: Conn, smsc: str, since: datetime) -> list[tuple[object, ...]]:
    """Take back (delete) the receipts of `smsc` recorded since `since`, to be recorded again
    with the SMSC's id form now known: rows of `STAGED_COLUMNS` but the two of keys. (In the
    caller's transaction, after every batch before it: `receipts_lock`.)"""
    await conn.execute(queries["receipts_lock"])
    rows = await conn.fetch(queries["receipts_take_back"], smsc, since)
    named = sorted({int(row["broadcast_id"]) for row in rows if row["broadcast_id"] is not None})
    if named:  # their receipt roll-ups, without the receipts taken back
        await conn.execute(queries["rollup_receipts_forget"], named)
        await conn.execute(queries["rollup_receipts_recount"], named)
    return [_staged_record(row, ())[:-2] for row in rows]


def _staged_record(row: asyncpg.Record, keys: Sequence[str]) -> tuple[object, ...]:
    """A row of `STAGED_COLUMNS` from a receipt read back (`receipts_match`, `_take_back`)."""
    return staged(
        row["smsc"],
        row["message_id"],
        row["text_message_id"],
        row["reported_msisdn"],
        row["stat"],
        row["err"],
        row["done_at"],
        row["received_at"],
        keys,
    )


async def unattributed(
    conn: Conn, since: datetime, smscs: Sequence[str] | None = None
) -> dict[str, int]:
    """Receipts received since `since` (from `smscs`, default every SMSC) that name no part
    ('unmatched') or two ('ambiguous').

    Without parallel workers: the partial index holds only these few receipts, but the planner
    (no statistics on a month's partition filling up) expects a sixth of all of them and
    launched two workers for every `status`: 10-20 ms at 1M receipts, 22 at 2M, growing with
    the partition, for 0.2 ms of work."""
    async with conn.transaction():
        await conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        rows = await conn.fetch(
            queries["receipts_unattributed"], since, None if smscs is None else list(smscs)
        )
    counts = {"unmatched": 0, "ambiguous": 0}
    counts.update({row["match"]: int(row["n"]) for row in rows})
    return counts
