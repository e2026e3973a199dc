"""Delivery receipts, appended to `receipts` with COPY in batches (never matched by UPDATE).

Receipts arrive for any broadcast, minutes after its parts were accepted, so the recorder lives
as long as the binds do (a worker, `serve`), not as long as one run. Matching to deliveries is
done when reading, on (smsc, message_id) compared as text.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import asyncpg
import structlog

from broadcaster.smpp.receipts import Receipt
from broadcaster.store import receipts as store

log = structlog.get_logger(__name__)


class ReceiptRecorder:
    """Buffer receipts from the pool (`on_receipt`) and flush them every `interval` seconds."""

    def __init__(self, db: asyncpg.Pool, interval: float = 0.5) -> None:
        self.db = db
        self.interval = interval
        self.recorded = 0
        self._rows: list[tuple[object, ...]] = []
        self._task: asyncio.Task[None] | None = None

    def __call__(self, receipt: Receipt, smsc: str) -> None:
        done = receipt.done_date.replace(tzinfo=UTC) if receipt.done_date else None
        self._rows.append(
            (smsc, receipt.message_id, receipt.stat, receipt.err, done, datetime.now(UTC))
        )

    async def flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            async with self.db.acquire() as conn:
                await store.record(conn, rows)
        except BaseException:
            self._rows[:0] = rows  # keep them for the next flush: a receipt is never dropped
            raise
        self.recorded += len(rows)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except (OSError, asyncpg.PostgresError) as exc:
                log.error("receipts_flush_failed", error=str(exc))
