"""A broadcast's work in the database: chunks of recipients leased to workers, streamed out with
COPY, and the append-only outcomes written back with COPY.

Chunks are leased with `FOR UPDATE SKIP LOCKED`: any number of workers, in any processes, share
a broadcast, and PostgreSQL is the only coordinator. A chunk is done in the same transaction as
its last outcomes, so a resumed run skips exactly what was recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg

from broadcaster.domain.states import RUNNABLE
from broadcaster.store import outcome_copy, rollups
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.store.subscribers import chunk_starts
from broadcaster.targeting import Target

MAX_MSISDN = 999_999_999_999_999
DELIVERY_COLUMNS = (
    "broadcast_id",
    "msisdn",
    "part",
    "parts",
    "status",
    "message_id",
    "smsc",
    "submitted_at",
    "answered_at",
    "group_no",
)
RUNNABLE_STATES = sorted(RUNNABLE)

StreamOutput = Callable[[bytes], Coroutine[Any, Any, None]]


@dataclass(frozen=True)
class Chunk:
    """A leased range of one département's recipients."""

    chunk_no: int
    departement: str
    communes: list[str] | None
    msisdn_from: int
    msisdn_to: int
    cells: list[str] | None = None
    """With `communes` not None: subscribers of these cells too (see broadcast_chunks)."""
    exclude_communes: list[str] | None = None
    exclude_cells: list[str] | None = None
    reclaimed: bool = True
    """Claimed before (by a worker that died or stopped): some parts may be recorded already."""
    source: str = "home"
    """'home': subscribers by where they live; 'present': the broadcast's present numbers
    (`broadcast_present`, taken when it was created) of this département."""
    present_cells: list[str] | None = None
    """The cells of the broadcast's present part."""
    present_window: timedelta | None = None
    present_departements: list[str] | None = None
    """On a home chunk: leave out the broadcast's present numbers of these départements (they
    get the present text); None: the broadcast has no present part."""
    broadcast_id: int | None = None

    @property
    def selection_args(self) -> tuple[object, ...]:
        """Arguments $6-$10 of the `stream_chunk` query (after $1-$5)."""
        return (self.cells, self.exclude_communes, self.exclude_cells, *self.presence_args)

    @property
    def presence_args(self) -> tuple[int | None, list[str] | None]:
        """(broadcast, départements) whose present numbers a home chunk leaves out."""
        if self.present_departements is None:
            return (None, None)
        return (self.broadcast_id, self.present_departements)


async def insert_chunks(conn: Conn, broadcast_id: int, target: Target, chunk_size: int) -> None:
    """Cut each département's selection into chunks of about `chunk_size` recipients."""
    chunk_rows: list[tuple[Any, ...]] = []
    selections: list[tuple[Any, ...]] = []
    window = timedelta(seconds=target.present_window_s)
    for dep, selection in target.selections():
        starts = await chunk_starts(conn, dep, selection, target.test_group_only, chunk_size)
        communes, cells, no_communes, no_cells = selection.columns()
        if starts and not selection.simple:
            selections.append((broadcast_id, dep, cells, no_communes, no_cells))
        for i in range(len(starts)):
            # The first chunk starts at 0: the ranges cover the whole key space.
            start = starts[i] if i else 0
            end = starts[i + 1] - 1 if i + 1 < len(starts) else MAX_MSISDN
            chunk_rows.append((broadcast_id, len(chunk_rows), dep, communes, start, end))
    home = list(range(len(chunk_rows)))
    present: list[tuple[Any, ...]] = []
    await _snapshot_present(conn, broadcast_id, target)
    for dep, here in sorted(target.present.items()):
        rows = await conn.fetch(queries["present_chunk_starts"], broadcast_id, dep, chunk_size)
        starts = [r["msisdn"] for r in rows]
        numbers = []
        for i in range(len(starts)):
            start = starts[i] if i else 0
            end = starts[i + 1] - 1 if i + 1 < len(starts) else MAX_MSISDN
            numbers.append(len(chunk_rows))
            chunk_rows.append((broadcast_id, len(chunk_rows), dep, None, start, end))
        if numbers:
            present.append((broadcast_id, numbers, "present", sorted(here), window, None))
    await conn.executemany(queries["insert_chunk"], chunk_rows)
    await conn.executemany(queries["set_chunk_selection"], selections)
    if target.present and home:
        present.append((broadcast_id, home, "home", None, None, sorted(target.present)))
    await conn.executemany(queries["set_chunk_presence"], present)


