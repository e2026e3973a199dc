"""Broadcast records: creating one from a plan, its chunks and leases, and its derived state.

Outcomes are append-only (`deliveries`, `receipts`); a recipient's state is derived by reading
them, never by updating a per-recipient row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from broadcaster.engine.states import Action, refuse, transition
from broadcaster.errors import InputError
from broadcaster.planning import Plan
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
)


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

    @property
    def selection_args(self) -> tuple[list[str] | None, ...]:
        """Arguments $6-$8 of the `stream_chunk` query (after $1-$5)."""
        return (self.cells, self.exclude_communes, self.exclude_cells)


@dataclass(frozen=True)
class Summary:
    """Per-recipient counts derived from the outcomes."""

    recorded: int
    accepted: int
    failed: int
    duplicates: int
    part_outcomes: int
    failed_by_status: dict[int, int]


async def create_broadcast(
    conn: Conn,
    plan: Plan,
    *,
    kind: str,
    variables: dict[str, str],
    expires_at: datetime,
    chunk_size: int,
    created_by: str = "cli",
    state: str = "approved",
    priority: int = 0,
    areas: tuple[list[str], list[str]] = ([], []),
    parent_id: int | None = None,
    reached_only: bool = False,
) -> int:
    """Store the broadcast, its groups (texts as previewed) and its work chunks; return its id."""
    async with conn.transaction():
        broadcast_id: int = await conn.fetchval(
            queries["insert_broadcast"],
            kind,
            state,
            plan.scenario.name,
            json.dumps(variables),
            json.dumps({**plan.target.as_json(), "areas": areas[0], "exclude": areas[1]}),
            priority,
            plan.recipients,
            plan.parts,
            created_by,
            expires_at,
            json.dumps({f"{dep}|{lang}": n for (dep, lang), n in plan.language_of.items()}),
            parent_id,
            reached_only,
        )
        await conn.executemany(
            queries["insert_group"],
            [
                (
                    broadcast_id,
                    n,
                    g.departement,
                    g.language,
                    g.text,
                    g.message.encoding,
                    g.message.part_count,
                    g.recipients,
                )
                for n, g in enumerate(plan.groups)
            ],
        )
        chunk_rows: list[tuple[Any, ...]] = []
        selections: list[tuple[Any, ...]] = []
        for dep, selection in plan.target.selections():
            starts = await chunk_starts(
                conn, dep, selection, plan.target.test_group_only, chunk_size
            )
            communes, cells, no_communes, no_cells = selection.columns()
            if starts and not selection.simple:
                selections.append((broadcast_id, dep, cells, no_communes, no_cells))
            for i in range(len(starts)):
                # The first chunk starts at 0: the ranges cover the whole key space.
                start = starts[i] if i else 0
                end = starts[i + 1] - 1 if i + 1 < len(starts) else MAX_MSISDN
                chunk_rows.append((broadcast_id, len(chunk_rows), dep, communes, start, end))
        await conn.executemany(queries["insert_chunk"], chunk_rows)
        await conn.executemany(queries["set_chunk_selection"], selections)
    return broadcast_id


async def set_state(conn: Conn, broadcast_id: int, state: str, from_states: list[str]) -> bool:
    """Move to `state` if currently in one of `from_states`; False if it was not."""
    row = await conn.fetchrow(queries["set_state"], broadcast_id, state, from_states)
    return row is not None


async def claim_chunk(
    conn: Conn, broadcast_id: int, worker: str, lease_seconds: float
) -> Chunk | None:
    row = await conn.fetchrow(queries["claim_chunk"], broadcast_id, worker, lease_seconds)
    if row is None:
        return None
    cells, exclude_communes, exclude_cells = await _chunk_selection(conn, broadcast_id, row)
    return Chunk(
        row["chunk_no"],
        row["departement"],
        row["communes"],
        row["msisdn_from"],
        row["msisdn_to"],
        cells=cells,
        exclude_communes=exclude_communes,
        exclude_cells=exclude_cells,
        reclaimed=row["claims"] > 1,
    )


async def _chunk_selection(
    conn: Conn, broadcast_id: int, row: asyncpg.Record
) -> tuple[list[str] | None, list[str] | None, list[str] | None]:
    """A claimed chunk's cells and exclusions (columns claim_chunk may not return)."""
    if "exclude_cells" not in row:
        fetched = await conn.fetchrow(queries["chunk_selection"], broadcast_id, row["chunk_no"])
        assert fetched is not None
        row = fetched
    return (row["cells"], row["exclude_communes"], row["exclude_cells"])


async def recorded_parts(conn: Conn, broadcast_id: int, chunk: Chunk) -> set[tuple[int, int]]:
    if not chunk.reclaimed:
        return set()  # first claim of this chunk: nothing can have been recorded yet
    rows = await conn.fetch(
        queries["recorded_parts"],
        broadcast_id,
        chunk.msisdn_from,
        chunk.msisdn_to,
        chunk.departement,
    )
    return {(r["msisdn"], r["part"]) for r in rows}


