"""Which errors mean "the database went away" (ridden out, 503) and which are bugs (issue 20)."""

from __future__ import annotations

import asyncpg
import pytest

from broadcaster.store.database import connection_lost


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        FileNotFoundError(2, "No such file or directory"),  # a unix socket gone with the server
        TimeoutError(),
        asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        asyncpg.exceptions.CrashShutdownError("terminating connection"),
        asyncpg.InterfaceError(
            "cannot call Transaction.__aexit__(): the underlying connection is closed"
        ),
    ],
)
def test_a_lost_or_refused_connection_is_an_outage(exc: BaseException) -> None:
    assert connection_lost(exc)


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
        asyncpg.UndefinedTableError("relation does not exist"),
        KeyError("fr"),
        ValueError("bad"),
    ],
)
def test_a_bug_is_not_an_outage(exc: BaseException) -> None:
    assert not connection_lost(exc)
