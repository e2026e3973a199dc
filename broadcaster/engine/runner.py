"""Run one broadcast: claim chunks, stream their recipients into the SMPP pool, record outcomes.

Each chunk is leased from Postgres (`FOR UPDATE SKIP LOCKED`), so any number of runners, in any
processes, can share a broadcast. Within a chunk, parts that already have an outcome are skipped,
so a run resumed after a crash re-sends at most what was in flight. Outcomes are buffered and
appended with COPY; a chunk is marked done in the same transaction as its last outcomes.

A runner owns no binds: the `Engine` that created it owns the pool and hands each part's outcome
back to the runner named in its tag (`PartTag`). Every SQL statement is the store's
(`store.chunks`, `store.broadcasts`); every state change goes through the state machine's table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import asyncpg
import structlog

from broadcaster.domain.caller import ENGINE
from broadcaster.domain.states import HALTED
from broadcaster.engine.to_the_end import to_the_end
from broadcaster.errors import StoreError
from broadcaster.settings import SmscConfig
from broadcaster.smpp.codec import SubmitTemplate, smpp_absolute_time, submit_templates
from broadcaster.smpp.pool import NOT_SENT, Lane, SmppPool
from broadcaster.store import audit, chunks, rollups
from broadcaster.store import broadcasts as store
from broadcaster.store.database import Conn, connection_lost, until_answered
from broadcaster.text.encoding import encode_message

log = structlog.get_logger(__name__)

MAX_BACKLOG = 20_000
"""Parts queued ahead of the binds; enough to keep every window full, small enough for memory."""
FLUSH_INTERVAL = 0.05
"""Outcomes wait at most this long before COPY: after a crash, only parts accepted in the last
 FLUSH_INTERVAL (plus those in flight) can be sent twice."""
FLUSH_ROWS = 5_000
LEASE_SECONDS = 30.0
CONTROL_INTERVAL = 0.25
"""How often the runner checks for cancel, pause and expiry (cancel must act within 1 s)."""
EXPIRY_MARGIN = 0.05
"""Seconds before the expiry at which sending stops: timers fire late, never early."""
IN_FLIGHT_PATIENCE_S = 30.0
"""How long a run whose database went away waits for the answers of the parts in flight (the
pool times unanswered ones out well before)."""
STOP_PATIENCE_S = 5.0
"""Once a run is halted (a signal, its expiry), how long it still waits for an absent database
to record what it holds before giving up (the process must be able to stop)."""

T = TypeVar("T")

SiteTemplates = tuple[SubmitTemplate, ...]
"""One part of a group's message, encoded for each SMSC of the pool (in the pool's order): each
SMSC gets its own sender address and receipt request."""
GroupParts = tuple[SiteTemplates, ...]
"""All the parts of a group's message, in order."""


@dataclass(eq=False)
class ChunkProgress:
    """Parts of one chunk submitted and not yet answered; done when streamed and zero."""

    runner: BroadcastRunner
    chunk_no: int
    outstanding: int = 0
    streamed: bool = False
    seen: set[int] | None = None
    """A home chunk claimed for the first time: the recipients with an outcome in this claim
    (the first outcome of any other can have nothing recorded before it: `rollups`)."""
    departement: str | None = None
    """A home chunk's département: its recipients' home, remembered with each part accepted
    for the receipt roll-ups (`sent_parts`); None for present numbers (home looked up)."""


PartTag = tuple[ChunkProgress, int, int, int, int]
"""What the pool hands back with each part's outcome: (chunk, msisdn, part number, parts,
group: `broadcast_groups.group_no`, the area and language of the text it is part of)."""
Texts = tuple[int, GroupParts]
"""A group's number and its parts, as a recipient's language selects them."""


