"""Filling the subscriber index: CSV import with a reject file, and synthetic subscribers.

Both stream COPY batches into the store (bulk load into an empty index, upsert otherwise) and
log their progress every few seconds, so that a 10M-row import is never a silent minute.

An import is all or nothing: the store writes it in one transaction, so a file that fails
half-way (a byte that is not UTF-8 at row 200,000) leaves the index as it was, and says so.
Rows refused one by one (a bad number, an unknown language) are not failures: they go to the
reject file, and the rest is imported, as the report says.
"""

from __future__ import annotations

import codecs
import csv
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import structlog

from broadcaster.domain.msisdn import MobileNumbers
from broadcaster.errors import InputError
from broadcaster.settings import Settings
from broadcaster.store.areas import departement_populations
from broadcaster.store.database import Conn, configured, connect, ensure_migrated
from broadcaster.store.subscribers import LoadResult, load_subscribers, total_subscribers
from broadcaster.subscribers import AreaCounter, CopyBatch, ImportRules, Rejected, csv_batches
from broadcaster.subscribers import synth_batches as synth_copy_batches

log = structlog.get_logger(__name__)

PROGRESS_EVERY_S = 3.0


@dataclass(frozen=True)
class ImportResult:
    imported: int
    rejected: int
    reject_file: Path | None
    load: LoadResult

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "rejected": self.rejected,
            "reject_file": str(self.reject_file) if self.reject_file else None,
            **self.load.as_json(),
        }


class ProgressLog:
    """A progress callback that logs a line at most every few seconds."""

    def __init__(self, event: str, total: int | None = None, every: float | None = None):
        self.event = event
        self.total = total
        self.every = PROGRESS_EVERY_S if every is None else every
        self.started = time.monotonic()
        self.last = self.started

    def __call__(self, rows: int) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        rate = rows / (now - self.started)
        fields: dict[str, Any] = {"action": "import", "rows": rows, "rows_per_s": round(rate)}
        if self.total:
            fields["percent"] = round(100 * rows / self.total, 1)
            fields["eta_s"] = round((self.total - rows) / rate, 1) if rate > 0 else None
        log.info(self.event, **fields)


async def import_csv(settings: Settings, path: Path, reject_file: Path | None) -> ImportResult:
    """Validate every row, write rejections (line, reason, raw row), load the valid rows.

    The file is UTF-8, with or without a byte order mark (spreadsheets write one)."""
    reject_path = reject_file or path.with_name(path.name + ".rejects.csv")
    dsn = configured(settings)
    numbers = MobileNumbers(settings.home_country)
    try:
        source = path.open(encoding="utf-8-sig", newline="")
        size = os.fstat(source.fileno()).st_size
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    await ensure_migrated(dsn, settings.sql_dir)
    conn = await connect(dsn)
    rejected: list[Rejected] = []
    try:
        rules = ImportRules(frozenset(await departement_populations(conn)), numbers)
        counter = AreaCounter()
        batches = csv_batches(source, rules, rejected.append, counter)
        try:
            load = await load_subscribers(
                conn, batches, counter, ProgressLog("import_progress", total=size // 36)
            )
        except UnicodeDecodeError as exc:
            raise InputError(_not_utf8(path, exc)) from exc
    finally:
        source.close()
        await conn.close()
    if rejected:
        with reject_path.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["line", "reason", "row"])
            for r in rejected:
                writer.writerow([r.line, r.reason, r.raw])
        for r in rejected[:5]:
            log.warning("row_rejected", line=r.line, reason=r.reason)
        if rejected[0].line == 1:  # the header itself: no row was read, say so as one error
            raise InputError(f"{path}: {rejected[0].reason}; nothing was imported")
    log.info(
        "import_done",
        action="import",
        rejected=len(rejected),
        **load.as_json(),
    )
    return ImportResult(load.rows, len(rejected), reject_path if rejected else None, load)


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> str:
    """What to tell a person whose file is not UTF-8: where, and that nothing was imported."""
    line, found = _first_undecodable(path)
    where = f"line {line:,} has the byte(s) {found.hex(' ')}" if found else exc.reason
    return (
        f"{path} is not UTF-8 text: {where}; nothing was imported. "
        "Save it as UTF-8 (CSV UTF-8 in a spreadsheet) and import it again"
    )


def _first_undecodable(path: Path) -> tuple[int, bytes]:
    """The line of the first bytes of `path` that are not UTF-8, and those bytes ((0, b"")
    if there are none: the file changed since)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as raw:
        for chunk in iter(partial(raw.read, 1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:  # exc.object: the decoder's pending bytes + chunk
                return line + exc.object.count(b"\n", 0, exc.start), exc.object[exc.start : exc.end]
            line += chunk.count(b"\n")
    return 0, b""


async def synthesise(settings: Settings, count: int, seed: int = 1) -> LoadResult:
    """Add `count` synthetic subscribers after those already there."""
    if count < 1:
        raise InputError("the number of subscribers to synthesise must be at least 1")
    dsn = configured(settings)
    await ensure_migrated(dsn, settings.sql_dir)
    conn = await connect(dsn)
    try:
        return await synthesise_into(conn, count, seed)
    finally:
        await conn.close()


async def synthesise_into(conn: Conn, count: int, seed: int = 1) -> LoadResult:
    """Synthesise `count` subscribers into an open connection, numbered after those there."""
    populations = await departement_populations(conn)
    start = await total_subscribers(conn)
    counter = AreaCounter()
    try:
        batches: Iterator[CopyBatch] = synth_copy_batches(
            count, populations, seed=seed, start=start, counter=counter
        )
        next_batch = next(batches, None)  # argument errors surface here, not in a thread
    except ValueError as exc:
        raise InputError(f"cannot synthesise {count} more subscribers: {exc}") from exc

    def all_batches() -> Iterator[CopyBatch]:
        if next_batch is not None:
            yield next_batch
        yield from batches

    result = await load_subscribers(
        conn, all_batches(), counter, ProgressLog("synth_progress", total=count)
    )
    log.info("synth_done", action="synth", **result.as_json())
    return result


async def seed_synthetic(conn: Conn, count: int, seed: int = 1) -> int:
    """Synthesise into an open connection (used by the demo and tests); returns rows written."""
    result = await synthesise_into(conn, count, seed)
    return result.inserted + result.updated
