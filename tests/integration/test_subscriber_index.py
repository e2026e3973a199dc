"""Import, synthesis, counts and chunking against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import structlog

from broadcaster import importer
from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.errors import InputError, UnknownAreaError
from broadcaster.importer import import_csv, seed_synthetic, synthesise_into
from broadcaster.settings import Settings
from broadcaster.store import chunks as store_chunks
from broadcaster.store.subscribers import target_counts
from broadcaster.targeting import Target


async def test_import_upserts_valid_rows_and_writes_rejects(
    db_dsn: str, db_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    csv_file = tmp_path / "subs.csv"
    csv_file.write_text(
        "msisdn,departement,commune,cell_id,lang,test_group\n"
        "33612345678,75,75056,C1,fr,0\n"
        "33612345679,92,,,en,1\n"
        "12345,75,,,fr,0\n"
        "33612345680,99,,,fr,0\n",
        encoding="utf-8",
    )
    result = await import_csv(Settings(database_url=db_dsn), csv_file, None)
    assert (result.imported, result.rejected) == (2, 2)
    assert result.reject_file is not None
    rejects = result.reject_file.read_text(encoding="utf-8").splitlines()
    assert rejects[0] == "line,reason,row"
    assert rejects[1].startswith("4,") and "international" in rejects[1]
    assert rejects[2].startswith("5,") and "unknown département" in rejects[2]
    rows = await db_conn.fetch("SELECT msisdn, departement, lang, test_group FROM subscribers")
    assert sorted(tuple(r) for r in rows) == [
        (33612345678, "75", "fr", False),
        (33612345679, "92", "en", True),
    ]
    # Re-import with one change: an upsert, not a duplicate.
    csv_file.write_text("msisdn,departement,lang\n33612345678,93,es\n", encoding="utf-8")
    result = await import_csv(Settings(database_url=db_dsn), csv_file, None)
    assert (result.imported, result.rejected) == (1, 0)
    row = await db_conn.fetchrow(
        "SELECT departement, lang FROM subscribers WHERE msisdn = $1", 33612345678
    )
    assert row is not None and tuple(row) == ("93", "es")
    assert await db_conn.fetchval("SELECT count(*) FROM subscribers") == 2


async def test_counts_and_chunks_cover_the_target_exactly_once(
    db_dsn: str, db_conn: asyncpg.Connection
) -> None:
    await seed_synthetic(db_conn, 20_000, seed=7)
    settings = Settings(database_url=db_dsn, chunk_size=1_000)
    request = BroadcastRequest(
        areas=["dep:75", "region:11", "commune:13055"], template="outage", variables={}
    )
    plan = await make_plan(db_conn, settings, request)
    expected = await db_conn.fetchval(
        "SELECT count(*) FROM subscribers s JOIN departements d ON d.code = s.departement "
        "WHERE d.region_code = '11' OR s.commune = '13055'"
    )
    assert plan.recipients == expected > 0
    broadcast_id = await create_broadcast(db_conn, settings, request, plan)
    chunks = await db_conn.fetch(
        "SELECT departement, communes, msisdn_from, msisdn_to FROM broadcast_chunks "
        "WHERE broadcast_id = $1 ORDER BY chunk_no",
        broadcast_id,
    )
    covered = 0
    for c in chunks:
        covered += await db_conn.fetchval(
            "SELECT count(*) FROM subscribers WHERE departement = $1 AND msisdn BETWEEN $2 AND $3"
            " AND ($4::text[] IS NULL OR commune = ANY($4::text[]))",
            c["departement"],
            c["msisdn_from"],
            c["msisdn_to"],
            c["communes"],
        )
    assert covered == plan.recipients
    groups = await db_conn.fetch(
        "SELECT * FROM broadcast_groups WHERE broadcast_id = $1", broadcast_id
    )
    assert sum(g["recipients"] for g in groups) == plan.recipients
    claimed = await store_chunks.claim(db_conn, broadcast_id, "w1", 30)
    other = await store_chunks.claim(db_conn, broadcast_id, "w2", 30)
    assert claimed is not None and other is not None and claimed.chunk_no != other.chunk_no


async def test_test_group_counts(db_conn: asyncpg.Connection) -> None:
    await seed_synthetic(db_conn, 5_000, seed=2)
    everyone = await target_counts(db_conn, Target({"75": None}))
    testers = await target_counts(db_conn, Target({"75": None}, test_group_only=True))
    assert 0 < sum(testers.values()) < sum(everyone.values())


async def test_unknown_area_is_refused_and_nothing_is_stored(
    db_dsn: str, db_conn: asyncpg.Connection
) -> None:
    request = BroadcastRequest(areas=["dep:99"], template="outage", variables={})
    with pytest.raises(UnknownAreaError, match="99"):
        await make_plan(db_conn, Settings(database_url=db_dsn), request)
    assert await db_conn.fetchval("SELECT count(*) FROM broadcasts") == 0


# --- the bulk path, the upsert path and the maintained counts -----------------------------------

BRUTE_COUNTS = """
SELECT a.kind, s.departement, a.area, s.lang, s.test_group, count(*)::bigint AS n
FROM subscribers s
CROSS JOIN LATERAL (VALUES ('departement', ''), ('commune', s.commune), ('cell', s.cell_id))
    AS a (kind, area)
