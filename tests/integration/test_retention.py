"""Retention on a real database: `purge` drops exactly the month partitions the settings say
(counts before and after), never one holding outcomes of an unfinished broadcast, deletes old
audit entries and location records; a dry run changes nothing; the CLI says what went; and the
service's database role cannot UPDATE or DELETE the audit log, yet can purge."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from fixtures_cli import Cli

from broadcaster.commands.retention import purge
from broadcaster.domain.caller import SCHEDULER
from broadcaster.importer import seed_synthetic
from broadcaster.settings import Settings
from broadcaster.store import broadcasts, rollups
from broadcaster.store.chunks import DELIVERY_COLUMNS
from broadcaster.store.database import Conn
from broadcaster.store.migrations import migrate
from broadcaster.store.queries import queries
from loadtest.common import mock_smsc_process

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=200)  # a month wholly before the 90-day cutoff
OLDER = NOW - timedelta(days=250)
SETTINGS = Settings(
    retention_outcomes_days=90,
    retention_receipts_days=90,
    retention_audit_days=400,
    retention_locations_hours=48,
)


def _month(at: datetime, table: str = "deliveries") -> str:
    return f"{table}_{at:%Y_%m}"


@pytest.fixture
async def pool(db_dsn: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await asyncpg.create_pool(db_dsn, min_size=1, max_size=3)
    try:
        yield pool
    finally:
        await pool.close()


async def _broadcast(conn: Conn, state: str) -> int:
    return int(
        await conn.fetchval(
            "INSERT INTO broadcasts (kind, state, template, target, expires_at) "
            "VALUES ('live', $1, 'outcome', '{}', now() + interval '1 day') RETURNING id",
            state,
        )
    )


async def _outcomes(
    conn: Conn, broadcast_id: int, at: datetime, n: int, counted: bool = True
) -> None:
    """n accepted parts and their DELIVRD receipts at `at`, counted in the roll-ups as the engine
    and the receipt recorder count them (not `counted`: a schema from before the roll-ups)."""
    rows = [
        (broadcast_id, 33600000000 + i, 1, 1, 0, f"m{broadcast_id}-{i}", "smsc", at, at)
        for i in range(1, n + 1)
    ]
    async with conn.transaction():
        if counted:
            await rollups.add_outcomes(conn, broadcast_id, rows)
        await conn.copy_records_to_table(  # (no group_no: a database before migration 0024 too)
            "deliveries", records=rows, columns=DELIVERY_COLUMNS[:-1]
        )
    await conn.execute(
        "INSERT INTO receipts (smsc, message_id, stat, received_at, broadcast_id, msisdn, part, "
        "match) SELECT 'smsc', 'm' || $1::bigint || '-' || i, 'DELIVRD', $2, $1::bigint, "
        "33600000000 + i, 1, 'matched' FROM generate_series(1, $3) AS i",
        broadcast_id,
        at,
        n,
    )
    if counted:  # the département counted ('': not in the index), as from migration 0021
        await conn.execute(
            "UPDATE receipts SET departement = '' WHERE broadcast_id = $1", broadcast_id
        )
    if counted:
        await conn.execute(queries["rollup_receipts_forget"], [broadcast_id])
        await conn.execute(queries["rollup_receipts_recount"], [broadcast_id])


async def _counts(conn: Conn) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT 'd' || broadcast_id AS k, count(*) AS n FROM deliveries GROUP BY 1 "
        "UNION ALL SELECT 'r' || broadcast_id, count(*) FROM receipts GROUP BY 1"
    )
    return {r["k"]: int(r["n"]) for r in rows}


async def _scenario(conn: Conn) -> tuple[int, int]:
    """A finished broadcast with outcomes 250 and 200 days old and today; a running one with
    outcomes 200 days old (a stalled, resumed national run) and today."""
    finished = await _broadcast(conn, "completed")
    running = await _broadcast(conn, "running")
    await _outcomes(conn, finished, OLDER, 300)
    await _outcomes(conn, finished, OLD, 200)
    await _outcomes(conn, finished, NOW, 50)
    await _outcomes(conn, running, OLD, 7)
    await _outcomes(conn, running, NOW, 5)
    await conn.execute(
        "INSERT INTO audit_log (at, actor, action) VALUES "
        "(now() - interval '500 days', 'old', 'x'), (now() - interval '10 days', 'recent', 'x')"
    )
    return finished, running


async def test_purge_drops_exactly_the_old_months_and_never_a_running_broadcast(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    async with pool.acquire() as conn:
        finished, running = await _scenario(conn)
        before = await _counts(conn)
    assert before == {
        f"d{finished}": 550,
        f"r{finished}": 550,
        f"d{running}": 12,
        f"r{running}": 12,
    }

    async with pool.acquire() as conn:
        report_before = await broadcasts.progress(conn, finished)
    assert report_before["accepted"] == 300  # recipients (the same 300 numbers each month)

    result = await purge(pool, SETTINGS, SCHEDULER, now=NOW)

    async with pool.acquire() as conn:  # the after-action report stays, as it was
        assert await broadcasts.progress(conn, finished) == report_before
    outcomes = {p["partition"]: p for p in result["outcomes"]["partitions"]}
    assert outcomes[_month(OLDER)] == {"partition": _month(OLDER), "rows": 300, "action": "dropped"}
    assert outcomes[_month(OLD)]["action"].startswith("kept")  # the running broadcast's rows
    assert outcomes[_month(OLD)]["rows"] == 207
    receipts = {p["partition"]: p["action"] for p in result["receipts"]["partitions"]}
    assert receipts[_month(OLDER, "receipts")] == "dropped"
    assert result["audit"]["rows"] == 1
    assert result["locations"]["rows"] == 0  # none recorded
    async with pool.acquire() as conn:
        after = await _counts(conn)
        assert after == {
            f"d{finished}": 250,
            f"r{finished}": 250,
            f"d{running}": 12,
            f"r{running}": 12,
        }
        tables = {
            r["relname"]
            for r in await conn.fetch("SELECT relname FROM pg_class WHERE relkind IN ('r', 'p')")
        }
        assert _month(OLDER) not in tables and _month(OLDER, "receipts") not in tables
        assert _month(OLD) in tables
        # the default partitions hold nothing: every month has its own
        assert await conn.fetchval("SELECT count(*) FROM ONLY deliveries_default") == 0
        assert [r["actor"] for r in await conn.fetch("SELECT actor FROM audit_log")] == [
            "recent",
            SCHEDULER.name,
        ]
        entry = await conn.fetchrow(
            "SELECT action, details FROM audit_log WHERE actor = $1", SCHEDULER.name
        )
        assert entry is not None and entry["action"] == "retention_purge"
        assert json.loads(entry["details"])["outcomes"] == 300

        # the running broadcast finishes: its old month goes at the next purge
        await conn.execute("UPDATE broadcasts SET state = 'completed' WHERE id = $1", running)
    again = await purge(pool, SETTINGS, SCHEDULER, now=NOW)
    dropped = {p["partition"]: p for p in again["outcomes"]["partitions"]}
    assert dropped[_month(OLD)] == {"partition": _month(OLD), "rows": 207, "action": "dropped"}
    async with pool.acquire() as conn:
        assert await _counts(conn) == {
            f"d{finished}": 50,
            f"r{finished}": 50,
            f"d{running}": 5,
            f"r{running}": 5,
        }


async def test_dry_run_changes_nothing_and_zero_keeps_for_ever(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    async with pool.acquire() as conn:
        await _scenario(conn)
        before = await _counts(conn)
        audit_before = await conn.fetchval("SELECT count(*) FROM audit_log")
    result = await purge(pool, SETTINGS, SCHEDULER, dry_run=True, now=NOW)
    assert result["audit"]["rows"] == 1
    async with pool.acquire() as conn:
        assert await _counts(conn) == before
        assert await conn.fetchval("SELECT count(*) FROM audit_log") == audit_before
    kept = dataclasses.replace(
        SETTINGS, retention_outcomes_days=0, retention_receipts_days=0, retention_audit_days=0
    )
    result = await purge(pool, kept, SCHEDULER, now=NOW)
    assert result["outcomes"]["partitions"] == [] and result["audit"]["rows"] == 0
    async with pool.acquire() as conn:
        assert await _counts(conn) == before


async def test_location_records_older_than_the_retention_go(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    """Where people were seen (geography, migration 0012): hours, not months."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO locations (msisdn, cell_id, seen_at, lang) VALUES "
            "(33600000001, 'c', now() - interval '3 days', 'fr'), "
            "(33600000002, 'c', now() - interval '47 hours', "
            "'fr'), (33600000003, 'c', now(), 'fr')"
        )
        # Sightings pending compaction (migration 0017) go by the same rule.
        await conn.execute(
            "INSERT INTO location_sightings (msisdn, cell_id, seen_at, country) VALUES "
            "(33600000004, 'c', now() - interval '49 hours', 'FR'), "
            "(33600000005, 'c', now() - interval '1 hour', 'FR')"
        )
    dry = await purge(pool, SETTINGS, SCHEDULER, dry_run=True)
    assert dry["locations"]["rows"] == 2
    result = await purge(pool, SETTINGS, SCHEDULER)
    assert result["locations"]["rows"] == 2
    async with pool.acquire() as conn:
        assert [r[0] for r in await conn.fetch("SELECT msisdn FROM locations ORDER BY 1")] == [
            33600000002,
            33600000003,
        ]
        pending = await conn.fetch("SELECT msisdn FROM location_sightings ORDER BY 1")
        assert [r[0] for r in pending] == [33600000005]


