"""Migrations on a real server: applied once, atomically per file, safe to run concurrently."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broadcaster.errors import StoreError
from broadcaster.settings import Settings
from broadcaster.store.database import Conn, connect, create_pool, ensure_migrated
from broadcaster.store.migrations import discover, migrate, pending
from broadcaster.store.queries import queries

SQL_DIR = Settings().sql_dir
MIGRATIONS_DIR = SQL_DIR / "migrations"
ALL = [m.name for m in discover(MIGRATIONS_DIR)]


@pytest.fixture
async def empty_conn(empty_db_dsn: str) -> AsyncIterator[Conn]:
    conn = await connect(empty_db_dsn)
    try:
        yield conn
    finally:
        await conn.close()


def write(directory: Path, name: str, sql: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(sql, encoding="utf-8")


async def tables(conn: Conn) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


async def test_fresh_database_gets_the_schema_once(empty_conn: Conn) -> None:
    assert ALL[0] == "0001_schema.sql"
    assert await pending(empty_conn, MIGRATIONS_DIR) == ALL

    assert await migrate(empty_conn, MIGRATIONS_DIR) == ALL
    assert await migrate(empty_conn, MIGRATIONS_DIR) == []

    assert await pending(empty_conn, MIGRATIONS_DIR) == []
    assert {"subscribers", "broadcasts", "deliveries"} <= await tables(empty_conn)
    assert (
        await empty_conn.fetchval(queries["schema_version"]) == discover(MIGRATIONS_DIR)[-1].version
    )
    rows = await empty_conn.fetch("SELECT name FROM schema_migrations ORDER BY version")
    assert [row["name"] for row in rows] == ALL


async def test_template_clone_is_already_migrated(db_dsn: str) -> None:
    assert await ensure_migrated(db_dsn, SQL_DIR) == []
    conn = await connect(db_dsn)
    try:
        assert await pending(conn, MIGRATIONS_DIR) == []
        assert await conn.fetchval("SELECT count(*) FROM subscribers") == 0
    finally:
        await conn.close()


async def test_ensure_migrated_applies_pending(empty_db_dsn: str) -> None:
    assert await ensure_migrated(empty_db_dsn, SQL_DIR) == ALL
    assert await ensure_migrated(empty_db_dsn, SQL_DIR) == []


async def test_pool_connections_migrate_too(empty_db_dsn: str) -> None:
    pool = await create_pool(empty_db_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            assert await migrate(conn, MIGRATIONS_DIR) == ALL
            assert await pending(conn, MIGRATIONS_DIR) == []
    finally:
        await pool.close()


async def test_failing_migration_applies_nothing_of_that_file(
    empty_conn: Conn, tmp_path: Path
) -> None:
    write(tmp_path, "0001_good.sql", "CREATE TABLE good (id integer);\n")
    write(
        tmp_path,
        "0002_bad.sql",
        "CREATE TABLE half_done (id integer);\n\nINSERT INTO nowhere VALUES (1);\n",
    )

    with pytest.raises(StoreError) as caught:
        await migrate(empty_conn, tmp_path)

    message = str(caught.value)
    assert "0002_bad.sql" in message
    assert 'relation "nowhere" does not exist' in message
    assert "(line 3)" in message
    assert await tables(empty_conn) == {"schema_migrations", "good"}
    assert await pending(empty_conn, tmp_path) == ["0002_bad.sql"]

    # Fixed, it applies on the next run.
    write(tmp_path, "0002_bad.sql", "CREATE TABLE half_done (id integer);\n")
    assert await migrate(empty_conn, tmp_path) == ["0002_bad.sql"]


async def test_concurrent_migrators_apply_each_file_once(empty_db_dsn: str, tmp_path: Path) -> None:
    shutil.copy(MIGRATIONS_DIR / "0001_schema.sql", tmp_path)
    # Slow enough that both migrators are in flight at the same time.
    write(tmp_path, "0002_slow.sql", "SELECT pg_sleep(0.3);\nCREATE TABLE slow (id integer);\n")
    first, second = await connect(empty_db_dsn), await connect(empty_db_dsn)
    try:
        results = await asyncio.gather(migrate(first, tmp_path), migrate(second, tmp_path))

        assert sorted(results[0] + results[1]) == ["0001_schema.sql", "0002_slow.sql"]
        versions = await first.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [row["version"] for row in versions] == [1, 2]
    finally:
        await first.close()
        await second.close()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (["0001_ok.sql", "1_short.sql"], "1_short.sql is misnamed"),
        (["0001_ok.sql", "0002-dash.sql"], "0002-dash.sql is misnamed"),
        (["0001_ok.sql", "0001_again.sql"], "0001_again.sql and 0001_ok.sql"),
    ],
)
async def test_bad_file_names_are_refused_before_anything_runs(
    empty_conn: Conn, tmp_path: Path, files: list[str], message: str
) -> None:
    for name in files:
        write(tmp_path, name, "CREATE TABLE t (id integer);\n")

    with pytest.raises(StoreError, match=message):
        await migrate(empty_conn, tmp_path)

    assert await tables(empty_conn) == set()


def test_discover_orders_by_version_and_ignores_other_files(tmp_path: Path) -> None:
    for name in ("0010_later.sql", "0002_earlier.sql", "README.md"):
        write(tmp_path, name, "SELECT 1;\n")

    assert [(m.version, m.name) for m in discover(tmp_path)] == [
        (2, "0002_earlier.sql"),
        (10, "0010_later.sql"),
    ]