WHERE a.area IS NOT NULL
GROUP BY 1, 2, 3, 4, 5
"""
SCHEMA = """
SELECT 'index ' || indexrelid::regclass::text || ': ' || pg_get_indexdef(indexrelid)
FROM pg_index WHERE indrelid = 'subscribers'::regclass
UNION ALL
SELECT 'constraint ' || conname || ': ' || pg_get_constraintdef(oid) || ' ' || convalidated
FROM pg_constraint WHERE conrelid = 'subscribers'::regclass
UNION ALL
SELECT 'trigger ' || tgname || ': ' || tgenabled::text FROM pg_trigger
WHERE tgrelid = 'subscribers'::regclass AND NOT tgisinternal
ORDER BY 1
"""


async def _counts_are_exact(conn: asyncpg.Connection) -> None:
    brute = {tuple(r) for r in await conn.fetch(BRUTE_COUNTS)}
    kept = {
        tuple(r)
        for r in await conn.fetch(
            "SELECT kind, departement, area, lang, test_group, n FROM subscriber_counts "
            "WHERE n <> 0"
        )
    }
    assert kept == brute


async def test_bulk_load_restores_the_schema_and_writes_exact_counts(
    db_conn: asyncpg.Connection,
) -> None:
    schema = [r[0] for r in await db_conn.fetch(SCHEMA)]
    assert any("subscribers_count_inserts: O" in s for s in schema)
    result = await synthesise_into(db_conn, 12_000, seed=3)
    assert (result.bulk, result.inserted, result.rows) == (True, 12_000, 12_000)
    assert [r[0] for r in await db_conn.fetch(SCHEMA)] == schema
    await _counts_are_exact(db_conn)
    # Frozen rows: index-only scans need no heap visit and no VACUUM first.
    frozen = await db_conn.fetchval(
        "SELECT relallvisible >= relpages FROM pg_class WHERE relname = 'subscribers'"
    )
    assert frozen
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await db_conn.execute(
            "INSERT INTO subscribers (msisdn, departement, lang) VALUES (33123456789, '99', 'fr')"
        )
    # Into a non-empty index, synthesis upserts (after the numbers already there).
    again = await synthesise_into(db_conn, 500, seed=3)
    assert (again.bulk, again.inserted) == (False, 500)
    await _counts_are_exact(db_conn)


async def test_counts_follow_every_kind_of_write(db_conn: asyncpg.Connection) -> None:
    await seed_synthetic(db_conn, 3_000, seed=5)
    statements = [
        "UPDATE subscribers SET lang = 'es' WHERE msisdn % 7 = 0",
        "UPDATE subscribers SET commune = NULL, cell_id = 'X' WHERE msisdn % 11 = 0",
        "UPDATE subscribers SET departement = '13', commune = '13055' WHERE departement = '75'",
        "UPDATE subscribers SET test_group = NOT test_group WHERE msisdn % 5 = 0",
        "UPDATE subscribers SET updated_at = now()",  # no area change: no count row touched
        "DELETE FROM subscribers WHERE msisdn % 3 = 0",
        "INSERT INTO subscribers (msisdn, departement, commune, cell_id, lang) "
        "VALUES (33123456789, '2A', '2A004', 'X', 'fr'), (33123456790, '2A', NULL, NULL, 'en')",
    ]
    for statement in statements:
        await db_conn.execute(statement)
        await _counts_are_exact(db_conn)
    await db_conn.execute("TRUNCATE subscribers")
    assert await db_conn.fetchval("SELECT count(*) FROM subscriber_counts") == 0


async def test_reimport_writes_only_changes_and_an_unchanged_file_writes_nothing(
    db_dsn: str, db_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    settings = Settings(database_url=db_dsn)
    lines = ["msisdn,departement,commune,cell_id,lang,test_group"]
    lines += [f"3361000{i:04d},75,75056,C{i % 7},fr,{int(i % 50 == 0)}" for i in range(1_000)]
    first = tmp_path / "base.csv"
    first.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = await import_csv(settings, first, None)
    assert loaded.as_json()["mode"] == "bulk"
    assert loaded.imported == 1_000
    # Ten changed, five new, the rest as they were.
    lines[1:11] = [line.replace(",fr,", ",en,") for line in lines[1:11]]
    lines += [f"3362000{i:04d},13,13055,,es,0" for i in range(5)]
    second = tmp_path / "changes.csv"
    second.write_text("\n".join(lines) + "\n", encoding="utf-8")
    changed = await import_csv(settings, second, None)
    assert changed.as_json() | {"seconds": 0, "rows_per_s": 0} == {
        "imported": 1_005,
        "rejected": 0,
        "reject_file": None,
        "rows": 1_005,
        "inserted": 5,
        "updated": 10,
        "unchanged": 990,
        "mode": "upsert",
        "seconds": 0,
        "rows_per_s": 0,
    }
    before = await db_conn.fetch(
        "SELECT msisdn, xmin::text, ctid::text, updated_at FROM subscribers"
    )
    again = await import_csv(settings, second, None)
    assert (again.load.inserted, again.load.updated, again.load.unchanged) == (0, 0, 1_005)
    after = await db_conn.fetch(
        "SELECT msisdn, xmin::text, ctid::text, updated_at FROM subscribers"
    )
    assert sorted(map(tuple, after)) == sorted(map(tuple, before))  # not a row version more
    await _counts_are_exact(db_conn)


async def test_a_file_that_is_not_utf8_is_refused_and_nothing_is_stored(
    db_dsn: str, db_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(
        b"msisdn,departement,commune,cell_id,lang,test_group\n"
        + b"".join(b"336%08d,75,75056,C1,fr,0\n" % i for i in range(200_000))
        + b"33699999999,75,,Cr\xe9teil,fr,0\n"
    )
    with pytest.raises(InputError, match="not UTF-8"):
        await import_csv(Settings(database_url=db_dsn), bad, None)
    assert await db_conn.fetchval("SELECT count(*) FROM subscribers") == 0
    assert await db_conn.fetchval("SELECT count(*) FROM subscriber_counts") == 0


async def test_long_work_logs_its_progress(
    db_conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "PROGRESS_EVERY_S", 0.0)
    with structlog.testing.capture_logs() as logs:
        await synthesise_into(db_conn, 5_000, seed=1)
    progress = [e for e in logs if e["event"] == "synth_progress"]
    assert len(progress) >= 10
    assert progress[-1]["rows"] <= 5_000
    assert {"rows_per_s", "percent", "eta_s"} <= set(progress[-1])
    assert any(e["event"] == "synth_done" and e["rows"] == 5_000 for e in logs)


async def test_bulk_load_keeps_a_key_that_another_table_references(
    db_conn: asyncpg.Connection,
) -> None:
    await db_conn.execute("CREATE TABLE opt_outs (msisdn bigint REFERENCES subscribers (msisdn))")
    schema = [r[0] for r in await db_conn.fetch(SCHEMA)]
    result = await synthesise_into(db_conn, 2_000, seed=2)
    assert (result.bulk, result.inserted) == (True, 2_000)
    assert [r[0] for r in await db_conn.fetch(SCHEMA)] == schema
    await _counts_are_exact(db_conn)
    await db_conn.execute("INSERT INTO opt_outs SELECT msisdn FROM subscribers LIMIT 1")
