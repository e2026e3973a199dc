"""Shared database fixtures: one PostgreSQL server per session, a fresh database per test.

The server, first that applies:
1. `TEST_DATABASE_URL`, else `DATABASE_URL` (a server-level DSN: the tests create and drop
   `bc_test_*` / `bc_tmpl_*` databases there, and touch nothing else);
2. the local server at postgresql://postgres@127.0.0.1:5432/postgres, if it answers within 1 s;
3. an embedded throwaway cluster (what CI relies on where no server runs).
`BROADCASTER_TEST_FORCE_EMBEDDED=1` skips 1 and 2, to exercise the fallback.

A template database is migrated once per session; each `db_dsn` is a clone of it
(`CREATE DATABASE ... TEMPLATE`, a few tens of ms), dropped after the test. Its reference
placeholder fallback numbers are accepted (live sends may carry them), as the demo does.

Other fixture families (the mock SMSC, ...) go in their own `tests/fixtures_*.py` modules: they are
registered below as plugins, so adding one needs no change here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from broadcaster.settings import Settings
from broadcaster.store.areas import accept_placeholders_for_rehearsal
from broadcaster.store.embedded import EmbeddedPostgres
from broadcaster.store.migrations import migrate

_package = __name__.rpartition(".")[0]
pytest_plugins = [
    f"{_package}.{path.stem}" if _package else path.stem
    for path in sorted(Path(__file__).parent.glob("fixtures_*.py"))
]

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
FORCE_EMBEDDED = "BROADCASTER_TEST_FORCE_EMBEDDED"
MIGRATIONS_DIR = Settings().sql_dir / "migrations"
TEST_DB = re.compile(r"^bc_(?:test|tmpl)_(?P<pid>\d+)_[0-9a-f]+$")

T = TypeVar("T")


# --- helpers -------------------------------------------------------------------------------------


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine on a private loop in a private thread: safe from sync fixtures and tests,
    whatever loop pytest-asyncio has set up in this thread."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(make()))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target, name="db-fixture")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def with_database(dsn: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def _answers(dsn: str, timeout: float) -> bool:
    try:
        conn = await asyncpg.connect(dsn, timeout=timeout)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    await conn.close()
    return True


async def _create_database(server_dsn: str, name: str, template: str | None = None) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await conn.close()


async def _drop_databases(server_dsn: str, names: list[str]) -> None:
    conn = await asyncpg.connect(server_dsn)
    try:
        force = " WITH (FORCE)" if conn.get_server_version().major >= 13 else ""
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"{force}')
    finally:
        await conn.close()


async def _stale_test_databases(server_dsn: str) -> list[str]:
    """Test databases left by a killed session on this machine (their pid is gone)."""
    conn = await asyncpg.connect(server_dsn)
    try:
        names = [r["datname"] for r in await conn.fetch("SELECT datname FROM pg_database")]
    finally:
        await conn.close()
    stale = []
    for name in names:
        match = TEST_DB.match(name)
        if match and not _pid_alive(int(match["pid"])):
            stale.append(name)
    return stale


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_local(dsn: str) -> bool:
    parts = urlsplit(dsn)
    return parts.hostname in (None, "", "localhost", "127.0.0.1", "::1") or "host=/" in parts.query


async def _migrate_database(dsn: str) -> None:
    """The current schema; the reference placeholder numbers taken as real, as an installation
    whose operator set its numbers (`empty_db_dsn` + `migrate` gives a fresh one, with them)."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, MIGRATIONS_DIR)
        await accept_placeholders_for_rehearsal(conn)
    finally:
        await conn.close()


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """A server-level DSN for the whole session (see the module docstring for which server)."""
    if os.environ.get(FORCE_EMBEDDED, "") in ("", "0"):
        for var in ("TEST_DATABASE_URL", "DATABASE_URL"):
            if os.environ.get(var):
                yield os.environ[var]
                return
        if run_sync(lambda: _answers(LOCAL_SERVER, timeout=1.0)):
            yield LOCAL_SERVER
            return
    with EmbeddedPostgres() as server:
        yield server.dsn


@pytest.fixture(scope="session")
def pg_template(pg_server: str) -> Iterator[str]:
    """Name of a database migrated once for the session, that each `db_dsn` is cloned from."""
    if _is_local(pg_server):
        stale = run_sync(lambda: _stale_test_databases(pg_server))
        if stale:
            run_sync(lambda: _drop_databases(pg_server, stale))
    name = f"bc_tmpl_{os.getpid()}_{secrets.token_hex(4)}"
    run_sync(lambda: _create_database(pg_server, name))
    try:
        run_sync(lambda: _migrate_database(with_database(pg_server, name)))
        yield name
    finally:
        run_sync(lambda: _drop_databases(pg_server, [name]))


@pytest.fixture
def new_database(pg_server: str) -> Iterator[Callable[[str | None], str]]:
    """Factory: `new_database(template)` creates a database and returns its DSN; all are
    dropped after the test. `template=None` gives an empty database (from template1)."""
    created: list[str] = []

    def create(template: str | None = None) -> str:
        name = f"bc_test_{os.getpid()}_{secrets.token_hex(6)}"
        run_sync(lambda: _create_database(pg_server, name, template))
        created.append(name)
        return with_database(pg_server, name)

    yield create
    if created:
        run_sync(lambda: _drop_databases(pg_server, created))


@pytest.fixture
def db_dsn(new_database: Callable[[str | None], str], pg_template: str) -> str:
    """DSN of a fresh database with the current schema, for this test only."""
    return new_database(pg_template)


@pytest.fixture
def empty_db_dsn(new_database: Callable[[str | None], str]) -> str:
    """DSN of a fresh database with no schema at all (for migration tests)."""
    return new_database(None)


@pytest.fixture
async def db_conn(db_dsn: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A connection to `db_dsn`, closed after the test."""
    conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(db_dsn)
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
