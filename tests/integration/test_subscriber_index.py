"""Import, synthesis, counts and chunking against a real PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from broadcaster.errors import UnknownAreaError
from broadcaster.importer import import_csv, seed_synthetic
from broadcaster.operations import BroadcastRequest, create_broadcast, make_plan
from broadcaster.settings import Settings
from broadcaster.store import broadcasts as store
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
    claimed = await store.claim_chunk(db_conn, broadcast_id, "w1", 30)
    other = await store.claim_chunk(db_conn, broadcast_id, "w2", 30)
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
