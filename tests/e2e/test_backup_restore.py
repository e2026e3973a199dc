"""Backup and restore, as README "Running it in production" says: `pg_dump -Fc` of the database
in use, `pg_restore` into a fresh database, then `broadcaster check` passes and the report of a
broadcast sent before the backup reads the same there (partitions, functions and grants too)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import asyncpg
import pytest
from fixtures_cli import Cli

from broadcaster.importer import seed_synthetic
from loadtest.common import mock_smsc_process


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found, f"{name} is missing: install PostgreSQL's client programs (postgresql-client)"
    return found


def test_a_dump_restored_into_a_fresh_database_checks_and_reports(
    cli: Cli,
    db_dsn: str,
    new_database: Callable[[str | None], str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await seed_synthetic(conn, 3000, seed=5)
        finally:
            await conn.close()

    asyncio.run(seed())
    with mock_smsc_process() as port:
        monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{port}")
        sent = cli("send", "--area", "dep:13", "--template", "drill", "--drill", "--yes")
        assert sent["state"] == "completed"
        before = cli("report", str(sent["broadcast_id"]))

        dump = tmp_path / "broadcaster.dump"
        subprocess.run(
            [_tool("pg_dump"), "--format=custom", f"--file={dump}", f"--dbname={db_dsn}"],
            check=True,
            timeout=120,
        )
        restored = new_database(None)
        subprocess.run(
            [_tool("pg_restore"), "--exit-on-error", f"--dbname={restored}", str(dump)],
            check=True,
            timeout=120,
        )
        there = Cli(restored, capsys)
        check = there("check")
        after = there("report", str(sent["broadcast_id"]))
    assert check["ok"] is True, check
    assert {c["status"] for c in check["checks"]} == {"ok"}, check
    assert after == before
    assert after["accepted"] == sent["accepted"] > 0

    async def partitions() -> int:
        conn = await asyncpg.connect(restored)
        try:
            return int(
                await conn.fetchval(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = 'deliveries'::regclass"
                )
            )
        finally:
            await conn.close()

    assert asyncio.run(partitions()) >= 2  # this month's, the next ones, DEFAULT
