"""Outcome rows as PostgreSQL's binary COPY, encoded here rather than by asyncpg.

Every part sent is one row of `deliveries` (`chunks.DELIVERY_COLUMNS`). asyncpg's
`copy_records_to_table` spent ~2 µs of the sending process's CPU a row, most of it on the two
timestamps (each converted to UTC and subtracted from 2000-01-01 as datetimes); here a row is
one `struct` pack, and each distinct time (parts written or answered together share theirs) is
converted once: ~0.8 µs (issue 22: the sending process is the critical path of a broadcast).
The rows read back the same (tests/integration/test_outcome_copy.py).

The format (PostgreSQL's documentation, "COPY", binary format): a signature, flags and header
extension length; per row the field count, then each field as its length (-1: NULL) and its
bytes in network order (int8, int2, int4; text as UTF-8; timestamptz as microseconds since
2000-01-01 UTC); a trailer of -1.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack("!ii", 0, 0)
TRAILER = struct.pack("!h", -1)
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_FIELDS = 10
_HEAD = "!hiqiqihihii"
"""Field count; broadcast_id int8, msisdn int8, part int2, parts int2, status int4 (each with
its length)."""
_NULL = -1
"""A field's length for NULL (an outcome without its group: rows of tests and tools)."""
_structs: dict[tuple[int, int, bool], struct.Struct] = {}


def _row_struct(message_id_length: int, smsc_length: int, group: bool) -> struct.Struct:
    """The layout of a row whose message_id (-1: NULL) and smsc have these lengths in octets,
    with its group_no (int4) or without (NULL: its length -1 alone)."""
    key = (message_id_length, smsc_length, group)
    layout = _structs.get(key)
    if layout is None:
        message_id = "i" if message_id_length < 0 else f"i{message_id_length}s"
        group_no = "ii" if group else "i"
        layout = _structs[key] = struct.Struct(f"{_HEAD}{message_id}i{smsc_length}siqiq{group_no}")
    return layout


def encode(rows: Sequence[tuple[object, ...]]) -> bytes:
    """Rows of `chunks.DELIVERY_COLUMNS` (aware datetimes; group_no may be None) as one binary
    COPY stream."""
    out = [SIGNATURE]
    append = out.append
    micros: dict[datetime, int] = {}
    last_submitted: object = None
    last_answered: object = None
    submitted_us = answered_us = 0
    last_smsc: object = None
    smsc_octets = b""
    for (
        broadcast_id, msisdn, part, parts, status, message_id, smsc, submitted, answered, group_no
    ) in rows:  # fmt: skip
        if submitted is not last_submitted:
            last_submitted = submitted
            submitted_us = _micros(micros, submitted)
        if answered is not last_answered:
            last_answered = answered
            answered_us = _micros(micros, answered)
        if smsc is not last_smsc:
            last_smsc = smsc
            smsc_octets = _text(smsc)
        grouped = group_no is not None
        if message_id is None:
            layout = _row_struct(-1, len(smsc_octets), grouped)
            head = (
                _FIELDS, 8, broadcast_id, 8, msisdn, 2, part, 2, parts, 4, status, -1,
                len(smsc_octets), smsc_octets, 8, submitted_us, 8, answered_us,
            )  # fmt: skip
            append(layout.pack(*head, 4, group_no) if grouped else layout.pack(*head, _NULL))
        elif grouped:  # every outcome of a run
            octets = _text(message_id)
            append(
                _row_struct(len(octets), len(smsc_octets), True).pack(
                    _FIELDS, 8, broadcast_id, 8, msisdn, 2, part, 2, parts, 4, status,
                    len(octets), octets, len(smsc_octets), smsc_octets,
                    8, submitted_us, 8, answered_us, 4, group_no,
                )
            )  # fmt: skip
        else:
            octets = _text(message_id)
            append(
                _row_struct(len(octets), len(smsc_octets), False).pack(
                    _FIELDS, 8, broadcast_id, 8, msisdn, 2, part, 2, parts, 4, status,
                    len(octets), octets, len(smsc_octets), smsc_octets,
                    8, submitted_us, 8, answered_us, _NULL,
                )
            )  # fmt: skip
    append(TRAILER)
    return b"".join(out)


def _text(value: object) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"an outcome's smsc and message_id are text, not {value!r}")
    return value.encode()


def _micros(cache: dict[datetime, int], when: object) -> int:
    """Microseconds since 2000-01-01 UTC of an aware datetime, kept for the batch."""
    if not isinstance(when, datetime) or when.tzinfo is None:
        raise TypeError(f"an outcome's time must be an aware datetime, not {when!r}")
    us = cache.get(when)
    if us is None:
        us = cache[when] = (when - _PG_EPOCH) // _MICROSECOND
    return us


async def source(rows: Sequence[tuple[object, ...]]) -> AsyncIterator[bytes]:
    """`encode` as the async iterable `copy_to_table` reads without a thread (a file-like
    source is read through the executor)."""
    yield encode(rows)