async def _snapshot_present(conn: Conn, broadcast_id: int, target: Target) -> None:
    """Who the present part reaches, taken now (what the preview counted), one row a number."""
    pairs = [(cell, dep) for dep, cells in target.present.items() for cell in sorted(cells)]
    if not pairs:
        return
    cells, deps = (list(column) for column in zip(*pairs, strict=True))
    countries = sorted(target.visitor_languages)
    await conn.execute(
        queries["snapshot_present"],
        broadcast_id,
        cells,
        deps,
        target.present_window_s,
        countries,
        [target.visitor_languages[c] for c in countries],
        target.test_group_only,
    )


async def present_numbers(conn: Conn, broadcast_id: int) -> list[Any]:
    """(msisdn, departement, lang) of every number a broadcast's present part took."""
    return list(await conn.fetch(queries["present_numbers"], broadcast_id))


async def claim(conn: Conn, broadcast_id: int, worker: str, lease_seconds: float) -> Chunk | None:
    """Lease the next chunk nobody holds (or whose lease expired); None when none is left."""
    row = await conn.fetchrow(queries["claim_chunk"], broadcast_id, worker, lease_seconds)
    if row is None:
        return None
    if "exclude_cells" not in row:  # cells and exclusions: columns claim_chunk may not return
        fetched = await conn.fetchrow(queries["chunk_selection"], broadcast_id, row["chunk_no"])
        assert fetched is not None
        selection: asyncpg.Record = fetched
    else:
        selection = row
    return Chunk(
        row["chunk_no"],
        row["departement"],
        row["communes"],
        row["msisdn_from"],
        row["msisdn_to"],
        cells=selection["cells"],
        exclude_communes=selection["exclude_communes"],
        exclude_cells=selection["exclude_cells"],
        reclaimed=row["claims"] > 1,
        source=row.get("source", "home"),
        present_cells=row.get("present_cells"),
        present_window=row.get("present_window"),
        present_departements=row.get("present_departements"),
        broadcast_id=broadcast_id,
    )


async def recorded_parts(conn: Conn, broadcast_id: int, chunk: Chunk) -> set[tuple[int, int]]:
    """(msisdn, part) of the chunk's parts that already have an outcome (skipped on resume)."""
    if not chunk.reclaimed:
        return set()  # first claim of this chunk: nothing can have been recorded yet
    if chunk.source == "present":
        rows = await conn.fetch(
            queries["recorded_parts_present"], broadcast_id, chunk.msisdn_from, chunk.msisdn_to
        )
        return {(r["msisdn"], r["part"]) for r in rows}
    rows = await conn.fetch(
        queries["recorded_parts"],
        broadcast_id,
        chunk.msisdn_from,
        chunk.msisdn_to,
        chunk.departement,
    )
    return {(r["msisdn"], r["part"]) for r in rows}


async def stream(
    conn: Conn,
    broadcast_id: int,
    chunk: Chunk,
    output: StreamOutput,
    *,
    test_group_only: bool,
    drill: bool,
    reached_of: int | None,
) -> None:
    """COPY the chunk's recipients out as `msisdn\\tlang` lines (a drill's with `\\tt|f`, its
    test-group flag, checked before anything is sent); `reached_of`: only those that broadcast
    reached."""
    if chunk.source == "present":
        # The test group was applied when the present numbers were taken.
        await _stream_present(conn, broadcast_id, chunk, output, drill, reached_of)
        return
    args: list[object] = [
        chunk.departement,
        chunk.msisdn_from,
        chunk.msisdn_to,
        chunk.communes,
        test_group_only,
        chunk.cells,  # $6-$8: the chunk's cells and exclusions
        chunk.exclude_communes,
        chunk.exclude_cells,
    ]
    name = "stream_chunk"
    if drill:
        name = "stream_chunk_drill"
        args.append(reached_of)  # $9: NULL, or the broadcast whose reached we want
    elif reached_of is not None:
        name = "stream_chunk_reached"
        args.append(reached_of)  # $9: the broadcast whose reached recipients we want
    args += chunk.presence_args  # the last two: whose present numbers to leave out
    await conn.copy_from_query(queries[name].rstrip().rstrip(";"), *args, output=output)