@dataclass
class RunStats:
    """What this runner did, for progress displays and the final report."""

    broadcast_id: int
    recipients_streamed: int = 0
    parts_submitted: int = 0
    parts_skipped: int = 0
    outcomes: int = 0
    accepted: int = 0
    failed: int = 0
    chunks_done: int = 0
    possibly_twice: int = 0
    """Parts the pool sent again while their first copy may have been accepted."""
    outages: int = 0
    """Database outages ridden out: sending stopped, then resumed by itself."""
    language_fallbacks: int = 0
    """Recipients whose language had no group at planning (imported or changed since): they
    got their département's default-language text."""
    started: float = field(default_factory=time.monotonic)
    first_submit: float | None = None
    state: str = "running"
    error: str | None = None
    """What stopped the run, when something unexpected did (the broadcast is then paused)."""


def group_parts(
    body: str,
    reference: int,
    smscs: Sequence[SmscConfig],
    *,
    validity_period: str,
    force_receipts: bool = False,
) -> GroupParts:
    """A group's text encoded once, then spliced into one submit_sm template per part and per
    SMSC (each with that SMSC's sender; `force_receipts`: every part asks for a receipt)."""
    message = encode_message(body, reference=reference)
    per_smsc = [
        submit_templates(
            message,
            source_addr=smsc.source_addr,
            source_ton=smsc.source_ton,
            source_npi=smsc.source_npi,
            registered_delivery=1 if force_receipts else smsc.registered_delivery,
            # The SMSC drops what it could not deliver before the broadcast's hard expiry.
            validity_period=validity_period,
        )
        for smsc in smscs
    ]
    return tuple(zip(*per_smsc, strict=True))


