"""Outcome rows COPYed in the binary format we encode (store/outcome_copy.py) read back exactly
as those asyncpg encodes (real PostgreSQL, the partitioned `deliveries`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest

from broadcaster.store import outcome_copy
from broadcaster.store.chunks import DELIVERY_COLUMNS
from broadcaster.store.database import connect

PARIS = ZoneInfo("Europe/Paris")


@pytest.fixture
async def conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(db_dsn)
    yield connection
    await connection.close()


def _rows(broadcast_id: int) -> list[tuple[object, ...]]:
    t0 = datetime(2026, 12, 6, 3, 0, 0, 123456, tzinfo=UTC)
    later = t0 + timedelta(seconds=1, microseconds=7)
    return [
        (broadcast_id, 33612345678, 1, 1, 0, "00000009D0314C5F", "smsc1", t0, t0, 0),
        (broadcast_id, 33612345678, 1, 1, 0, "00000009D0314C5F", "smsc1", t0, t0, 0),  # twice
        (broadcast_id, 596696000001, 2, 3, 0, "id-é", "orange-fr", t0, later, 7),  # non-ASCII
        (broadcast_id, 262692000002, 1, 1, -1, None, "smsc1", later, later, 2),  # no answer
        (broadcast_id, 33700000003, 1, 1, 0x58, None, "orange-fr", t0, later, None),
        # An aware time in another zone: the same instant; no group (recorded by a tool).
        (broadcast_id, 33700000004, 1, 2, 0, "", "smsc1", later.astimezone(PARIS), t0, None),
        (broadcast_id, 33700000005, 1, 1, 0, "B2", "smsc1", t0, t0, None),
    ]


async def test_our_binary_copy_reads_back_as_asyncpgs(conn: asyncpg.Connection) -> None:
    await conn.copy_records_to_table("deliveries", records=_rows(1), columns=DELIVERY_COLUMNS)
    await conn.copy_to_table(
        "deliveries",
        source=outcome_copy.source(_rows(2)),
        columns=DELIVERY_COLUMNS,
        format="binary",
    )
    read = (
        "SELECT msisdn, part, parts, status, message_id, smsc, submitted_at, answered_at,"
        " group_no FROM deliveries WHERE broadcast_id = $1 ORDER BY ctid"
    )
    theirs = [tuple(r) for r in await conn.fetch(read, 1)]
    ours = [tuple(r) for r in await conn.fetch(read, 2)]
    assert len(ours) == 7
    assert ours == theirs
    assert ours[2][4] == "id-é" and ours[3][3] == -1 and ours[3][4] is None
    assert [r[8] for r in ours] == [0, 0, 7, 2, None, None, None]
    assert ours[0][6] == datetime(2026, 12, 6, 3, 0, 0, 123456, tzinfo=UTC)


def test_a_naive_time_or_a_non_text_id_is_refused_not_guessed() -> None:
    naive = datetime(2026, 12, 6, 3, 0)
    with pytest.raises(TypeError, match="aware datetime"):
        outcome_copy.encode([(1, 336, 1, 1, 0, "A1", "s", naive, naive, 0)])
    aware = naive.replace(tzinfo=UTC)
    with pytest.raises(TypeError, match="text"):
        outcome_copy.encode([(1, 336, 1, 1, 0, b"A1", "s", aware, aware, 0)])
