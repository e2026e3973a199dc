"""Delivery receipts, matched to their parts and appended in batches (never matched by UPDATE).

Receipts arrive for any broadcast, minutes after its parts were accepted, so the recorder lives
as long as the binds do (a worker, `serve`), not as long as one run. Each receipt is looked up
under the keys its SMSC's id form allows (`SmscConfig.receipt_ids`, domain/receipt_ids.py). An
SMSC set to `auto` is tried in every form until its receipts show which one it uses; then the
form is logged, kept for the life of the process, and the receipts recorded while it was being
found out are matched again under it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import structlog

from broadcaster.domain.receipt_ids import forms_of, keys
from broadcaster.settings import SmscConfig
from broadcaster.smpp.receipts import Receipt
from broadcaster.store import receipts as store
from broadcaster.store.database import Conn

log = structlog.get_logger(__name__)

EVIDENCE = 20
"""Receipts matched through exactly one form before an `auto` SMSC's form is settled..."""
AGREEMENT = 0.95
"""...and the share of them that must agree on it."""
HOLD_S = 3.0
"""A receipt naming no part yet is offered again at the next flushes for this long before it
is stored as unmatched: its part's outcome may not be committed yet (receipts 200 ms after
the submission beat a loaded outcome flush: 1-5% were lost as unmatched at 100k-1M)."""


class IdForms:
    """Each SMSC's receipt id form: configured, or found out from the evidence (`auto`)."""

    def __init__(self, smscs: Sequence[SmscConfig]) -> None:
        self.forms: dict[str, str] = {s.name: s.receipt_ids for s in smscs}
        self.votes: dict[str, Counter[str]] = {}
        self.since: dict[str, datetime] = {}
        """When each `auto` SMSC's first receipt came: what to match again once settled."""

    def form(self, smsc: str) -> str:
        return self.forms.get(smsc, "auto")

    def learning(self) -> list[str]:
        return [name for name, form in self.forms.items() if form == "auto"]

    def seen(self, smsc: str, now: datetime) -> None:
        if self.form(smsc) == "auto":
            self.forms.setdefault(smsc, "auto")
            self.since.setdefault(smsc, now)

    def weigh(self, matched: Sequence[store.Matched]) -> list[str]:
        """Count the evidence; the SMSCs whose form this batch settled."""
        settled: list[str] = []
        for m in matched:
            forms = forms_of(m.key, (m.message_id, m.text_message_id))
            if len(forms) == 1 and self.form(m.smsc) == "auto":
                self.votes.setdefault(m.smsc, Counter()).update(forms)
        for smsc, votes in self.votes.items():
            (best, count), total = votes.most_common(1)[0], sum(votes.values())
            if self.form(smsc) == "auto" and total >= EVIDENCE and count >= AGREEMENT * total:
                self.forms[smsc] = best
                settled.append(smsc)
                log.info("receipt_id_form_detected", smsc=smsc, form=best, evidence=dict(votes))
        return settled


class ReceiptRecorder:
    """Buffer receipts from the pool (`on_receipt`) and flush them every `interval` seconds."""

    def __init__(
        self, db: asyncpg.Pool, smscs: Sequence[SmscConfig] = (), interval: float = 0.5
    ) -> None:
        self.db = db
        self.interval = interval
        self.recorded = 0
        self.ids = IdForms(smscs)
        self._rows: list[tuple[object, ...]] = []
        self._task: asyncio.Task[None] | None = None

    def __call__(self, receipt: Receipt, smsc: str) -> None:
        now = datetime.now(UTC)
        self.ids.seen(smsc, now)
        done = receipt.done_date.replace(tzinfo=UTC) if receipt.done_date else None
        ids = (receipt.message_id, receipt.text_message_id)
        self._rows.append(
            (
                smsc,
                receipt.message_id,
                receipt.text_message_id,
                receipt.source,
                receipt.stat,
                receipt.err,
                done,
                now,
                keys(ids, self.ids.form(smsc)),
            )
        )

    async def flush(self, final: bool = False) -> None:
        """Record the receipts received so far; those naming no part yet are kept for the
        next flushes for up to HOLD_S (their part's outcome may be a flush behind), unless
        `final` (stopping: every outcome of this process is recorded by now)."""
        rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            async with self.db.acquire() as conn:
                hold = 0.0 if final else HOLD_S
                recorded = await store.record(conn, rows, self.ids.learning(), hold)
                for smsc in self.ids.weigh(recorded.matched):
                    await self._match_again(conn, smsc)
        except BaseException:
            self._rows[:0] = rows  # keep them for the next flush: a receipt is never dropped
            raise
        self._rows[:0] = recorded.held
        self.recorded += len(rows) - len(recorded.held)

    async def _match_again(self, conn: Conn, smsc: str) -> None:
        """Once an SMSC's form is known, match again its receipts recorded while it was not."""
        form = self.ids.form(smsc)
        async with conn.transaction():
            rows = await store.take_back(conn, smsc, self.ids.since[smsc])
            again = [(*row, keys((str(row[1]), _text(row[2])), form)) for row in rows]
            if again:
                await store.record(conn, again)  # (none held: they have waited already)
        log.info("receipts_matched_again", smsc=smsc, form=form, receipts=len(again))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush(final=True)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except (OSError, asyncpg.PostgresError) as exc:
                log.error("receipts_flush_failed", error=str(exc))


def _text(value: object) -> str | None:
    return None if value is None else str(value)
