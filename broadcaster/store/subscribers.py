"""Writing and reading the subscriber index: COPY loads and upserts, target counts, chunk streams.

Two ways in, chosen per import:
- an empty index is bulk-loaded: one transaction truncates it (so COPY writes frozen,
  all-visible rows), drops its secondary indexes and constraints, COPYs every batch straight in,
  rebuilds them and writes the area counts the batches carried. Index builds over sorted input
  are far cheaper than a million index insertions, and the table is never seen half-loaded.
- otherwise batches are staged with COPY and only new or changed rows are written (upsert);
  the count triggers follow those rows.

Either way an import is one transaction: all of it is written, or (an error half-way, a file
that turns out not to be UTF-8) none of it.

Batches are produced in a thread (CSV parsing and synthesis are CPU work) while the event loop
streams the previous one to the server, so the two overlap on two cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.subscribers import COPY_COLUMNS, AreaCounter, CopyBatch
from broadcaster.targeting import Selection, Target

log = structlog.get_logger(__name__)

IMPORT_LOCK_KEY = zlib.crc32(b"broadcaster.subscribers.import")
COUNT_COLUMNS = ("kind", "departement", "area", "lang", "test_group", "n")
Progress = Callable[[int], None]
"""Called with the number of rows written so far, after each batch."""


@dataclass(frozen=True)
class LoadResult:
    """What an import or synthesis did to the index."""

    rows: int
    inserted: int
    updated: int
    bulk: bool
    seconds: float

    @property
    def unchanged(self) -> int:
        return self.rows - self.inserted - self.updated

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "mode": "bulk" if self.bulk else "upsert",
            "seconds": round(self.seconds, 3),
            "rows_per_s": round(self.rows_per_second),
        }


async def load_subscribers(
    conn: Conn,
    batches: Iterator[CopyBatch],
    counter: AreaCounter,
    progress: Progress | None = None,
) -> LoadResult:
    """Write `batches` into the index: bulk load if it is empty, else upsert.

    `counter` must be the AreaCounter the batches are counted into (a bulk load stores its
    totals as the area counts).
    """
    started = time.monotonic()
    producer = _Producer(batches)
    try:
        result = await _bulk_load(conn, producer, counter, progress)
        if result is None:
            result = await _upsert(conn, producer, progress)
    finally:
        producer.stop()
    await conn.execute(queries["analyze_subscribers"])
    seconds = time.monotonic() - started
    return LoadResult(result[0], result[1], result[2], result[3], seconds)


async def _bulk_load(
    conn: Conn, producer: _Producer, counter: AreaCounter, progress: Progress | None
) -> tuple[int, int, int, bool] | None:
    """The empty-index path; None (having read nothing) if the index is not empty."""
    if not await conn.fetchval(queries["subscribers_empty"]):
        return None
    async with conn.transaction():
        await conn.execute(queries["import_lock"], IMPORT_LOCK_KEY)
        await conn.execute(queries["lock_subscribers"])
        if not await conn.fetchval(queries["subscribers_empty"]):
            return None  # another import got there first
        await conn.execute(queries["bulk_load_settings"])
        freeze = not await conn.fetchval(queries["subscribers_referenced"])
        if freeze:
            await conn.execute(queries["truncate_subscribers"])
        constraints = await conn.fetch(queries["subscriber_constraints"])
        indexes = await conn.fetch(queries["subscriber_indexes"])
        for c in reversed(constraints):
            await conn.execute(f"ALTER TABLE subscribers DROP CONSTRAINT {_ident(c['name'])}")
        for i in indexes:
            await conn.execute(f"DROP INDEX {i['name']}")  # regclass text: already quoted
        await conn.execute(queries["disable_count_triggers"])
        written = 0

        async def source() -> AsyncIterator[bytes]:
            nonlocal written
            async for batch in producer:
                yield batch.data
                written += batch.rows
                if progress is not None:
                    progress(written)

        await conn.copy_to_table(
            "subscribers", source=source(), columns=COPY_COLUMNS, format="text", freeze=freeze
        )
        log.info("bulk_load_copied", action="import", rows=written)
        # Count what was streamed while the server rebuilds the indexes.
        counting = asyncio.ensure_future(asyncio.to_thread(counter.settle))
        # Keys first (the foreign keys of other tables may need them), then indexes, then
        # this table's foreign keys (validated in one pass each).
        rebuild = [
            *(_add_constraint(c) for c in constraints if not c["foreign"]),
            *(i["definition"] for i in indexes),
            *(_add_constraint(c) for c in constraints if c["foreign"]),
        ]
        try:
            for statement in rebuild:
                step = time.monotonic()
                await conn.execute(statement)
                log.info(
                    "bulk_load_rebuilt",
                    action="import",
                    statement=statement[:80],
                    seconds=round(time.monotonic() - step, 2),
                )
        finally:
            await counting
        await conn.execute(queries["enable_count_triggers"])
        await conn.execute(queries["clear_counts"])
        await conn.copy_records_to_table(
            "subscriber_counts", records=counter.rows(), columns=COUNT_COLUMNS
        )
    return written, written, 0, True


async def _upsert(
    conn: Conn, producer: _Producer, progress: Progress | None
) -> tuple[int, int, int, bool]:
    """The non-empty-index path: each batch staged, then applied, in one transaction."""
    rows = inserted = updated = 0
    async with conn.transaction():
        await conn.execute(queries["import_lock"], IMPORT_LOCK_KEY)
        await conn.execute(queries["create_import_table"])
        async for batch in producer:
            await conn.copy_to_table(
                "subscribers_import", source=_once(batch.data), columns=COPY_COLUMNS, format="text"
            )
            row = await conn.fetchrow(queries["apply_import"])
            await conn.execute(queries["clear_import_table"])
            assert row is not None
            rows += batch.rows
            inserted += row["inserted"]
            updated += row["updated"]
            if progress is not None:
                progress(rows)
    return rows, inserted, updated, False


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _add_constraint(c: Any) -> str:
    return f"ALTER TABLE subscribers ADD CONSTRAINT {_ident(c['name'])} {c['definition']}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Producer:
    """Runs a batch iterator in a thread, a couple of batches ahead of the consumer."""

    def __init__(self, batches: Iterator[CopyBatch], depth: int = 2) -> None:
        self._batches = batches
        self._queue: queue.Queue[CopyBatch | BaseException | None] = queue.Queue(depth)
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        try:
            for batch in self._batches:
                if self._stopped.is_set() or not self._put(batch):
                    return
            self._put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: CopyBatch | BaseException | None) -> bool:
        while not self._stopped.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __aiter__(self) -> _Producer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="subscriber-batches")
            self._thread.start()
        return self

    async def __anext__(self) -> CopyBatch:
        item = await asyncio.to_thread(self._queue.get)
        if item is None:
            self._queue.put(None)  # later iterations end too
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            self._queue.put(item)
            raise item
        return item

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            with contextlib.suppress(queue.Empty):
                while True:
                    self._queue.get_nowait()
            self._thread.join()


# --- counting ------------------------------------------------------------------------------------


async def target_counts(conn: Conn, target: Target) -> dict[tuple[str, str], int]:
    """Recipients per (département, subscriber language) for a target.

    Sums of the maintained counts wherever they add up exactly (whole départements, communes,
    cells, a département minus communes or minus cells); a département mixing communes and cells
    with exclusions is counted from its rows.
    """
    keys: list[tuple[str, str, str, int]] = []
    counts: dict[tuple[str, str], int] = {}
    for dep, selection in target.selections():
        exact = _count_keys(dep, selection)
        if exact is not None:
            keys += exact
            continue
        communes, cells, no_communes, no_cells = selection.columns()
        rows = await conn.fetch(
            queries["selection_counts"],
            dep,
            communes,
            cells,
            no_communes,
            no_cells,
            target.test_group_only,
        )
        counts.update({(dep, r["lang"]): r["n"] for r in rows})
    if keys:
        kinds, deps, areas, signs = (list(column) for column in zip(*keys, strict=True))
        rows = await conn.fetch(
            queries["area_counts"], kinds, deps, areas, signs, target.test_group_only
        )
        counts.update({(r["departement"], r["lang"]): r["n"] for r in rows})
    return {key: n for key, n in counts.items() if n > 0}


def _count_keys(dep: str, sel: Selection) -> list[tuple[str, str, str, int]] | None:
    """(kind, departement, area, sign) whose signed counts add up to the selection, if any do."""
    if sel.communes is None:
        if sel.exclude_communes and sel.exclude_cells:
            return None  # a subscriber may be in both: the difference is not a sum
        minus = [("commune", dep, c, -1) for c in sorted(sel.exclude_communes)]
        minus += [("cell", dep, c, -1) for c in sorted(sel.exclude_cells)]
        return [("departement", dep, "", 1), *minus]
    if sel.communes and sel.cells:
        return None  # a subscriber may be in both
    if sel.communes:
        if sel.exclude_cells:
            return None
        return [("commune", dep, c, 1) for c in sorted(sel.communes)]
    if sel.exclude_communes:
        return None
    return [("cell", dep, c, 1) for c in sorted(sel.cells)]


async def chunk_starts(
    conn: Conn, departement: str, selection: Selection, test_group_only: bool, size: int
) -> list[int]:
    """The first msisdn of every run of `size` recipients of a département's selection."""
    if selection.whole and selection.simple:
        rows = await conn.fetch(queries["chunk_starts"], departement, size, test_group_only)
    else:
        communes, cells, no_communes, no_cells = selection.columns()
        rows = await conn.fetch(
            queries["chunk_starts_selection"],
            departement,
            size,
            test_group_only,
            communes,
            cells,
            no_communes,
            no_cells,
        )
    return [r["msisdn"] for r in rows]


async def cell_departements(conn: Conn, cells: Sequence[str]) -> dict[str, frozenset[str]]:
    """For each named cell that has subscribers, the départements where they are."""
    if not cells:
        return {}
    rows = await conn.fetch(queries["cell_departements"], list(cells))
    return {r["cell_id"]: frozenset(r["departements"]) for r in rows}


async def total_subscribers(conn: Conn) -> int:
    total: int = await conn.fetchval(queries["total_subscribers"])
    return total


async def in_departements(conn: Conn, departements: Sequence[str]) -> list[tuple[int, str, str]]:
    """(msisdn, département, language) of every subscriber of these départements."""
    rows = await conn.fetch(queries["subscribers_in_departements"], list(departements))
    return [(r["msisdn"], r["departement"], r["lang"]) for r in rows]