def test_cli_purge_dry_run_says_what_would_go(db_dsn: str, tmp_path: Path) -> None:
    async def setup() -> None:
        conn = await asyncpg.connect(db_dsn)
        try:
            await _scenario(conn)
        finally:
            await conn.close()

    asyncio.run(setup())
    env = {
        "DATABASE_URL": db_dsn,
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "BROADCASTER_RETENTION_AUDIT_DAYS": "400",
    }
    out = subprocess.run(
        [sys.executable, "-m", "broadcaster", "db", "purge", "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"{_month(OLDER)}: 300 rows, would drop" in out.stdout
    assert "audit: would remove 1 entries" in out.stdout
    out = subprocess.run(
        [sys.executable, "-m", "broadcaster", "db", "purge", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["audit"]["rows"] == 1


# -- the service's role -----------------------------------------------------------------------


async def test_the_service_role_cannot_alter_the_audit_log_but_runs_the_service(
    db_dsn: str,
) -> None:
    service = await asyncpg.connect(db_dsn, server_settings={"role": "broadcaster_service"})
    try:
        assert await service.fetchval("SELECT current_user") == "broadcaster_service"
        await service.execute("INSERT INTO audit_log (actor, action) VALUES ('svc', 'x')")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await service.execute("UPDATE audit_log SET actor = 'someone else'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await service.execute("DELETE FROM audit_log")
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await service.execute("TRUNCATE audit_log")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service.execute("DROP TABLE deliveries_default")
        # ...nor shorten the audit's retention below a year through the purge function
        with pytest.raises(asyncpg.RaiseError, match="at least a year"):
            await service.execute("SELECT retention_purge_audit(now() - interval '1 day')")
        # what the service does: an up-to-date schema needs no DDL, outcomes are written
        assert await migrate(service, Settings().sql_dir / "migrations") == []
        broadcast_id = await _broadcast(service, "running")
        await _outcomes(service, broadcast_id, NOW, 3)
        await service.execute(
            "UPDATE broadcasts SET state = 'completed' WHERE id = $1", broadcast_id
        )
    finally:
        await service.close()
    admin = await asyncpg.connect(db_dsn)
    try:
        await _outcomes(admin, await _broadcast(admin, "completed"), OLDER, 4)
    finally:
        await admin.close()
    pool = await asyncpg.create_pool(
        db_dsn, min_size=1, max_size=2, server_settings={"role": "broadcaster_service"}
    )
    try:  # the purge, as the service: partitions made and dropped through the functions
        result = await purge(pool, SETTINGS, SCHEDULER)
    finally:
        await pool.close()
    assert [p["action"] for p in result["outcomes"]["partitions"]] == ["dropped"]
    assert result["outcomes"]["partitions"][0]["rows"] == 4


async def test_migration_0014_moves_existing_outcomes_into_month_partitions(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    migrations = Settings().sql_dir / "migrations"
    before = tmp_path / "migrations"
    before.mkdir()
    for path in migrations.glob("*.sql"):
        if path.name < "0014":
            shutil.copy(path, before)
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        await migrate(conn, before)
        broadcast_id = await _broadcast(conn, "completed")
        await _outcomes(conn, broadcast_id, OLDER, 3, counted=False)
        await _outcomes(conn, broadcast_id, NOW, 2, counted=False)
        assert "0014_retention.sql" in await migrate(conn, migrations)
        assert await _counts(conn) == {f"d{broadcast_id}": 5, f"r{broadcast_id}": 5}
        # 0021 rewrites no receipt (its lock would stop recording): the old ones have none
        assert await conn.fetchval("SELECT count(*) FROM receipts WHERE departement IS NULL") == 5
        where = await conn.fetch(
            "SELECT tableoid::regclass::text AS t, count(*) AS n FROM deliveries GROUP BY 1 "
            "UNION ALL SELECT tableoid::regclass::text, count(*) FROM receipts GROUP BY 1"
        )
        assert {r["t"]: r["n"] for r in where} == {
            _month(OLDER): 3,
            _month(NOW): 2,
            _month(OLDER, "receipts"): 3,
            _month(NOW, "receipts"): 2,
        }
    finally:
        await conn.close()


def test_a_drill_is_sent_and_purged_as_the_service_role(
    cli: Cli,
    db_dsn: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the units run, as the role they run as: a send (chunks, outcomes, receipts, audit),
    status, a purge; the schema is current, so nothing needs DDL."""

    async def seed() -> None:  # the bulk import into an empty index is the owner's job
        conn = await asyncpg.connect(db_dsn)
        try:
            await seed_synthetic(conn, 2000, seed=3)
        finally:
            await conn.close()

    asyncio.run(seed())
    service = Cli(f"{db_dsn}?role=broadcaster_service", capsys)
    with mock_smsc_process() as port:
        monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{port}")
        sent = service("send", "--area", "dep:13", "--template", "drill", "--drill", "--yes")
    assert sent["state"] == "completed" and sent["accepted"] > 0
    assert service("report", str(sent["broadcast_id"]))["accepted"] == sent["accepted"]
    assert service("db", "purge", "--dry-run")["dry_run"] is True
    audit = service("audit")["entries"]
    assert any(e["subject"] == f"broadcast:{sent['broadcast_id']}" for e in audit)


async def test_serve_purges_periodically_and_survives_a_failed_purge(
    pool: asyncpg.Pool[asyncpg.Record],
) -> None:
    import structlog

    from broadcaster.serve import purge_periodically

    settings = dataclasses.replace(SETTINGS, retention_interval_s=0.05)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(purge_periodically(pool, settings))
        async with asyncio.timeout(10):
            while sum(e["event"] == "retention_purge" for e in logs) < 2:
                await asyncio.sleep(0.02)
        await pool.close()  # the database goes away: logged, and tried again
        async with asyncio.timeout(10):
            while not any(e["event"] == "retention_purge_failed" for e in logs):
                await asyncio.sleep(0.02)
        assert not task.done()
        task.cancel()
    off = dataclasses.replace(SETTINGS, retention_interval_s=0)
    await asyncio.wait_for(purge_periodically(pool, off), 1)  # 0: serve never purges
