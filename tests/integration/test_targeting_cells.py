"""Targets mixing regions, départements, communes, cells, exclusions and the test group: the
counts, the chunks and the streamed recipients all equal a brute-force evaluation in Python."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path

import asyncpg
import pytest

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.errors import UnknownAreaError
from broadcaster.importer import import_csv, seed_synthetic
from broadcaster.settings import Settings
from broadcaster.store import chunks as store_chunks
from broadcaster.store.queries import queries
from broadcaster.store.subscribers import target_counts
from broadcaster.targeting import Target

Row = tuple[int, str, str | None, str | None, str, bool]

# Subscribers a synthetic base lacks: a cell serving two départements, no commune, no cell
# (Guadeloupe's mobile numbers: synthetic ones are all +33).
EXTRA = """msisdn,departement,commune,cell_id,lang,test_group
590690000001,75,75001,BORDER,fr,0
590690000002,92,92001,BORDER,en,1
590690000003,92,,BORDER,ar,0
590690000004,75,,,fr,0
590690000005,75,75002,,de,1
590690000006,13,,C13001,es,0
"""

TARGETS = [
    (["cell:BORDER"], [], False),
    (["region:11"], ["cell:BORDER", "commune:75001"], False),
    (["dep:75"], ["commune:75001", "cell:C75002"], False),
    (["commune:13001", "cell:C13001", "cell:C13002"], ["commune:13002"], False),
    (["commune:13001", "commune:13002"], ["cell:C13003"], False),
    (["cell:C13001", "cell:C13004"], [], False),
    (["region:93", "cell:BORDER"], ["dep:04"], True),
    (["cell:C59001", "dep:2B", "commune:2A001"], [], False),
    (["region:11", "commune:13001"], ["dep:92", "commune:75002"], False),
]


@pytest.fixture
async def base(db_dsn: str, db_conn: asyncpg.Connection, tmp_path: Path) -> list[Row]:
    await seed_synthetic(db_conn, 30_000, seed=11)
    extra = tmp_path / "extra.csv"
    extra.write_text(EXTRA, encoding="utf-8")
    result = await import_csv(Settings(database_url=db_dsn), extra, None)
    assert (result.load.inserted, result.rejected) == (6, 0)
    rows = await db_conn.fetch(
        "SELECT msisdn, departement, commune, cell_id, lang, test_group FROM subscribers"
    )
    return [tuple(r) for r in rows]


def brute_force(rows: list[Row], target: Target) -> list[Row]:
    """The target evaluated row by row, straight from the definition of a Selection."""
    chosen = []
    for row in rows:
        _m, dep, commune, cell, _lang, test = row
        if dep not in target.departements or (target.test_group_only and not test):
            continue
        sel = target.selection(dep)
        picked = sel.communes is None or commune in sel.communes or cell in sel.cells
        dropped = commune in sel.exclude_communes or cell in sel.exclude_cells
        if picked and not dropped:
            chosen.append(row)
    return chosen


@pytest.mark.parametrize(("areas", "exclude", "test_group"), TARGETS)
async def test_counts_chunks_and_streams_equal_brute_force(
    db_dsn: str,
    db_conn: asyncpg.Connection,
    base: list[Row],
    areas: list[str],
    exclude: list[str],
    test_group: bool,
) -> None:
    settings = Settings(database_url=db_dsn, chunk_size=97)
    request = BroadcastRequest(
        areas=areas,
        exclude=exclude,
        template="outage",
        variables={},
        test_group_only=test_group,
    )
    plan = await make_plan(db_conn, settings, request)
    expected = brute_force(base, plan.target)
    assert expected, "the target should not be empty"
    assert await target_counts(db_conn, plan.target) == Counter((r[1], r[4]) for r in expected)
    assert plan.recipients == len(expected)

    broadcast_id = await create_broadcast(db_conn, settings, request, plan)
    streamed: list[int] = []
    while (chunk := await store_chunks.claim(db_conn, broadcast_id, "w", 30)) is not None:
        tail = b""

        async def consume(data: bytes) -> None:
            nonlocal tail
            lines = (tail + data).split(b"\n")
            tail = lines.pop()
            streamed.extend(int(line.partition(b"\t")[0]) for line in lines)

        # The arguments the engine passes (runner._stream_chunk).
        args = [chunk.departement, chunk.msisdn_from, chunk.msisdn_to, chunk.communes, test_group]
        await db_conn.copy_from_query(
            queries["stream_chunk"], *args, *chunk.selection_args, output=consume
        )
        await db_conn.execute(queries["complete_chunk"], broadcast_id, chunk.chunk_no)
    assert len(streamed) == len(set(streamed)), "someone was streamed twice"
    assert sorted(streamed) == sorted(r[0] for r in expected)


async def test_chunks_are_balanced_and_cover_the_key_space(
    db_dsn: str, db_conn: asyncpg.Connection, base: list[Row]
) -> None:
    settings = Settings(database_url=db_dsn, chunk_size=100)
    request = BroadcastRequest(areas=["dep:59"], template="outage", variables={})
    plan = await make_plan(db_conn, settings, request)
    broadcast_id = await create_broadcast(db_conn, settings, request, plan)
    chunks = await db_conn.fetch(
        "SELECT msisdn_from, msisdn_to, (SELECT count(*) FROM subscribers s WHERE "
        "s.departement = c.departement AND s.msisdn BETWEEN c.msisdn_from AND c.msisdn_to) AS n "
        "FROM broadcast_chunks c WHERE broadcast_id = $1 ORDER BY chunk_no",
        broadcast_id,
    )
    assert chunks[0]["msisdn_from"] == 0
    assert chunks[-1]["msisdn_to"] == store_chunks.MAX_MSISDN
    assert all(a["msisdn_to"] + 1 == b["msisdn_from"] for a, b in itertools.pairwise(chunks))
    assert [c["n"] for c in chunks[:-1]] == [100] * (len(chunks) - 1)
    assert 0 < chunks[-1]["n"] <= 100
    assert sum(c["n"] for c in chunks) == plan.recipients


async def test_unknown_cell_is_refused_before_anything_is_stored(
    db_dsn: str, db_conn: asyncpg.Connection, base: list[Row]
) -> None:
    settings = Settings(database_url=db_dsn)
    for areas, exclude in ((["cell:NOPE"], []), (["dep:75"], ["cell:nope-2"])):
        request = BroadcastRequest(areas=areas, exclude=exclude, template="outage", variables={})
        with pytest.raises(UnknownAreaError, match="no subscriber is in cell"):
            await make_plan(db_conn, settings, request)
    # Cell ids are case-sensitive: "border" is not "BORDER".
    request = BroadcastRequest(areas=["cell:border"], template="outage", variables={})
    with pytest.raises(UnknownAreaError, match="case"):
        await make_plan(db_conn, settings, request)
    assert await db_conn.fetchval("SELECT count(*) FROM broadcasts") == 0


async def test_reached_only_update_keeps_cells_and_exclusions(
    db_dsn: str, db_conn: asyncpg.Connection, base: list[Row]
) -> None:
    settings = Settings(database_url=db_dsn)
    for areas, exclude in ((["cell:BORDER"], []), (["dep:75"], ["commune:75056"])):
        request = BroadcastRequest(areas=areas, exclude=exclude, template="outage", variables={})
        plan = await make_plan(db_conn, settings, request)
        parent = await create_broadcast(db_conn, settings, request, plan, state="draft")
        # The parent "reached" every other subscriber of the database (accepted), failed the rest.
        await db_conn.execute(
            "INSERT INTO deliveries (broadcast_id, msisdn, part, parts, status, smsc, "
            "submitted_at, answered_at) SELECT $1, msisdn, 1, 1, "
            "CASE WHEN msisdn % 2 = 0 THEN 0 ELSE 1025 END, 'x', now(), now() FROM subscribers",
            parent,
        )
        update = BroadcastRequest(
            areas=(),
            template="all_clear",
            variables={},
            parent_id=parent,
            reached_only=True,
        )
        reached = await make_plan(db_conn, settings, update)
        expected = sum(1 for r in brute_force(base, plan.target) if r[0] % 2 == 0)
        assert 0 < reached.recipients == expected < plan.recipients
