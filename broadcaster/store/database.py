"""Where the database is, and connections to it whose failures say what to check.

`database(settings)` yields a DSN: `DATABASE_URL` when set, else a throwaway cluster started for
the lifetime of the block (and says so in the log). `connect` and `create_pool` translate every
way of failing to connect (refused, unknown host, bad URL, wrong password, missing database,
timeout) into a `StoreError` that names the server (password hidden) and what to check.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import asyncpg.pool
import structlog

from broadcaster.errors import ConfigError, DatabaseSettingError, StoreError
from broadcaster.settings import Settings
from broadcaster.store.embedded import EmbeddedPostgres
from broadcaster.store.migrations import migrate
from broadcaster.store.queries import queries

log = structlog.get_logger(__name__)

CONNECT_TIMEOUT_S = 10.0

Conn: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)
"""A connection, plain or acquired from a pool: what functions taking a connection accept."""

CONNECTION_LOST: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    # Shutting down, crashed, or starting up: `pg_ctl stop -m immediate` and the restart.
    asyncpg.exceptions.OperatorInterventionError,
)
"""What a lost or refused connection raises: the database is away, a process rides it out
(`until_answered`) and goes on (see `connection_lost`)."""
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (StoreError, *CONNECTION_LOST)
"""Exceptions that mean "the database does not answer" (HTTP 503, retry), not a bug."""


def connection_lost(exc: BaseException) -> bool:
    """The database went away (or is not back yet), as opposed to a bug: one of
    CONNECTION_LOST, or asyncpg's "connection is closed" on a connection lost meanwhile."""
    if isinstance(exc, CONNECTION_LOST):
        return True
    return isinstance(exc, asyncpg.InterfaceError) and "connection is closed" in str(exc)


OUTAGE_FIRST_WAIT_S = 0.05
OUTAGE_LONGEST_WAIT_S = 0.25
"""Back-off between attempts while the database is away: short, so that sending resumes within
a fraction of a second of its return (measured: 1.3 s with a 1 s cap); an attempt on a stopped
server is refused at once and costs next to nothing."""


NO_DATABASE = (
    "set DATABASE_URL (or --database-url) to the subscriber and broadcast database; only "
    "`broadcaster demo` starts a throwaway one (a broadcast, a token or an import in a "
    "database deleted at exit would be lost)"
)


def configured(settings: Settings) -> str:
    """DATABASE_URL, or a ConfigError that says what to set: every command works on the real
    database, never quietly on a throwaway one."""
    if not settings.database_url:
        raise ConfigError(f"no database: {NO_DATABASE}")
    return settings.database_url


@asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[str]:
    """Yield the DSN to use: DATABASE_URL, or an embedded server stopped when the block ends
    (for `demo` and the tests only: every other command needs `configured`)."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres()
    starting = asyncio.ensure_future(asyncio.to_thread(server.start))
    try:
        dsn = await asyncio.shield(starting)
    except BaseException:
        # Cancelled during initdb: let the thread finish, so that stop() finds all to delete.
        await asyncio.wait([starting])
        await asyncio.to_thread(server.stop)
        raise
    log.info(
        "embedded_postgres_started",
        dsn=dsn,
        reason="no DATABASE_URL",
        note="a throwaway database, deleted at exit; set DATABASE_URL to keep data",
    )
    try:
        yield dsn
    finally:
        await asyncio.to_thread(server.stop)
        log.info("embedded_postgres_stopped", dsn=dsn)


SERVER_SETTINGS = {"jit": "off"}
"""Every session of ours: no JIT. Our statements are short and per batch; PostgreSQL's cost
estimates for the set-based ones (receipt matching, roll-ups) pass `jit_above_cost`, and JIT
compilation then took 1.6 s of a 1.8 s receipt batch of 5,000 (EXPLAIN ANALYZE)."""


def _with_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    kwargs.setdefault("timeout", CONNECT_TIMEOUT_S)
    kwargs["server_settings"] = {**SERVER_SETTINGS, **kwargs.get("server_settings", {})}
    return kwargs


async def connect(dsn: str, **kwargs: Any) -> asyncpg.Connection[asyncpg.Record]:
    """`asyncpg.connect`, with connection failures turned into a StoreError saying what to check."""
    kwargs = _with_settings(kwargs)
    try:
        conn: asyncpg.Connection[asyncpg.Record] = await asyncpg.connect(dsn, **kwargs)
    except Exception as exc:
        raise connection_error(dsn, exc, kwargs["timeout"]) from exc
    return conn


async def create_pool(dsn: str, **kwargs: Any) -> asyncpg.Pool[asyncpg.Record]:
    """`asyncpg.create_pool` (opened: its first connections are made), failures as StoreError."""
    kwargs = _with_settings(kwargs)
    try:
        pool: asyncpg.Pool[asyncpg.Record] = await asyncpg.create_pool(dsn, **kwargs)
    except Exception as exc:
        raise connection_error(dsn, exc, kwargs["timeout"]) from exc
    return pool


async def ensure_migrated(dsn: str, sql_dir: Path) -> list[str]:
    """Apply pending migrations from `sql_dir/migrations`; returns the file names applied."""
    conn = await connect(dsn)
    try:
        return await migrate(conn, sql_dir / "migrations")
    finally:
        await conn.close()


async def create_database(server_dsn: str, name: str) -> str:
    """A new, empty database on the server of `server_dsn` (its name: letters, digits, _);
    the DSN to reach it."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise StoreError(f"{name!r} is not a database name this program creates")
    admin = await connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))


