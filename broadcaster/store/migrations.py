"""Versioned schema migrations: `sql/migrations/NNNN_name.sql`, applied in order, each once.

Each file runs in its own transaction together with the row recording it in `schema_migrations`,
so a file is either wholly applied and recorded, or not at all. Every transaction first takes a
transaction-level advisory lock: two processes migrating at once queue behind each other, and the
second finds the work done. A file must therefore not contain its own BEGIN/COMMIT, nor statements
that cannot run in a transaction (CREATE INDEX CONCURRENTLY).
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import structlog

from broadcaster.errors import StoreError

if TYPE_CHECKING:
    from broadcaster.store.database import Conn

log = structlog.get_logger(__name__)

FILE_NAME = re.compile(r"^(?P<version>\d{4,})_(?P<name>[a-z0-9_]+)\.sql$")
LOCK_KEY = zlib.crc32(b"broadcaster.migrations")
"""Advisory lock key (a constant) that serialises migrators across processes and hosts."""

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    version: int
    path: Path

    @property
    def name(self) -> str:
        """The file name, e.g. `0001_schema.sql`: what is recorded and reported."""
        return self.path.name


def discover(migrations_dir: Path) -> list[Migration]:
    """The migration files in version order; a misnamed or duplicate file is an error."""
    if not migrations_dir.is_dir():
        raise StoreError(f"migrations directory {migrations_dir} does not exist")
    by_version: dict[int, Migration] = {}
    for path in sorted(migrations_dir.glob("*.sql")):
        match = FILE_NAME.match(path.name)
        if match is None:
            raise StoreError(
                f"migration file {path} is misnamed: expected NNNN_name.sql "
                "(four or more digits, then lower-case letters, digits and underscores)"
            )
        version = int(match["version"])
        if version in by_version:
            raise StoreError(
                f"migration files {by_version[version].path.name} and {path.name} in "
                f"{migrations_dir} have the same version {version}: renumber one of them"
            )
        by_version[version] = Migration(version, path)
    return [by_version[v] for v in sorted(by_version)]


async def applied_versions(conn: Conn) -> set[int]:
    """Versions recorded in schema_migrations (none if the table does not exist yet)."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return set()
    return {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}


async def pending(conn: Conn, migrations_dir: Path) -> list[str]:
    """File names not yet applied, in order (what `broadcaster check` reports)."""
    done = await applied_versions(conn)
    return [m.name for m in discover(migrations_dir) if m.version not in done]


async def migrate(conn: Conn, migrations_dir: Path) -> list[str]:
    """Apply the pending migrations in order; returns the file names applied (none if current)."""
    migrations = discover(migrations_dir)
    done = await applied_versions(conn)
    if done and all(m.version in done for m in migrations):
        return []  # nothing to do: also what the service's role (no CREATE privilege) may run
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute(CREATE_TABLE)
    applied: list[str] = []
    for migration in migrations:
        if await _apply(conn, migration):
            applied.append(migration.name)
    return applied


async def _apply(conn: Conn, migration: Migration) -> bool:
    try:
        sql = migration.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreError(f"cannot read migration {migration.path}: {exc}") from exc
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
            done = await conn.fetchval(
                "SELECT true FROM schema_migrations WHERE version = $1", migration.version
            )
            if done:
                return False
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
    except asyncpg.PostgresError as exc:
        raise StoreError(
            f"migration {migration.name} failed and was rolled back: {_describe(exc, sql)}"
        ) from exc
    log.info("migration_applied", action="migrate", version=migration.version, file=migration.name)
    return True


def _describe(exc: asyncpg.PostgresError, sql: str) -> str:
    """The Postgres message, with the line it points at when it points at one."""
    text = f"{type(exc).__name__}: {exc}"
    position = getattr(exc, "position", None)
    if position:
        with_line = sql[: int(position)].count("\n") + 1
        text += f" (line {with_line})"
    detail = getattr(exc, "detail", None)
    if detail:
        text += f"; {detail}"
    return text
