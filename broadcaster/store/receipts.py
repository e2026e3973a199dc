"""Delivery receipts, appended with COPY (never matched by UPDATE: see `receipt_summary`)."""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.store.database import Conn

RECEIPT_COLUMNS = ("smsc", "message_id", "stat", "err", "done_at", "received_at")


async def record(conn: Conn, rows: Sequence[tuple[object, ...]]) -> None:
    """Append receipts: rows of `RECEIPT_COLUMNS`."""
    await conn.copy_records_to_table("receipts", records=rows, columns=RECEIPT_COLUMNS)
