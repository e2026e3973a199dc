"""Run one broadcast: claim chunks, stream their recipients into the SMPP pool, record outcomes.

Each chunk is leased from Postgres (`FOR UPDATE SKIP LOCKED`), so any number of runners, in any
processes, can share a broadcast. Within a chunk, parts that already have an outcome are skipped,
so a run resumed after a crash re-sends at most what was in flight. Outcomes are buffered and
appended with COPY; a chunk is marked done in the same transaction as its last outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog

from broadcaster.smpp.codec import SubmitTemplate, smpp_absolute_time, submit_templates
from broadcaster.smpp.pool import SmppPool
from broadcaster.store import broadcasts as store
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
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
FINAL_STATES = ("completed", "cancelled", "expired", "failed")


@dataclass
class ChunkProgress:
    """Parts of one chunk submitted and not yet answered; done when streamed and zero."""

    chunk_no: int
    outstanding: int = 0
    streamed: bool = False


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
    started: float = field(default_factory=time.monotonic)
    first_submit: float | None = None
    state: str = "running"


Sender = tuple[str, int, int]  # source_addr, source_ton, source_npi


class BroadcastRunner:
    """Drives one broadcast to a final state through a shared SMPP pool."""

    def __init__(
        self,
        db: asyncpg.Pool,
        pool: SmppPool,
        broadcast_id: int,
        *,
        sender: Sender,
        registered_delivery: int = 1,
        worker: str | None = None,
        on_progress: Callable[[RunStats], None] | None = None,
    ) -> None:
        self.db = db
        self.pool = pool
        self.broadcast_id = broadcast_id
        self.sender = sender
        self.registered_delivery = registered_delivery
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.on_progress = on_progress
        self.stats = RunStats(broadcast_id)
        self._rows: list[tuple[object, ...]] = []
        self._completable: list[int] = []
        self._stop = asyncio.Event()
        self._stop_reason = ""
        self._flush_lock = asyncio.Lock()
        self.expires_at = datetime.max.replace(tzinfo=UTC)
        self.test_group_only = False
        self.reached_of: int | None = None
        self.kind = "live"
        self._refusal = ""
        # The last time converted for each outcome column (see `_on_outcome`).
        self._submitted_key = self._answered_key = math.nan
        self._submitted_dt = self._answered_dt = datetime.fromtimestamp(0, UTC)

    # -- outcomes (called by the pool, once per part) -----------------------------------------

    def _on_outcome(
        self,
        tag: object,
        status: int,
        message_id: str | None,
        smsc: str,
        submitted_at: float,
        answered_at: float,
    ) -> None:
        chunk: ChunkProgress
        msisdn: int
        part: int
        parts: int
        chunk, msisdn, part, parts = tag  # type: ignore[misc]
        # Parts written in one batch share `submitted_at`, parts answered in one read share
        # `answered_at`: convert each distinct time once (datetime.fromtimestamp for every
        # part was 5% of the broadcaster's CPU in the load test's profile).
        if submitted_at != self._submitted_key:
            self._submitted_key = submitted_at
            self._submitted_dt = datetime.fromtimestamp(submitted_at, UTC)
        if answered_at != self._answered_key:
            self._answered_key = answered_at
            self._answered_dt = datetime.fromtimestamp(answered_at, UTC)
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
            )
        )
        if status == 0:
            self.stats.accepted += 1
        else:
            self.stats.failed += 1
        chunk.outstanding -= 1
        if chunk.outstanding == 0 and chunk.streamed and not self._stop.is_set():
            self._completable.append(chunk.chunk_no)

    async def _flush(self) -> None:
        """Append buffered outcomes and mark finished chunks done, atomically."""
        async with self._flush_lock:
            rows, self._rows = self._rows, []
            done, self._completable = self._completable, []
            if not rows and not done:
                return
            async with self.db.acquire() as conn, conn.transaction():
                if rows:
                    await conn.copy_records_to_table(
                        "deliveries", records=rows, columns=store.DELIVERY_COLUMNS
                    )
                for chunk_no in done:
                    await conn.execute(queries["complete_chunk"], self.broadcast_id, chunk_no)
            self.stats.outcomes += len(rows)
            self.stats.chunks_done += len(done)

    # -- the run -------------------------------------------------------------------------------

    async def run(self) -> RunStats:
        """Run until every chunk is done, or the broadcast is cancelled, paused or expired."""
        structlog.contextvars.bind_contextvars(broadcast_id=self.broadcast_id)
        async with self.db.acquire() as conn:
            row = await conn.fetchrow(queries["get_broadcast"], self.broadcast_id)
            if row is None:
                raise LookupError(f"broadcast {self.broadcast_id} does not exist")
            if row["kind"] == "drill" and not json.loads(row["target"]).get("test_group_only"):
                # A drill never reaches the public (Hawaii, 2018): refuse it, send nothing.
                reason = "its target is not restricted to the test group"
                self.stats.state = await self._refuse_drill(conn, reason)
                return self.stats
            groups = await conn.fetch(queries["get_groups"], self.broadcast_id)
            await store.expire_overdue(conn)
            started = await store.set_state(
                conn, self.broadcast_id, "running", ["approved", "running"]
            )
            if not started:
                # Cancelled, paused, expired or not approved: nothing to do here.
                self.stats.state = await conn.fetchval(queries["get_state"], self.broadcast_id)
                return self.stats
        self.expires_at = row["expires_at"]
        self.test_group_only = bool(json.loads(row["target"]).get("test_group_only"))
        self.reached_of = row["parent_id"] if row["reached_only"] else None
        self.kind = row["kind"]
        templates = self._templates(groups)
        language_map: dict[str, int] = json.loads(row["language_map"])
        self.pool.on_outcome = self._on_outcome
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
            await self._claim_loop(templates, language_map)
            if self._stop.is_set():
                self.pool.cancel()
            await self._wait_drained()
            await self._flush()
        finally:
            expiry_timer.cancel()
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._flush()
        self.stats.state = await self._final_state()
        self._report()
        log.info("broadcast_run_finished", state=self.stats.state, outcomes=self.stats.outcomes)
        return self.stats

    def _templates(
        self, groups: list[asyncpg.Record]
    ) -> dict[int, tuple[tuple[SubmitTemplate, ...], ...]]:
        """Per group, per part: one template per SMSC of the pool (the same sender for all)."""
        source, ton, npi = self.sender
        smscs = len(self.pool.smscs)
        out: dict[int, tuple[tuple[SubmitTemplate, ...], ...]] = {}
        for g in groups:
            # The UDH reference is a function of (broadcast, group): a resumed run continues a
            # half-sent concatenated message with the same reference.
            reference = (self.broadcast_id * 31 + g["group_no"]) & 0xFF
            message = encode_message(g["body"], reference=reference)
            parts = submit_templates(
                message,
                source_addr=source,
                source_ton=ton,
                source_npi=npi,
                registered_delivery=self.registered_delivery,
                # The SMSC drops what it could not deliver before the broadcast's hard expiry.
                validity_period=smpp_absolute_time(self.expires_at),
            )
            out[g["group_no"]] = tuple((part,) * smscs for part in parts)
        return out

    async def _claim_loop(
        self,
        templates: dict[int, tuple[tuple[SubmitTemplate, ...], ...]],
        language_map: dict[str, int],
    ) -> None:
        while not self._stop.is_set():
            async with self.db.acquire() as conn:
                chunk = await store.claim_chunk(conn, self.broadcast_id, self.worker, LEASE_SECONDS)
                if chunk is None:
                    return
                recorded = await store.recorded_parts(conn, self.broadcast_id, chunk)
                by_lang = {
                    key.split("|", 1)[1].encode(): templates[group_no]
                    for key, group_no in language_map.items()
                    if key.startswith(chunk.departement + "|")
                }
                await self._stream_chunk(conn, chunk, by_lang, recorded)

    async def _stream_chunk(
        self,
        conn: Conn,
        chunk: store.Chunk,
        by_lang: dict[bytes, tuple[tuple[SubmitTemplate, ...], ...]],
        recorded: set[tuple[int, int]],
    ) -> None:
        progress = ChunkProgress(chunk.chunk_no)
        pool = self.pool
        submit = pool.submit
        stats = self.stats
        tail = b""
        dropped = False

        async def consume(data: bytes) -> None:
            nonlocal tail, dropped
            if dropped or self._stop.is_set():
                # Stopped: read the rest of the stream and drop it; never raise here. asyncpg
                # answers an exception from a COPY output callback with a CancelRequest, and the
                # connection can be neither used nor released until the server acknowledges the
                # cancelled query. When the failing buffer was the stream's last one (all of a
                # small chunk, or the rest of a default-sized one read after a back-pressure
                # wait), the COPY had already ended: no acknowledgment ever comes, and the
                # release (so the run) waits forever. Reading on costs at most one chunk's rows.
                dropped = True
                return
            lines = (tail + data).split(b"\n")
            tail = lines.pop()
            submitted = 0
            for line in lines:
                destination, _, lang = line.partition(b"\t")
                parts = by_lang[lang]
                count = len(parts)
                msisdn = int(destination)
                for index, per_smsc in enumerate(parts, 1):
                    if recorded and (msisdn, index) in recorded:
                        stats.parts_skipped += 1
                        continue
                    submit(per_smsc, destination, (progress, msisdn, index, count))
                    submitted += 1
            progress.outstanding += submitted
            stats.parts_submitted += submitted
            stats.recipients_streamed += len(lines)
            if stats.first_submit is None and submitted:
                stats.first_submit = time.monotonic()
            if pool.backlog >= MAX_BACKLOG:
                await pool.wait_for_room(MAX_BACKLOG // 2)
            if len(self._rows) >= FLUSH_ROWS:
                # Never run far ahead of the durable record: it bounds what a crash resends.
                await self._flush()

        args: list[object] = [
            chunk.departement,
            chunk.msisdn_from,
            chunk.msisdn_to,
            chunk.communes,
            self.test_group_only,
            *chunk.selection_args,  # $6-$8: the chunk's cells and exclusions
        ]
        name = "stream_chunk"
        output: Callable[[bytes], Coroutine[Any, Any, None]] = consume
        if self.kind == "drill":
            # Each row comes with its test_group flag, checked before any of it is submitted.
            name, output = "stream_chunk_drill", _TestGroupOnly(consume, self._refuse_recipient)
            args.append(self.reached_of)  # $9: NULL, or the broadcast whose reached we want
        elif self.reached_of is not None:
            name = "stream_chunk_reached"
            args.append(self.reached_of)  # $9: the broadcast whose reached recipients we want
        await conn.copy_from_query(queries[name].rstrip().rstrip(";"), *args, output=output)
        if dropped:
            return  # the chunk stays unfinished: its lease is handed back, a resume takes it up
        if self._refusal:
            return  # a drill refused mid-chunk: the rest of the chunk was read, not submitted
        progress.streamed = True
        if progress.outstanding == 0:
            self._completable.append(chunk.chunk_no)

    async def _wait_drained(self) -> None:
        while self.pool.outstanding:
            drained = asyncio.ensure_future(self.pool.drain())
            stop = asyncio.ensure_future(self._stop.wait())
            await asyncio.wait({drained, stop}, return_when=asyncio.FIRST_COMPLETED)
            for fut in (drained, stop):
                fut.cancel()
            if self._stop.is_set():
                self.pool.cancel()
                await self.pool.drain()
                return

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self._flush()
            self._report()

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.stats)

    async def _controller(self) -> None:
        """Stop within CONTROL_INTERVAL of a cancel, a pause or a more urgent broadcast."""
        while True:
            async with self.db.acquire() as conn:
                row = await conn.fetchrow(queries["get_state"], self.broadcast_id)
                assert row is not None
                urgent = await conn.fetchval(queries["higher_priority_waiting"], row["priority"])
            if row["state"] in ("cancelled", "paused", "expired", "failed"):
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
        dropped = self.pool.cancel()
        log.warning("broadcast_halted", reason=reason, queued_parts_dropped=len(dropped))

    async def _lease_renewer(self) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            async with self.db.acquire() as conn:
                await conn.execute(
                    queries["renew_leases"], self.broadcast_id, self.worker, LEASE_SECONDS
                )

    async def _final_state(self) -> str:
        async with self.db.acquire() as conn:
            if self._stop_reason:
                # Hand unfinished chunks back at once (no waiting for leases to expire).
                await conn.execute(queries["release_leases"], self.broadcast_id, self.worker)
            if self._stop_reason == "refused":
                return await self._refuse_drill(conn, self._refusal)
            if self._stop_reason == "expired":
                await store.set_state(
                    conn, self.broadcast_id, "expired", ["approved", "running", "paused"]
                )
                return "expired"
            left = await conn.fetchrow(queries["chunks_left"], self.broadcast_id)
            assert left is not None
            # Everything was sent: completed, even if a pause landed in the last moments (a
            # paused broadcast with nothing left could never be resumed into completion).
            if left["todo"] == 0 and await store.set_state(
                conn, self.broadcast_id, "completed", ["running", "paused"]
            ):
                return "completed"
            if self._stop_reason or left["todo"] == 0:
                state: str = await conn.fetchval(queries["get_state"], self.broadcast_id)
                return state
            return "running"  # other workers still hold chunks

    def _refuse_recipient(self, msisdn: bytes) -> None:
        self._refusal = f"recipient {msisdn.decode()} is not in the test group"
        self._halt("refused")

    async def _refuse_drill(self, conn: Conn, reason: str) -> str:
        """Fail a drill that would reach a non-test subscriber; the reason goes to the audit log."""
        await store.set_state(conn, self.broadcast_id, "failed", ["approved", "running", "paused"])
        await conn.execute(
            queries["insert_audit"],
            "engine",
            "drill_refused",
            f"broadcast:{self.broadcast_id}",
            json.dumps({"reason": f"drill refused: {reason}; a drill reaches the test group only"}),
        )
        log.error("drill_refused", reason=reason)
        return "failed"


class _TestGroupOnly:
    """A drill's COPY consumer: passes `msisdn\tlang` lines on only while every row streamed is
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