async def _stream_present(
    conn: Conn,
    broadcast_id: int,
    chunk: Chunk,
    output: StreamOutput,
    drill: bool,
    reached_of: int | None,
) -> None:
    """COPY a present-mode chunk's numbers out, as `stream` does a home chunk's."""
    name = "stream_present_drill" if drill else "stream_present"
    await conn.copy_from_query(
        queries[name].rstrip().rstrip(";"),
        broadcast_id,
        chunk.departement,
        chunk.msisdn_from,
        chunk.msisdn_to,
        reached_of,
        output=output,
    )


async def record_outcomes(
    conn: Conn,
    broadcast_id: int,
    rows: Sequence[tuple[object, ...]],
    done: Sequence[int],
    possibly_twice: int = 0,
    fresh: rollups.Fresh = rollups.NONE_FRESH,
) -> None:
    """Append outcomes, move the roll-ups, mark finished chunks done and add the parts that may
    have gone twice (`possibly_twice`, as the SMPP pool counted them), in one transaction;
    `fresh`: recipients the roll-ups need not look up (see `rollups.add_outcomes`)."""
    async with conn.transaction():
        if rows:
            await rollups.add_outcomes(conn, broadcast_id, rows, fresh)  # before the COPY
            await conn.copy_to_table(
                "deliveries",
                source=outcome_copy.source(rows),
                columns=DELIVERY_COLUMNS,
                format="binary",
            )
        for chunk_no in done:
            await conn.execute(queries["complete_chunk"], broadcast_id, chunk_no)
        if possibly_twice:
            await conn.execute(queries["add_possibly_twice"], broadcast_id, possibly_twice)


async def renew_leases(conn: Conn, broadcast_id: int, worker: str, lease_seconds: float) -> None:
    await conn.execute(queries["renew_leases"], broadcast_id, worker, lease_seconds)


async def release_leases(conn: Conn, broadcast_id: int, worker: str) -> None:
    """Hand the worker's unfinished chunks back at once (no waiting for leases to expire)."""
    await conn.execute(queries["release_leases"], broadcast_id, worker)


async def chunks_left(conn: Conn, broadcast_id: int) -> tuple[int, int]:
    """(chunks not done, chunks in all)."""
    row = await conn.fetchrow(queries["chunks_left"], broadcast_id)
    assert row is not None
    return int(row["todo"]), int(row["total"])


async def runnable(conn: Conn, limit: int = 20) -> list[tuple[int, int]]:
    """(id, priority) of the runnable broadcasts with a chunk nobody holds, most urgent first
    (live before drills, then oldest first)."""
    rows = await conn.fetch(queries["runnable_broadcasts"], RUNNABLE_STATES, limit)
    return [(int(r["id"]), int(r["priority"])) for r in rows]


async def unfinished(conn: Conn) -> int:
    """How many runnable broadcasts still have a chunk not done, leased or not: a chunk leased
    by a worker that died is taken up when its lease expires."""
    return int(await conn.fetchval(queries["unfinished_broadcasts"], RUNNABLE_STATES))


async def ahead_of(conn: Conn, broadcast_id: int) -> list[int]:
    """The runnable broadcasts more urgent than this one: what it waits for."""
    rows = await conn.fetch(queries["ahead_of"], broadcast_id, RUNNABLE_STATES)
    return [int(r["id"]) for r in rows]


async def higher_priority_waiting(conn: Conn, priority: int) -> bool:
    """Runnable work more urgent than `priority` (a live alert while a drill runs)?"""
    return bool(await conn.fetchval(queries["higher_priority_waiting"], priority, RUNNABLE_STATES))