class BroadcastRunner:
    """Drives one broadcast to a final state through a shared SMPP pool."""

    def __init__(
        self,
        db: asyncpg.Pool,
        pool: SmppPool,
        broadcast_id: int,
        *,
        worker: str,
        on_progress: Callable[[RunStats], None] | None = None,
        sharing: Callable[[], int] = lambda: 1,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self.db = db
        self.lease_seconds = lease_seconds
        """How long a chunk stays this run's without a renewal (renewed every third of it):
        after a crash, how long before another worker takes it up."""
        self.pool = pool
        self.broadcast_id = broadcast_id
        self.worker = worker
        self.on_progress = on_progress
        self.sharing = sharing
        """How many runs share the pool now: each keeps at most its share of MAX_BACKLOG
        queued, so that broadcasts of one priority advance side by side."""
        self.stats = RunStats(broadcast_id)
        self.outstanding = 0
        """This run's parts submitted and without an outcome yet (queued or in flight)."""
        self._low_water = 0
        """While the submitter waits for room: wake it when `outstanding` falls to this."""
        self._room = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._rows: list[tuple[object, ...]] = []
        self._fresh: set[int] = set()
        """Recipients of `_rows` whose first outcome in a first claim of their chunk is there."""
        self._fresh_chunks: set[int] = set()
        self._completable: list[int] = []
        self._possibly_twice = 0
        """Parts that may have gone twice since the last flush (recorded with it)."""
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._flush_lock = asyncio.Lock()
        self.expires_at = datetime.max.replace(tzinfo=UTC)
        self.lane = Lane()
        """This run's parts in the pool: halted with the run, closed at the expiry."""
        self.test_group_only = False
        self.reached_of: int | None = None
        self.kind = "live"
        self._refusal = ""
        self._error: BaseException | None = None
        self._gave_up: StoreError | None = None
        self._outage = False
        """The database stopped answering: nothing more is submitted until it answers again
        and what was answered meanwhile (kept in memory) is recorded."""
        # The last time converted for each outcome column (see `on_outcome`).
        self._submitted_key = self._answered_key = math.nan
        self._submitted_dt = self._answered_dt = datetime.fromtimestamp(0, UTC)

    # -- outcomes (called by the engine, once per part) ---------------------------------------

    def on_outcome(
        self,
        tag: PartTag,
        status: int,
        message_id: str | None,
        smsc: str,
        submitted_at: float,
        answered_at: float,
        possible_duplicates: int = 0,
    ) -> None:
        """One part's outcome, from the pool; `possible_duplicates`: copies beyond one the
        SMSC may have received (the pool sent it again after a loss or a timeout)."""
        chunk, msisdn, part, parts, group_no = tag
        if possible_duplicates:
            self._possibly_twice += possible_duplicates
            self.stats.possibly_twice += possible_duplicates
        # Parts written in one batch share `submitted_at`, parts answered in one read share
        # `answered_at`: convert each distinct time once (datetime.fromtimestamp for every
        # part was 5% of the broadcaster's CPU in the load test's profile).
        if status == NOT_SENT:
            # (No time to convert: no row.) Halted before it could be sent again: nothing is
            # recorded, a resumed run sends it.
            if not self.lane.halted:  # not halted by us: the pool's deadline passed first
                self._halt("expired")
            self._settled(chunk)
            return
        if submitted_at != self._submitted_key:
            self._submitted_key = submitted_at
            self._submitted_dt = datetime.fromtimestamp(submitted_at, UTC)
        if answered_at != self._answered_key:
            self._answered_key = answered_at
            self._answered_dt = datetime.fromtimestamp(answered_at, UTC)
        seen = chunk.seen
        if seen is not None and msisdn not in seen:
            seen.add(msisdn)
            self._fresh.add(msisdn)
            self._fresh_chunks.add(chunk.chunk_no)
        self._rows.append(
            (
                self.broadcast_id,
                msisdn,
                part,
                parts,
                status,
                message_id,
                smsc,
                self._submitted_dt,
                self._answered_dt,
                group_no,
            )
        )
        if status == 0:
            self.stats.accepted += 1
        else:
            self.stats.failed += 1
        self._settled(chunk)

    def _settled(self, chunk: ChunkProgress) -> None:
        """One part of `chunk` has its outcome: wake the submitter, maybe finish the chunk."""
        self.outstanding = outstanding = self.outstanding - 1
        if outstanding <= self._low_water:
            self._room.set()
            if not outstanding:
                self._drained.set()
        chunk.outstanding -= 1
        if chunk.outstanding == 0 and chunk.streamed and not self._stop.is_set():
            self._completable.append(chunk.chunk_no)

    async def flush_outcomes(self) -> None:
        """Record now the outcomes held (the engine, before it stores receipts of their parts)."""
        await self._flush()

    async def _flush(self) -> None:
        """Append buffered outcomes and mark finished chunks done, atomically."""
        async with self._flush_lock:
            rows, self._rows = self._rows, []
            done, self._completable = self._completable, []
            twice, self._possibly_twice = self._possibly_twice, 0
            fresh = rollups.Fresh(self._fresh, sorted(self._fresh_chunks))
            self._fresh, self._fresh_chunks = set(), set()
            if not rows and not done and not twice:
                return
            await to_the_end(self._record(rows, done, twice, fresh))

    async def _record(
        self, rows: list[tuple[object, ...]], done: list[int], twice: int, fresh: rollups.Fresh
    ) -> None:
        """One flush's transaction and its bookkeeping, run to the end even if the flusher is
        cancelled meanwhile (`to_the_end`): recorded, never put back to be recorded twice."""
        try:
            async with self.db.acquire() as conn:
                await chunks.record_outcomes(conn, self.broadcast_id, rows, done, twice, fresh)
        except BaseException:
            # Not recorded (one transaction): keep them for the next flush.
            self._fresh |= fresh.recipients
            self._fresh_chunks.update(fresh.chunks)
            self._rows[:0] = rows
            self._completable[:0] = done
            self._possibly_twice += twice
            raise
        self.stats.outcomes += len(rows)
        self.stats.chunks_done += len(done)

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> RunStats:
        """Run until every chunk is done, or the broadcast is cancelled, paused or expired."""
        structlog.contextvars.bind_contextvars(broadcast_id=self.broadcast_id)
        async with self.db.acquire() as conn:
            row = await store.get_broadcast(conn, self.broadcast_id)
            target = json.loads(row["target"])
            if row["kind"] == "drill" and not target.get("test_group_only"):
                # A drill never reaches the public (Hawaii, 2018): refuse it, send nothing.
                reason = "its target is not restricted to the test group"
                self.stats.state = await self._refuse_drill(conn, reason)
                return self.stats
            groups = await store.groups(conn, self.broadcast_id)
            fallbacks = await store.fallback_groups(conn, self.broadcast_id)
            await store.expire_overdue(conn)
            if not await store.apply(conn, self.broadcast_id, "start"):
                # Cancelled, paused, expired or not approved: nothing to do here.
                self.stats.state = await store.get_state(conn, self.broadcast_id) or "gone"
                return self.stats
        self.expires_at = row["expires_at"]
        # Nothing of this run is written at or after the expiry (minus the margin), checked by
        # the pool before each write, whatever the expiry timer below does.
        self.lane = self.pool.open_lane(self.expires_at.timestamp() - EXPIRY_MARGIN)
        self.test_group_only = bool(target.get("test_group_only"))
        self.reached_of = row["parent_id"] if row["reached_only"] else None
        self.kind = row["kind"]
        by_group = self._templates(groups)
        language_map: dict[str, dict[str, int]] = json.loads(row["language_map"])
        loop = asyncio.get_running_loop()
        seconds_left = (self.expires_at - datetime.now(UTC)).total_seconds()
        # Nothing may be submitted after the expiry: a timer, not a poll, so it is not late.
        expiry_timer = loop.call_later(
            max(0.0, seconds_left - EXPIRY_MARGIN), self._halt, "expired"
        )
        background = [
            asyncio.create_task(self._flusher()),
            asyncio.create_task(self._controller()),
            asyncio.create_task(self._lease_renewer()),
        ]
        try:
            while True:
                await self._send(by_group, language_map, fallbacks)
                if self._stop.is_set():
                    self._cancel_queued()
                await self._wait_drained()
                if not self._outage or self._stop.is_set():
                    break
                # The database went away (while streaming or while waiting for the last
                # answers): once it is back, record, hand back, and claim again.
                await self._ride_out()
            await self._durably(self._flush)
        finally:
            expiry_timer.cancel()
            self.lane.halt()  # the run is over: the pool need not watch its expiry any more
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._durably(self._flush)
        self.stats.state = await self._durably(self._final_state)
        self._report()
        log.info(
            "broadcast_run_finished",
            state=self.stats.state,
            outcomes=self.stats.outcomes,
            language_fallbacks=self.stats.language_fallbacks,
        )
        return self.stats

    def _templates(self, groups: list[asyncpg.Record]) -> dict[int, GroupParts]:
        validity = smpp_absolute_time(self.expires_at)
        return {
            g["group_no"]: group_parts(
                g["body"],
                # The UDH reference is a function of (broadcast, group): a resumed run continues
                # a half-sent concatenated message with the same reference.
                (self.broadcast_id * 31 + g["group_no"]) & 0xFF,
                self.pool.smscs,
                validity_period=validity,
                force_receipts=self.kind == "drill",  # a drill measures delivery
            )
            for g in groups
        }

    async def _send(
        self,
        by_group: dict[int, GroupParts],
        language_map: dict[str, dict[str, int]],
        fallbacks: dict[str, int],
    ) -> None:
        """Claim and stream chunks until none is left, the run halts or the database goes
        away (`_outage`); any other error ends the run cleanly, paused, saying why."""
        try:
            await self._claim_loop(by_group, language_map, fallbacks)
        except Exception as exc:  # whatever it is, the run ends cleanly and says why
            if connection_lost(exc):
                self._database_lost(exc)
            else:
                self._fail(exc)

    async def _claim_loop(
        self,
        by_group: dict[int, GroupParts],
        language_map: dict[str, dict[str, int]],
        fallbacks: dict[str, int],
    ) -> None:
        while not self._stop.is_set() and not self._outage:
            async with self.db.acquire() as conn:
                chunk = await chunks.claim(conn, self.broadcast_id, self.worker, self.lease_seconds)
                if chunk is None:
                    return
                recorded = await chunks.recorded_parts(conn, self.broadcast_id, chunk)
                by_lang = {
                    lang.encode(): (group_no, by_group[group_no])
                    for lang, group_no in language_map.get(chunk.departement, {}).items()
                }
                fallback_group = fallbacks.get(chunk.departement)
                fallback = (
                    None if fallback_group is None else (fallback_group, by_group[fallback_group])
                )
                await self._stream_chunk(conn, chunk, by_lang, recorded, fallback)

    async def _stream_chunk(
        self,
        conn: Conn,
        chunk: chunks.Chunk,
        by_lang: dict[bytes, Texts],
        recorded: set[tuple[int, int]],
        fallback: Texts | None,
    ) -> None:
        first = not chunk.reclaimed and chunk.source == "home"
        progress = ChunkProgress(
            self,
            chunk.chunk_no,
            seen=set() if first else None,
            departement=chunk.departement if chunk.source == "home" else None,
        )
        consume = _Submitter(self, progress, by_lang, recorded, fallback)
        output: Callable[[bytes], Coroutine[Any, Any, None]] = consume
        drill = self.kind == "drill"
        if drill:
            # Each row comes with its test_group flag, checked before any of it is submitted.
            output = _TestGroupOnly(consume, self._refuse_recipient)
        output = _Guarded(output, consume, self._fail)
        await chunks.stream(
            conn,
            self.broadcast_id,
            chunk,
            output,
            test_group_only=self.test_group_only,
            drill=drill,
            reached_of=self.reached_of,
        )
        if consume.dropped:
            return  # the chunk stays unfinished: its lease is handed back, a resume takes it up
        if self._refusal:
            return  # a drill refused mid-chunk: the rest of the chunk was read, not submitted
        progress.streamed = True
        if progress.outstanding == 0:
            self._completable.append(chunk.chunk_no)

    async def _wait_drained(self) -> None:
        """Until every part of this run has its outcome (or, once stopped, those in flight)."""
        while self.outstanding:
            drained = asyncio.ensure_future(self._drained.wait())
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({drained, stop}, return_when=asyncio.FIRST_COMPLETED)
            for fut in (drained, stop):
                fut.cancel()
            if self._stop.is_set():
                self._cancel_queued()
                await self._drained.wait()
                return

    def submitted(self, count: int) -> None:
        """`count` more parts of this run are in the pool."""
        if count:
            self.outstanding += count
            self._drained.clear()

    async def wait_for_room(self) -> None:
        """Back-pressure: while this run has its share of the backlog queued, wait until half
        of it is answered (the pool as a whole is bounded by MAX_BACKLOG too)."""
        share = MAX_BACKLOG // max(1, self.sharing())
        if self.outstanding >= share:
            self._low_water = share // 2
            self._room.clear()
            stop = asyncio.ensure_future(self._stop.wait())
            room = asyncio.ensure_future(self._room.wait())
            await asyncio.wait({room, stop}, return_when=asyncio.FIRST_COMPLETED)
            for fut in (room, stop):
                fut.cancel()
            self._low_water = 0
        if self.pool.backlog >= MAX_BACKLOG:
            await self.pool.wait_for_room(MAX_BACKLOG // 2)

    def _mine(self, tag: object) -> bool:
        return cast(PartTag, tag)[0].runner is self

    def _cancel_queued(self) -> int:
        """Drop this run's queued parts from the shared pool (other runs' stay); how many."""
        dropped = len(self.pool.cancel(self._mine))
        self.outstanding -= dropped
        if not self.outstanding:
            self._drained.set()
        return dropped

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            try:
                await self._flush()
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                self._database_lost(exc)
                await until_answered(self.db)
            self._report()

    # -- database outages ------------------------------------------------------------------------

    def _database_lost(self, exc: BaseException) -> None:
        """Outcomes can no longer be recorded: stop submitting now. Queued parts are dropped
        (never sent: their chunks are taken up again later); those in flight are answered and
        their outcomes kept in memory — the buffer is bounded by the binds' windows."""
        if self._outage:
            return
        self._outage = True
        dropped = self._cancel_queued()
        self._room.set()  # a submitter waiting for room reads the rest of its chunk and drops it
        log.warning(
            "database_lost",
            error=f"{type(exc).__name__}: {exc}",
            queued_parts_dropped=dropped,
            in_flight=self.outstanding,
            unrecorded=len(self._rows),
        )

    async def _ride_out(self) -> None:
        """Wait for the parts in flight and for the database; then record what was kept, hand
        this run's unfinished chunks back and go on (it claims them again, skipping what was
        recorded: nothing in memory is lost, nothing recorded is sent again)."""
        loop = asyncio.get_running_loop()
        lost_at = loop.time()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), IN_FLIGHT_PATIENCE_S)
        await self._await_database()
        back_at = loop.time()
        await self._durably(self._flush)
        await self._durably(self._release_leases)
        self._outage = False
        self.stats.outages += 1
        log.info(
            "database_back",
            outage_s=round(back_at - lost_at, 3),
            outcomes=self.stats.outcomes,
            resuming=not self._stop.is_set(),
        )

    async def _release_leases(self) -> None:
        async with self.db.acquire() as conn:
            await chunks.release_leases(conn, self.broadcast_id, self.worker)

    async def _await_database(self) -> None:
        """Until the database answers again; once the run is halted, STOP_PATIENCE_S at most
        (then StoreError: the process must be able to stop)."""
        if self._gave_up is not None:
            raise self._gave_up  # once is enough: the process is stopping
        if not self._stop.is_set():
            answered = asyncio.ensure_future(until_answered(self.db))
            stopped = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({answered, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if answered.done():
                answered.result()
                return
            answered.cancel()
        try:
            await asyncio.wait_for(until_answered(self.db), STOP_PATIENCE_S)
        except TimeoutError as exc:
            self._gave_up = StoreError(
                f"the run stopped ({self._stop_reason}) and the database did not answer within "
                f"{STOP_PATIENCE_S:g} s: {len(self._rows)} outcomes kept in memory are not "
                "recorded (a resumed run may send those parts again)"
            )
            raise self._gave_up from exc

    async def _durably(self, work: Callable[[], Awaitable[T]]) -> T:
        """`work()`, again and again while the database is away (see `_await_database`)."""
        while True:
            try:
                return await work()
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                self._database_lost(exc)
            await self._await_database()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

    async def _controller(self) -> None:
        """Stop within CONTROL_INTERVAL of a cancel, a pause or a more urgent broadcast."""
        while True:
            try:
                async with self.db.acquire() as conn:
                    row = await store.get_state_row(conn, self.broadcast_id)
                    assert row is not None
                    urgent = await chunks.higher_priority_waiting(conn, row["priority"])
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                self._database_lost(exc)
                await until_answered(self.db)
                continue
            if row["state"] in HALTED:
                self._halt(row["state"])
                return
            if urgent:
                self._halt("preempted")
                return
            await asyncio.sleep(CONTROL_INTERVAL)

    def _halt(self, reason: str) -> None:
        """Stop submitting now: queued parts are dropped (in flight ones still get answers)."""
        if self._stop.is_set():
            return
        self._stop_reason = reason
        self._stop.set()
        self.lane.halt()  # nothing of this run is written again, whatever comes back
        dropped = self._cancel_queued()
        log.warning("broadcast_halted", reason=reason, queued_parts_dropped=dropped)

    def _fail(self, exc: BaseException) -> None:
        """Something unexpected in the streaming path: stop now, say what; the broadcast is
        paused (`_final_state`) for a person to look at, its chunks handed back."""
        if self._error is None:
            self._error = exc
            self.stats.error = f"{type(exc).__name__}: {exc}"
            log.error("broadcast_run_error", error=self.stats.error, exc_info=exc)
        self._halt("error")

    def halt(self, reason: str) -> None:
        """Stop this run from outside (its worker stops): unfinished chunks are handed back,
        the broadcast keeps its state for another worker."""
        self._halt(reason)

    @property
    def stopping(self) -> bool:
        """Submit nothing more: halted, or the database is away."""
        return self._stop.is_set() or self._outage

    async def _lease_renewer(self) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                async with self.db.acquire() as conn:
                    await chunks.renew_leases(
                        conn, self.broadcast_id, self.worker, self.lease_seconds
                    )
            except Exception as exc:
                if not connection_lost(exc):
                    raise
                self._database_lost(exc)
                await until_answered(self.db)

    async def _final_state(self) -> str:
        async with self.db.acquire() as conn:
            if self._stop_reason:
                await chunks.release_leases(conn, self.broadcast_id, self.worker)
            if self._stop_reason == "refused":
                return await self._refuse_drill(conn, self._refusal)
            if self._stop_reason == "expired":
                await store.apply(conn, self.broadcast_id, "expire")
                return "expired"
            if self._stop_reason == "error":
                return await self._pause_on_error(conn)
            todo, _total = await chunks.chunks_left(conn, self.broadcast_id)
            # Everything was sent: completed, even if a pause landed in the last moments (a
            # paused broadcast with nothing left could never be resumed into completion).
            if todo == 0 and await store.apply(conn, self.broadcast_id, "complete"):
                return "completed"
            if self._stop_reason or todo == 0:
                return await store.get_state(conn, self.broadcast_id) or "gone"
            return "running"  # other workers still hold chunks

    async def _pause_on_error(self, conn: Conn) -> str:
        """Pause the broadcast after an unexpected error (the engine's decision, audited): what
        was sent is recorded, the rest waits for `resume` once the cause is dealt with."""
        async with conn.transaction():
            if await store.apply(conn, self.broadcast_id, "pause"):
                await audit.record(
                    conn,
                    ENGINE,
                    "broadcast_paused_on_error",
                    audit.subject_of("broadcast", self.broadcast_id),
                    reason=f"the engine paused it: {self.stats.error}; resume once dealt with",
                )
        return await store.get_state(conn, self.broadcast_id) or "gone"

    def _refuse_recipient(self, msisdn: bytes) -> None:
        self._refusal = f"recipient {msisdn.decode()} is not in the test group"
        self._halt("refused")

    async def _refuse_drill(self, conn: Conn, reason: str) -> str:
        """Fail a drill that would reach a non-test subscriber; the reason goes to the audit log."""
        await store.apply(conn, self.broadcast_id, "fail")
        await audit.record(
            conn,
            ENGINE,
            "drill_refused",
            audit.subject_of("broadcast", self.broadcast_id),
            reason=f"drill refused: {reason}; a drill reaches the test group only",
        )
        log.error("drill_refused", reason=reason)
        return "failed"


class _Submitter:
    """A chunk's COPY consumer: `msisdn\\tlang` lines in, each recipient's parts into the pool.

    Once the run stops it reads the rest of the stream and drops it, never raising: asyncpg
    answers an exception from a COPY output callback with a CancelRequest, and the connection
    can be neither used nor released until the server acknowledges the cancelled query. When the
    failing buffer was the stream's last one (all of a small chunk, or the rest of a
    default-sized one read after a back-pressure wait), the COPY had already ended: no
    acknowledgment ever comes, and the release (so the run) waits forever. Reading on costs at
    most one chunk's rows.
    """

    def __init__(
        self,
        runner: BroadcastRunner,
        progress: ChunkProgress,
        by_lang: dict[bytes, Texts],
        recorded: set[tuple[int, int]],
        fallback: Texts | None = None,
    ) -> None:
        self.runner = runner
        self.progress = progress
        self.by_lang = by_lang
        self.recorded = recorded
        self.fallback = fallback
        """The département's default-language parts, for a language without a group."""
        self.tail = b""
        self.dropped = False
        self._queued = 0
        """Parts `_submit` queued in its last call, even when it raised half-way."""

    async def __call__(self, data: bytes) -> None:
        runner = self.runner
        if self.dropped or runner.stopping:
            self.dropped = True
            return
        lines = (self.tail + data).split(b"\n")
        self.tail = lines.pop()
        try:
            self._submit(lines)
        finally:
            # Parts in the pool are counted even when a line failed: each gets an outcome.
            submitted = self._queued
            runner.submitted(submitted)
            stats = runner.stats
            self.progress.outstanding += submitted
            stats.parts_submitted += submitted
            stats.recipients_streamed += len(lines)
            if stats.first_submit is None and submitted:
                stats.first_submit = time.monotonic()
        await runner.wait_for_room()
        if len(runner._rows) >= FLUSH_ROWS:
            # Never run far ahead of the durable record: it bounds what a crash resends.
            await runner._flush()

    def _submit(self, lines: list[bytes]) -> None:
        """Queue every part of these recipients but those already recorded (how many: in
        `_queued`, set even if a line raises)."""
        submit = self.runner.pool.submit
        by_lang = self.by_lang
        recorded = self.recorded
        progress = self.progress
        stats = self.runner.stats
        submitted = 0
        try:
            for line in lines:
                destination, _, lang = line.partition(b"\t")
                group_no, parts = by_lang.get(lang) or self._fallback(lang)
                count = len(parts)
                msisdn = int(destination)
                last = count  # the last part to submit (not yet recorded): the message ends there
                while recorded and (msisdn, last) in recorded:
                    last -= 1
                for index, templates in enumerate(parts, 1):
                    if recorded and (msisdn, index) in recorded:
                        stats.parts_skipped += 1
                        continue
                    tag: PartTag = (progress, msisdn, index, count, group_no)
                    submit(templates, destination, tag, index < last)
                    submitted += 1
        finally:
            self._queued = submitted

    def _fallback(self, lang: bytes) -> Texts:
        """The parts for a language that had no group at planning: the département's default."""
        if self.fallback is None:
            raise LookupError(f"no text for language {lang.decode(errors='replace')!r} here")
        stats = self.runner.stats
        if not stats.language_fallbacks:
            log.warning("language_fallback", language=lang.decode(errors="replace"))
        stats.language_fallbacks += 1
        return self.fallback


class _Guarded:
    """The COPY callback actually given to asyncpg: whatever the consumer raises is recorded
    (`on_error`: the run stops and says why) and the rest of the stream is read and dropped.
    Raising from a COPY callback would leave asyncpg waiting on a cancellation that never
    completes once the server has finished the COPY: the worker hung for good, renewing its
    lease and deaf to SIGTERM and cancel (issue 20)."""

    def __init__(
        self,
        output: Callable[[bytes], Coroutine[Any, Any, None]],
        consume: _Submitter,
        on_error: Callable[[BaseException], None],
    ) -> None:
        self.output = output
        self.consume = consume
        self.on_error = on_error
        self.failed = False

    async def __call__(self, data: bytes) -> None:
        if self.failed:
            return
        try:
            await self.output(data)
        except Exception as exc:
            self.failed = True
            self.consume.dropped = True  # the chunk stays unfinished: its lease is handed back
            if connection_lost(exc):
                self.consume.runner._database_lost(exc)  # an outage, ridden out: not an error
            else:
                self.on_error(exc)


class _TestGroupOnly:
    """A drill's COPY consumer: passes `msisdn\\tlang` lines on only while every row streamed is
    in the test group; the first one that is not stops the drill before it is submitted. (The
    rest of the stream is read and dropped: raising here once the server has finished the COPY
    leaves asyncpg waiting on a cancellation that never completes.)"""

    def __init__(
        self, consume: Callable[[bytes], Coroutine[Any, Any, None]], refuse: Callable[[bytes], None]
    ) -> None:
        self.consume = consume
        self.refuse = refuse
        self.tail = b""
        self.refused = False

    async def __call__(self, data: bytes) -> None:
        if self.refused:
            return
        data = self.tail + data
        cut = data.rfind(b"\n") + 1
        lines, self.tail = data[:cut].split(b"\n")[:-1], data[cut:]
        out = []
        for line in lines:
            msisdn, lang, member = line.split(b"\t")
            if member != b"t":
                self.refused = True
                self.refuse(msisdn)
                return
            out.append(msisdn + b"\t" + lang + b"\n")
        if out:
            await self.consume(b"".join(out))
