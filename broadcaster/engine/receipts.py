"""Delivery receipts, matched to their parts and appended in batches (never matched by UPDATE).

Receipts arrive for any broadcast, minutes after its parts were accepted, so the recorder lives
as long as the binds do (a worker, `serve`), not as long as one run. Each receipt is looked up
under the keys its SMSC's id form allows (`SmscConfig.receipt_ids`, domain/receipt_ids.py). An
SMSC set to `auto` is tried in every form until its receipts show which one it uses; then the
form is logged, kept for the life of the process, and the receipts recorded while it was being
found out are matched again under it.

A receipt for a part this process sent is matched in memory (`sent_parts`: the process heard
the submit_sm_resp that gave the id); others are looked up by the database.

A receipt may come back before its part's outcome is recorded (outcomes are flushed in batches,
perhaps by another worker, and a fast SMSC answers within milliseconds): one that names no
recorded part is held and tried again at the next flushes for `HOLD_S` seconds before it is stored
as 'unmatched'; the last flush (`stop`) stores what is still held.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import cast

import asyncpg
import structlog

from broadcaster.domain.receipt_ids import forms_of, keys
from broadcaster.engine.sent_parts import SentParts
from broadcaster.engine.to_the_end import to_the_end
from broadcaster.settings import SmscConfig
from broadcaster.smpp.receipts import FINAL_STATS, Receipt
from broadcaster.store import receipts as store
from broadcaster.store.database import Conn, connection_lost

log = structlog.get_logger(__name__)

EVIDENCE = 20
"""Receipts matched through exactly one form before an `auto` SMSC's form is settled..."""
AGREEMENT = 0.95
"""...and the share of them that must agree on it."""
LEARNING_INTERVAL = 0.05
"""The flush interval while an `auto` SMSC's form is still to be found out: its receipts are
matched by the database under every form, and once settled matched again (taken back, stored
again). Flushed every half second, the first ~60,000 receipts of a run at national speed went
that long way (at 1M receipts, 10% of the database's work and 40 MB of the send process's
memory); flushed as often as outcomes are, only the settling batch does (~3,000-5,000), and the
receipts buffered meanwhile are matched in memory once it is settled (`_key_again`)."""
LEARNING_WINDOW_S = 5.0
"""...from its first receipt to this process, for this long at most: an SMSC whose receipts
name no part is never settled, and the receipts held (tried again at every flush for `HOLD_S`)
are then tried at the interval, not twenty times a second. An `auto` SMSC that sends this
process no receipt (none asked for, or they go to another worker's binds) does not set the
pace either."""
HOLD_S = 30.0
"""How long a receipt that names no recorded part yet is tried again before it is stored as
'unmatched' (long enough for outcome flushes delayed by a loaded database)."""