async def summary(conn: Conn, broadcast_id: int) -> Summary:
    row = await conn.fetchrow(queries["delivery_summary"], broadcast_id)
    failures = await conn.fetch(queries["failures_by_status"], broadcast_id)
    assert row is not None
    return Summary(
        recorded=row["recorded"],
        accepted=row["accepted"],
        failed=row["failed"],
        duplicates=row["duplicates"],
        part_outcomes=row["part_outcomes"],
        failed_by_status={r["status"]: r["n"] for r in failures},
    )


async def get_broadcast(conn: Conn, broadcast_id: int) -> asyncpg.Record:
    """The broadcast row, or an InputError saying it does not exist."""
    row = await conn.fetchrow(queries["get_broadcast"], broadcast_id)
    if row is None:
        raise InputError(f"there is no broadcast {broadcast_id}: see `broadcaster list`")
    return row


async def apply_action(conn: Conn, broadcast_id: int, action: Action) -> str:
    """Apply a state-machine action; InputError if it does not apply to the current state."""
    row = await get_broadcast(conn, broadcast_id)
    sources, target = transition(action)
    if not await set_state(conn, broadcast_id, target, sources):
        current = await conn.fetchval(queries["get_state"], broadcast_id)
        raise refuse(action, broadcast_id, current or row["state"])
    return target


async def act(conn: Conn, broadcast_id: int, action: Action, actor: str) -> str:
    """`apply_action` and its audit-log entry, together or not at all (CLI and `send`)."""
    async with conn.transaction():
        state = await apply_action(conn, broadcast_id, action)
        await conn.execute(
            queries["insert_audit"], actor, action, f"broadcast:{broadcast_id}", "{}"
        )
    return state


async def expire_overdue(conn: Conn) -> list[int]:
    """Mark every unfinished broadcast past its expiry as expired; return their ids."""
    return [r["id"] for r in await conn.fetch(queries["expire_overdue"])]


async def progress(conn: Conn, broadcast_id: int) -> dict[str, Any]:
    """Status for people and scripts: the record, chunk progress and derived counts."""
    await expire_overdue(conn)
    row = await get_broadcast(conn, broadcast_id)
    chunks = await conn.fetchrow(queries["chunks_left"], broadcast_id)
    counts = await summary(conn, broadcast_id)
    receipts = await conn.fetch(queries["receipt_summary"], broadcast_id)
    assert chunks is not None
    return {
        "broadcast_id": broadcast_id,
        "kind": row["kind"],
        "state": row["state"],
        "template": row["template"],
        "recipients": row["recipients"],
        "parts": row["parts"],
        "priority": row["priority"],
        "created_by": row["created_by"],
        "approved_by": row["approved_by"],
        "parent_id": row["parent_id"],
        "created_at": row["created_at"].isoformat(),
        "started_at": row["started_at"].isoformat() if row["started_at"] else None,
        "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None,
        "expires_at": row["expires_at"].isoformat(),
        "chunks_total": chunks["total"],
        "chunks_done": chunks["total"] - chunks["todo"],
        "recorded": counts.recorded,
        "part_outcomes": counts.part_outcomes,
        "accepted": counts.accepted,
        "failed": counts.failed,
        "duplicates": counts.duplicates,
        "failed_by_status": {
            f"0x{k & 0xFFFFFFFF:08X}": v for k, v in counts.failed_by_status.items()
        },
        "receipts": {
            r["stat"]: {
                "count": r["n"],
                "p50_s": r["p50_s"],
                "p95_s": r["p95_s"],
                "max_s": r["max_s"],
            }
            for r in receipts
        },
    }


async def list_recent(conn: Conn, limit: int = 20) -> list[dict[str, Any]]:
    await expire_overdue(conn)
    rows = await conn.fetch(queries["list_broadcasts"], limit)
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
        for r in rows
    ]


async def stop_if_active(conn: Conn, broadcast_id: int) -> bool:
    """Cancel a broadcast unless it already ended; True if it was stopped."""
    sources, target = transition("cancel")
    return await set_state(conn, broadcast_id, target, sources)


async def reached_counts(conn: Conn, target: Target, parent_id: int) -> dict[tuple[str, str], int]:
    """Like target_counts, restricted to recipients whose parts the parent had accepted."""
    counts: dict[tuple[str, str], int] = {}
    for dep, selection in target.selections():
        communes, cells, exclude_communes, exclude_cells = selection.columns()
        rows = await conn.fetch(
            queries["reached_counts"],
            dep,
            communes,
            target.test_group_only,
            cells,
            exclude_communes,
            exclude_cells,
            parent_id,
        )
        for r in rows:
            counts[(dep, r["lang"])] = r["n"]
    return counts
