"""Filling the subscriber index: CSV import with a reject file, and synthetic subscribers."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from broadcaster.errors import InputError
from broadcaster.settings import Settings
from broadcaster.store.areas import departement_populations
from broadcaster.store.database import Conn, connect, database, ensure_migrated
from broadcaster.store.subscribers import upsert_subscribers
from broadcaster.subscribers import Rejected, SubscriberRow, read_csv, synth_rows

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ImportResult:
    imported: int
    rejected: int
    reject_file: Path | None

    def as_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "rejected": self.rejected,
            "reject_file": str(self.reject_file) if self.reject_file else None,
        }


async def import_csv(settings: Settings, path: Path, reject_file: Path | None) -> ImportResult:
    """Validate every row, write rejections (line, reason, raw row), upsert the valid rows."""
    reject_path = reject_file or path.with_name(path.name + ".rejects.csv")
    try:
        source = path.open(encoding="utf-8", newline="")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    async with database(settings) as dsn:
        await ensure_migrated(dsn, settings.sql_dir)
        conn = await connect(dsn)
        rejected: list[Rejected] = []
        try:
            known = set(await departement_populations(conn))

            def valid_rows() -> Iterator[SubscriberRow]:
                for item in read_csv(source, known):
                    if isinstance(item, Rejected):
                        rejected.append(item)
                    else:
                        yield item

            try:
                imported = await upsert_subscribers(conn, valid_rows())
            except UnicodeDecodeError as exc:
                raise InputError(f"{path} is not UTF-8 text ({exc.reason})") from exc
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
    log.info("import_done", imported=imported, rejected=len(rejected))
    return ImportResult(imported, len(rejected), reject_path if rejected else None)


async def synthesise(settings: Settings, count: int, seed: int = 1) -> int:
    """Add `count` synthetic subscribers after those already there."""
    if count < 1:
        raise InputError("the number of subscribers to synthesise must be at least 1")
    async with database(settings) as dsn:
        await ensure_migrated(dsn, settings.sql_dir)
        conn = await connect(dsn)
        try:
            return await seed_synthetic(conn, count, seed)
        finally:
            await conn.close()


async def seed_synthetic(conn: Conn, count: int, seed: int = 1) -> int:
    """Synthesise into an open connection (used by the demo and tests)."""
    populations = await departement_populations(conn)
    start = await conn.fetchval("SELECT count(*) FROM subscribers")
    added = await upsert_subscribers(conn, synth_rows(count, populations, seed=seed, start=start))
    await conn.execute("ANALYZE subscribers")
    return added
