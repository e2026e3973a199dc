"""The embedded fallback: a real throwaway cluster, started and removed; `database()` uses it
when DATABASE_URL is unset; connection failures become StoreErrors that say what to check.

These run for real everywhere (CI relies on the fallback where no server runs).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from structlog.testing import capture_logs

from broadcaster.errors import StoreError
from broadcaster.settings import Settings
from broadcaster.store.database import connect, create_pool, database, redact
from broadcaster.store.embedded import Binaries, EmbeddedPostgres, find_binaries


async def select_one(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        value: int = await conn.fetchval("SELECT 1")
    finally:
        await conn.close()
    return value


async def show(dsn: str, *names: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [await conn.fetchval(f"SHOW {name}") for name in names]
    finally:
        await conn.close()


def test_embedded_server_starts_answers_and_leaves_nothing_behind() -> None:
    with EmbeddedPostgres() as server:
        base_dir = server.base_dir
        assert base_dir is not None
        assert server.dsn.startswith("postgresql://postgres@/postgres?host=/tmp/bcpg-")
        assert len(str(base_dir / ".s.PGSQL.5432")) < 107
        assert asyncio.run(select_one(server.dsn)) == 1
        settings = asyncio.run(show(server.dsn, "fsync", "data_directory"))
        assert settings == ["off", str(base_dir / "data")]

    assert not base_dir.exists()
    assert not server.running
    with pytest.raises(StoreError, match="not running"):
        _ = server.dsn
    server.stop()  # idempotent


def test_failed_start_reports_the_server_log_and_cleans_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[str] = []
    mkdtemp = tempfile.mkdtemp

    def recording_mkdtemp(*args: Any, **kwargs: Any) -> str:
        made.append(mkdtemp(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(tempfile, "mkdtemp", recording_mkdtemp)
    server = EmbeddedPostgres(settings={"shared_buffers": "not-a-size"})

    with pytest.raises(StoreError, match="did not start") as caught:
        server.start()

    assert "shared_buffers" in str(caught.value)  # from the server log's tail
    assert len(made) == 1
    assert not Path(made[0]).exists()
    assert server.base_dir is None


def test_missing_binaries_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"install PostgreSQL .* or set DATABASE_URL"):
        find_binaries(search_dirs=[str(tmp_path / "*")], path=str(tmp_path), bundled=False)


def test_binaries_are_found_here() -> None:
    binaries = find_binaries()
    assert binaries.initdb.name == "initdb"
    assert binaries.pg_ctl.name == "pg_ctl"


def test_broken_binaries_fail_with_their_output() -> None:
    # Not under tmp_path: as root, initdb runs as another user, who cannot enter pytest's dirs.
    bin_dir = Path(tempfile.mkdtemp(prefix="bc-fake-bin-"))
    try:
        bin_dir.chmod(0o755)
        fake = bin_dir / "initdb"
        fake.write_text("#!/bin/sh\necho 'initdb: broken on purpose' >&2\nexit 3\n")
        fake.chmod(0o755)
        server = EmbeddedPostgres(binaries=Binaries(initdb=fake, pg_ctl=fake))

        with pytest.raises(StoreError, match=r"(?s)initdb failed .*broken on purpose"):
            server.start()
        assert server.base_dir is None
    finally:
        shutil.rmtree(bin_dir)


def test_unusable_binaries_fail_with_a_store_error(tmp_path: Path) -> None:
    not_executable = tmp_path / "initdb"
    not_executable.write_text("")
    server = EmbeddedPostgres(binaries=Binaries(initdb=not_executable, pg_ctl=not_executable))

    with pytest.raises(StoreError, match=r"cannot run .*initdb"):
        server.start()
    assert server.base_dir is None


async def test_database_without_url_starts_and_stops_an_embedded_server() -> None:
    with capture_logs() as logs:
        async with database(Settings(database_url=None)) as dsn:
            assert await select_one(dsn) == 1
    host = dsn.split("host=")[1].split("&")[0]

    assert not await asyncio.to_thread(Path(host).exists)
    events = {entry["event"]: entry for entry in logs if entry["log_level"] == "info"}
    assert list(events) == ["embedded_postgres_started", "embedded_postgres_stopped"]
    assert events["embedded_postgres_started"]["reason"] == "no DATABASE_URL"
    assert events["embedded_postgres_started"]["dsn"] == dsn


async def test_database_with_url_yields_it_untouched() -> None:
    url = "postgresql://someone:secret@db.example:5432/broadcaster"
    async with database(Settings(database_url=url)) as dsn:
        assert dsn == url


@pytest.mark.parametrize(
    ("dsn", "message"),
    [
        ("not a url", "is not usable"),
        ("mysql://user@host/db", "is not usable"),
        ("postgresql://postgres@127.0.0.1:1/postgres", "cannot reach PostgreSQL"),
        ("postgresql://postgres@/postgres?host=/nonexistent", "is the server running"),
        ("postgresql://postgres@127.0.0.1:99999/postgres", "is not usable"),
    ],
)
async def test_connection_failures_say_what_to_check(dsn: str, message: str) -> None:
    with pytest.raises(StoreError, match=message) as failed:
        await connect(dsn, timeout=2)
    # A URL that cannot be used is a setting to fix (2); a server not answering, a failure (1).
    assert failed.value.exit_code == (2 if message == "is not usable" else 1)
    with pytest.raises(StoreError, match=message):
        await create_pool(dsn, timeout=2, min_size=1)


async def test_server_side_refusals_say_what_to_check(pg_server: str) -> None:
    missing_db = urlunsplit(urlsplit(pg_server)._replace(path="/bc_no_such_database"))
    with pytest.raises(StoreError, match=r"does not exist .*create it") as refused:
        await connect(missing_db)
    assert refused.value.exit_code == 2  # a setting to fix, as a missing DATABASE_URL is
    conn = await connect(pg_server)
    await conn.close()


def test_passwords_never_appear_in_messages() -> None:
    assert redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact("postgresql://u@h/db?password=s3cret&sslmode=require") == (
        "postgresql://u@h/db?password=***&sslmode=require"
    )
    assert redact("postgresql://u@/db?host=/tmp/x") == "postgresql://u@/db?host=/tmp/x"