async def drop_database(server_dsn: str, name: str) -> None:
    """Drop a database `create_database` made, connections and all."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
        raise StoreError(f"{name!r} is not a database name this program creates")
    admin = await connect(server_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def ping(conn: Conn) -> None:
    """Raise unless the database answers a trivial query."""
    await conn.fetchval(queries["ping"])


async def until_answered(
    db: asyncpg.Pool[asyncpg.Record],
    *,
    first: float = OUTAGE_FIRST_WAIT_S,
    longest: float = OUTAGE_LONGEST_WAIT_S,
) -> float:
    """Wait until the database answers a trivial query again, retrying with back-off (doubling
    from `first` up to `longest`); the seconds waited (0.0: it answered at once). A database
    outage of seconds to minutes is ridden out this way rather than ending the process."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    delay = first
    while True:
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S), db.acquire() as conn:
                await ping(conn)
            return loop.time() - began
        except Exception as exc:
            if not connection_lost(exc):
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, longest)


def connection_error(dsn: str, exc: BaseException, timeout: float) -> StoreError:
    """Say which server failed, how, and what to check; never repeat the password."""
    where = redact(dsn)
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return DatabaseSettingError(
            f"{exc} on {where}: create it (createdb) or fix the database name"
        )
    if isinstance(
        exc, asyncpg.InvalidPasswordError | asyncpg.InvalidAuthorizationSpecificationError
    ):
        return DatabaseSettingError(
            f"PostgreSQL at {where} refused the login: {exc}; check user/password"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return StoreError(f"PostgreSQL at {where} refused the connection: {exc}")
    if isinstance(exc, TimeoutError):
        return StoreError(
            f"no answer from PostgreSQL at {where} within {timeout:g} s: "
            "check the host, the port and any firewall between"
        )
    if isinstance(exc, OSError):
        reason = exc.strerror or str(exc)
        return StoreError(
            f"cannot reach PostgreSQL at {where} ({reason}): is the server running, "
            "and are the host and port (or socket directory) in DATABASE_URL right?"
        )
    if isinstance(exc, ValueError | ArithmeticError | asyncpg.InterfaceError):
        return DatabaseSettingError(
            f"DATABASE_URL {where} is not usable ({exc}): "
            "expected postgresql://user:password@host:port/dbname"
        )
    return StoreError(f"cannot connect to PostgreSQL at {where}: {type(exc).__name__}: {exc}")


def redact(dsn: str) -> str:
    """The DSN with its password replaced by `***` (for messages and logs)."""
    try:
        parts = urlsplit(dsn)
        netloc = parts.netloc
        if parts.password is not None:
            netloc = netloc.replace(f":{parts.password}@", ":***@", 1)
        query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:
        return "<unparsable DSN>"
