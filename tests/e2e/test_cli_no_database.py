"""Without DATABASE_URL, every command but `demo` refuses with one clear message (exit 2) and
starts no throwaway database: an import, a token or a broadcast there would be lost at exit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import asyncpg
import pytest

from broadcaster.cli import main
from broadcaster.store import embedded

COMMANDS = [
    ["db", "migrate"],
    ["subscribers", "synth", "100"],
    ["subscribers", "import", "nothing.csv"],
    ["areas"],
    ["areas", "vars", "75"],
    ["areas", "set-var", "75", "fallback_number", "01 99 00 75 99"],
    ["preview", "--area", "dep:75", "--template", "outage"],
    ["send", "--area", "dep:75", "--template", "outage"],
    ["status", "1"],
    ["list"],
    ["tokens", "list"],
    ["audit"],
    ["drill", "runs"],
    ["worker", "--until-idle"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_but_demo_needs_the_database(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # main() would point structlog at this test's captured stderr, closed after the test.
    monkeypatch.setattr("broadcaster.cli.configure_logging", lambda **_: None)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("BROADCASTER_SMSC_URL", "smpp://t:pw@127.0.0.1:9")
    started: list[object] = []
    monkeypatch.setattr(embedded.EmbeddedPostgres, "start", lambda self: started.append(self))
    code = main(command)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "set DATABASE_URL (or --database-url)" in err
    assert "only `broadcaster demo` starts a throwaway one" in err
    assert started == []  # no throwaway cluster was started behind the user's back


UNMIGRATED = [
    ["status", "1"],
    ["report", "1"],
    ["list"],
    ["cancel", "1"],
    ["audit"],
]


@pytest.mark.parametrize("command", UNMIGRATED, ids=" ".join)
def test_a_command_that_does_not_migrate_says_to_migrate_a_fresh_database(
    command: list[str],
    new_database: Callable[[str | None], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On a database without the schema, the commands that only read (or act on what is there)
    used to end in asyncpg's UndefinedTableError traceback; they say what to run, exit 1, and
    create nothing."""
    monkeypatch.setattr("broadcaster.cli.configure_logging", lambda **_: None)
    dsn = new_database(None)
    code = main(["--database-url", dsn, *command])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "of this version's migrations (from 0001_schema.sql)" in err, err
    assert "run `broadcaster db migrate` first" in err
    assert "Traceback" not in err

    async def tables() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            return int(
                await conn.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            )
        finally:
            await conn.close()

    assert asyncio.run(tables()) == 0  # nothing was migrated behind the user's back


def test_stopping_a_broadcast_is_not_held_up_by_a_migration_it_does_not_need(
    db_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CLI upgraded before `db migrate` ran (or run with a role that cannot migrate) still
    cancels, pauses and resumes: stopping a live broadcast must not wait for a deployment.
    What reads the newer schema (`status`) says to migrate."""
    monkeypatch.setattr("broadcaster.cli.configure_logging", lambda **_: None)

    async def one_migration_behind() -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await conn.execute("ALTER TABLE workers DROP COLUMN takes_work")
            await conn.execute("DELETE FROM schema_migrations WHERE version = 25")
        finally:
            await conn.close()

    async def approved_broadcast() -> int:
        conn = await asyncpg.connect(db_dsn)
        try:
            return int(
                await conn.fetchval(
                    "INSERT INTO broadcasts (kind, state, template, target, expires_at) VALUES"
                    " ('live', 'approved', 'outage', '{}', now() + interval '1 hour') RETURNING id"
                )
            )
        finally:
            await conn.close()

    asyncio.run(one_migration_behind())
    live = asyncio.run(approved_broadcast())
    code = main(["--database-url", db_dsn, "--json", "cancel", str(live)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["state"] == "cancelled"
    for action in ("cancel", "pause", "resume"):
        code = main(["--database-url", db_dsn, action, "424242"])
        err = capsys.readouterr().err
        assert "migrations" not in err, err  # past the gate: to the broadcast itself
        assert "there is no broadcast 424242" in err and code == 2, (code, err)
    code = main(["--database-url", db_dsn, "status", "424242"])
    assert code == 1
    assert "lacks 1 of this version's migrations (from 0025_" in capsys.readouterr().err