_EPOCH_CACHE = 1024
"""Done dates kept with their seconds since 1970 (`ReceiptRecorder._epoch`)."""


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
    """Buffer receipts from the pool (`on_receipts`: `received`) and flush them every `interval`
    seconds."""

    def __init__(
        self,
        db: asyncpg.Pool,
        smscs: Sequence[SmscConfig] = (),
        interval: float = 0.5,
        hold_s: float = HOLD_S,
    ) -> None:
        self.db = db
        self.interval = interval
        self.hold_s = hold_s
        self.recorded = 0
        """Receipts stored (matched or not); those held are not counted until stored."""
        self.matched_in_memory = 0
        """Of the receipts received, those matched in memory (`sent_parts`)."""
        self.ids = IdForms(smscs)
        self.sent = SentParts()
        """The parts this process had accepted (the engine adds them): receipts for them are
        matched here."""
        self.outcomes_first: Callable[[set[int]], Awaitable[set[int]]] | None = None
        """Records the outcomes this process still holds for these broadcasts (the engine's
        runs flush theirs) before receipts matched in memory are stored, and says for which
        broadcasts it could not: their parts' outcomes may not be recorded yet (flushed every
        50 ms), and a crash between the two left a part delivered but never accepted, and
        counted so (the broadcast cancelled, nobody sends it again)."""
        self._rows: list[tuple[object, ...]] = []
        """Receipts as rows of `store.STAGED_COLUMNS`, for the database to match."""
        self._matched: list[tuple[object, ...]] = []
        """Receipts matched in memory, as rows of `store.MATCHED_COLUMNS`."""
        self._epochs: dict[datetime, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._learning_from: dict[str, float] = {}
        """When (`time.monotonic`) each `auto` SMSC's first receipt came (`_every`)."""
        self._learning_began = asyncio.Event()
        """Set by an `auto` SMSC's first receipt: the periodic flush, asleep for the interval,
        wakes up to flush at the learning pace."""
        self._match_pending: set[str] = set()
        """SMSCs whose form was settled and whose earlier receipts are still to be matched
        again (tried at each flush until done)."""
        self._flushing = asyncio.Lock()
        """One flush at a time (`_loop` and `Engine.await_receipts` both flush): two batches
        stored at once do not see each other, and a receipt with a copy in each was counted
        twice in the roll-ups."""

    def __call__(self, receipt: Receipt, smsc: str) -> None:
        """One receipt of `smsc` (`received`)."""
        self.received((receipt,), smsc)

    def received(self, receipts: Sequence[Receipt], smsc: str) -> None:
        """Receipts of `smsc` read at once (the pool's `on_receipts`), each matched in memory
        if this process sent its part, else kept for the database to match. One per part sent:
        what every receipt of the read shares (the SMSC's form, the time received, the names
        used) is looked up once per read."""
        form = self.ids.forms.get(smsc, "auto")
        if form == "auto":
            self.ids.seen(smsc, datetime.now(UTC))
            if smsc not in self._learning_from:
                self._learning_from[smsc] = time.monotonic()
                self._learning_began.set()
        settled, same = form != "auto", form == "same"
        now = time.time()
        take, epoch = self.sent.take, self._epoch
        to_match, in_memory = self._rows.append, self._matched.append
        matched = 0
        for receipt in receipts:
            try:
                message_id, text_id, done = (
                    receipt.message_id,
                    receipt.text_message_id,
                    receipt.done_date,
                )
                if same and text_id is None:  # settled, one id (most SMSCs): `keys`, inlined
                    first: str | None = message_id.upper().lstrip("0")  # normalise
                    more: list[str] | None = None
                else:
                    first, more = store.key_columns(keys((message_id, text_id), form))
                stat = receipt.stat
                said = (  # store.RECEIPT_COLUMNS
                    smsc,
                    message_id,
                    text_id,
                    receipt.source,
                    stat,
                    receipt.err,
                    None if done is None else epoch(done),
                    now,
                )
                if first is not None and more is None and settled:  # one key, form settled
                    sent = take(first, smsc, stat in FINAL_STATS, now)
                    if sent is not None:  # (smsc, broadcast_id, msisdn, part, submitted_at, dep.)
                        matched += 1
                        in_memory(said + sent[1:])  # store.MATCHED_COLUMNS
                        continue
                to_match((*said, first, more))  # store.STAGED_COLUMNS
            except Exception:  # one receipt the recorder cannot read: the others still count
                log.exception("receipt_unrecorded", smsc=smsc, message_id=receipt.message_id)
        self.matched_in_memory += matched

    def _epoch(self, done: datetime) -> float:
        """Seconds since 1970 of a receipt's done date (SMSC local time, taken as UTC), kept
        (receipts come by the thousand with the same minute)."""
        epoch = self._epochs.get(done)
        if epoch is None:
            if len(self._epochs) >= _EPOCH_CACHE:
                self._epochs.clear()
            epoch = self._epochs[done] = done.replace(tzinfo=UTC).timestamp()
        return epoch

    @property
    def held(self) -> int:
        """Receipts buffered: received, not stored yet (some perhaps held, naming no part yet)."""
        return len(self._rows) + len(self._matched)

    async def flush(self, *, hold: bool = True) -> None:
        """Store the receipts received so far; with `hold`, keep back for the next flush those
        that name no recorded part yet and are younger than `hold_s`. A batch is stored to the
        end even if the caller is cancelled meanwhile (`stop` cancels the periodic flush), never
        put back once stored, to be stored twice."""
        async with self._flushing:
            rows, self._rows = self._rows, []
            matched, self._matched = self._matched, []
            if rows or matched:
                await to_the_end(self._store(rows, matched, hold))

    async def _store(
        self, rows: list[tuple[object, ...]], matched: list[tuple[object, ...]], hold: bool
    ) -> None:
        hold_s = self.hold_s if hold else 0.0
        waiting: list[tuple[object, ...]] = []
        try:
            if matched and self.outcomes_first is not None:
                unrecorded = await self.outcomes_first({cast(int, row[8]) for row in matched})
                if unrecorded:  # their receipts wait for the next flush; the others go on
                    waiting = [row for row in matched if row[8] in unrecorded]
                    matched = [row for row in matched if row[8] not in unrecorded]
            async with self.db.acquire() as conn:
                done = await store.record(conn, rows, self.ids.learning(), hold_s, matched)
        except BaseException:
            # Not stored (one transaction): kept for the next flush, a receipt is never dropped.
            self._rows[:0] = rows
            self._matched[:0] = waiting + matched
            raise
        # Stored: never put back from here on (they would be stored twice).
        self._matched[:0] = waiting
        self._rows[:0] = done.held
        self.recorded += len(rows) + len(matched) - len(done.held)
        settled = self.ids.weigh(done.matched)
        self._key_again(settled)
        self._match_pending.update(settled)
        if self._match_pending:
            async with self.db.acquire() as conn:
                for smsc in sorted(self._match_pending):
                    await self._match_again(conn, smsc, hold_s)
                    self._match_pending.discard(smsc)

    def _key_again(self, settled: Sequence[str]) -> None:
        """The receipts of SMSCs whose form was just settled that are still buffered (held,
        or received while the batch that settled it was stored: at national speed, some
        20,000) keyed again under that form, and matched in memory where this process sent
        their part, as `received` matches them once settled. Kept under every form, one found
        a part whose id another form writes alike (a decimal receipt id and another
        broadcast's all-digit hex id), and was counted there for good. (Those stored are
        matched again: `_match_again`.)"""
        if not settled:
            return
        names = set(settled)
        take = self.sent.take
        kept: list[tuple[object, ...]] = []
        for row in self._rows:
            smsc = cast(str, row[0])
            if smsc not in names:
                kept.append(row)
                continue
            try:
                ids = (str(row[1]), _text(row[2]))
                first, more = store.key_columns(keys(ids, self.ids.form(smsc)))
                if first is not None and more is None:  # as `received` does once settled
                    received_at = cast(float, row[7])
                    final = row[4] in FINAL_STATS
                    latest = received_at + store.CLOCK_SLACK_S  # the database's bound
                    sent = take(first, smsc, final, received_at, submitted_by=latest)
                    if sent is not None:
                        self._matched.append((*row[:8], *sent[1:]))  # store.MATCHED_COLUMNS
                        self.matched_in_memory += 1
                        continue
                kept.append((*row[:8], first, more))
            except Exception:  # kept as it was: the database matches it under every form
                log.exception("receipt_not_keyed_again", smsc=smsc, message_id=row[1])
                kept.append(row)
        self._rows = kept

    async def _match_again(self, conn: Conn, smsc: str, hold_s: float) -> None:
        """Once an SMSC's form is known, match again its receipts recorded while it was not.
        One that names no recorded part yet and is younger than `hold_s` is held, as a fresh
        one is: another process may have matched it in memory (`sent_parts`) before its
        part's outcome was flushed, and it would be stored 'unmatched' for good."""
        form = self.ids.form(smsc)
        held: list[tuple[object, ...]] = []
        async with conn.transaction(isolation="read_committed"):  # (`receipts_lock`)
            rows = await store.take_back(conn, smsc, self.ids.since[smsc])
            again = [
                (*row, *store.key_columns(keys((str(row[1]), _text(row[2])), form))) for row in rows
            ]
            if again:
                held = (await store.record(conn, again, (), hold_s)).held
        self._rows.extend(held)  # taken back for good: kept here until stored
        self.recorded -= len(held)
        log.info("receipts_matched_again", smsc=smsc, form=form, receipts=len(again))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush(hold=False)

    async def _loop(self) -> None:
        """A flush every `interval` seconds, start to start: one that took longer is followed
        at once (a pause after each left the database idle while receipts piled up in memory:
        with flushes of ~1.5 s under load, a quarter of the time). Every `LEARNING_INTERVAL`
        while an SMSC's form is being found out from its receipts, for `LEARNING_WINDOW_S`
        at most (woken by its first receipt: the first ones do not wait half a second)."""
        clock = asyncio.get_running_loop().time
        started = clock()
        while True:
            while (left := started + self._every() - clock()) > 0:
                self._learning_began.clear()
                # (asyncio.timeout, not wait_for: in 3.11 wait_for swallows a cancellation
                # that comes as the event is set, and `stop` waited for ever.)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(left):
                        await self._learning_began.wait()
            started = clock()
            try:
                await self.flush()
            except Exception as exc:  # kept for the next flush: this loop must go on
                if connection_lost(exc) or isinstance(exc, asyncpg.PostgresError):
                    log.error("receipts_flush_failed", error=str(exc))
                else:
                    log.exception("receipts_flush_failed")

    def _every(self) -> float:
        """Seconds from a flush's start to the next one's: `LEARNING_INTERVAL` while an `auto`
        SMSC that sent receipts is unsettled, within `LEARNING_WINDOW_S` of its first one."""
        now = time.monotonic()
        for smsc, since in self._learning_from.items():
            if self.ids.form(smsc) == "auto" and now - since < LEARNING_WINDOW_S:
                return min(self.interval, LEARNING_INTERVAL)
        return self.interval


def _text(value: object) -> str | None:
    return None if value is None else str(value)
