"""Broadcast records: creating one from a plan, its state (through the state machine's table
only), and what is derived from its outcomes.

Outcomes are append-only (`deliveries`, `receipts`); a recipient's state is derived by reading
them, never by updating a per-recipient row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from broadcaster.domain.states import FINAL, TRANSITIONS, Action, refuse, waiting_for
from broadcaster.errors import NotFoundError
from broadcaster.planning import Plan
from broadcaster.smpp.receipts import FINAL_STATS as FINAL_RECEIPT_STATS
from broadcaster.store import receipts as store_receipts
from broadcaster.store import rollups, workers
from broadcaster.store.chunks import ahead_of, insert_chunks
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.targeting import Target

UNITS: dict[str, str] = {
    "recipients": "recipients (people)",
    "parts": "SMS parts (a text of 3 parts counts 3)",
    "recorded": "recipients with an outcome",
    "accepted": "recipients whose every part the SMSC accepted",
    "failed": "recipients with a part refused",
    "duplicates": "parts recorded more than once",
    "resent_in_flight": "parts sent again while their first copy may have been accepted (in "
    "flight on a lost connection, or unanswered before a timeout)",
    "possibly_sent_twice": "parts the SMSC may have received twice: resent_in_flight plus "
    "duplicates (a worker killed mid-send may add the parts it had sent and not yet recorded, "
    "which nobody can count)",
    "part_outcomes": "parts",
    "failed_by_status": "parts",
    "receipts": "parts",
    "by_smsc": "parts",
    "waiting_behind": "broadcasts (ids) more urgent than this approved one, the first sent first",
    "receipts_unattributed": "receipts since the broadcast started, from any SMSC, that name no "
    "part (unmatched) or two (ambiguous): never counted as delivered",
}
"""What each count of a status counts: recipients and parts are never mixed unlabelled."""


@dataclass(frozen=True)
class Summary:
    """Per-recipient counts derived from the outcomes."""

    recorded: int
    accepted: int
    failed: int
    duplicates: int
    part_outcomes: int
    failed_by_status: dict[int, int]
    resent_in_flight: int = 0
    """Parts the SMPP pool sent again while their first copy may have been accepted."""

    @property
    def possibly_sent_twice(self) -> int:
        """What the report shows: every part the SMSC may have received twice that we know of."""
        return self.resent_in_flight + self.duplicates


def language_map(plan: Plan) -> dict[str, dict[str, int]]:
    """Which group's text each (département, subscriber language) gets: {dep: {lang: group}}."""
    out: dict[str, dict[str, int]] = {}
    for (dep, lang), group_no in plan.language_of.items():
        out.setdefault(dep, {})[lang] = group_no
    return out


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
            json.dumps(language_map(plan)),
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
        await insert_chunks(conn, broadcast_id, plan.target, chunk_size)
    return broadcast_id


# -- state: every change goes through `apply` ------------------------------------------------


async def apply(
    conn: Conn, broadcast_id: int, action: Action, *, approved_by: str | None = None
) -> bool:
    """Take `action` if the broadcast is in a state it applies to (the domain's table); False
    if it was not. The one function through which a broadcast changes state."""
    sources, target = TRANSITIONS[action]
    row = await conn.fetchrow(
        queries["set_state"],
        broadcast_id,
        target,
        sorted(sources),
        action == "start",
        target in FINAL,
        approved_by,
    )
    return row is not None


async def apply_action(
    conn: Conn, broadcast_id: int, action: Action, *, approved_by: str | None = None
) -> str:
    """`apply`, or the error saying why not (NotFoundError, ConflictError with the current
    state); returns the new state."""
    if not await apply(conn, broadcast_id, action, approved_by=approved_by):
        current = await get_state(conn, broadcast_id)
        if current is None:
            raise no_such_broadcast(broadcast_id)
        raise refuse(action, broadcast_id, current)
    return TRANSITIONS[action][1]


async def expire_overdue(conn: Conn) -> list[int]:
    """Mark every unfinished broadcast past its expiry as expired; return their ids."""
    sources, target = TRANSITIONS["expire"]
    rows = await conn.fetch(queries["expire_overdue"], sorted(sources), target)
    return [r["id"] for r in rows]


async def complete_finished(conn: Conn) -> list[int]:
    """Complete the broadcasts left `running` with every chunk done (every outcome recorded):
    their run ended before it could say so. Their ids."""
    sources, _target = TRANSITIONS["complete"]
    completed = []
    for row in await conn.fetch(queries["finished_but_running"], "running"):
        if "running" in sources and await apply(conn, row["id"], "complete"):
            completed.append(int(row["id"]))
    return completed


# -- reading ---------------------------------------------------------------------------------


def no_such_broadcast(broadcast_id: int) -> NotFoundError:
    return NotFoundError(
        f"there is no broadcast {broadcast_id}: see `broadcaster list` or GET /v1/broadcasts"
    )


async def get_broadcast(conn: Conn, broadcast_id: int) -> asyncpg.Record:
    """The broadcast row, or a NotFoundError saying it does not exist."""
    row: asyncpg.Record | None = await conn.fetchrow(queries["get_broadcast"], broadcast_id)
    if row is None:
        raise no_such_broadcast(broadcast_id)
    return row


async def get_state(conn: Conn, broadcast_id: int) -> str | None:
    """The broadcast's state (None: there is no such broadcast)."""
    row = await conn.fetchrow(queries["get_state"], broadcast_id)
    return None if row is None else str(row["state"])


async def get_state_row(conn: Conn, broadcast_id: int) -> asyncpg.Record | None:
    """State, expiry and priority: what a runner re-reads several times a second."""
    row: asyncpg.Record | None = await conn.fetchrow(queries["get_state"], broadcast_id)
    return row


async def groups(conn: Conn, broadcast_id: int) -> list[asyncpg.Record]:
    """The broadcast's texts, one per (département, language) group, in group order."""
    return list(await conn.fetch(queries["get_groups"], broadcast_id))


async def fallback_groups(conn: Conn, broadcast_id: int) -> dict[str, int]:
    """{département: group} for subscribers whose language had no group at planning (imported
    or changed since): the département's default-language text, never a stopped run."""
    rows = await conn.fetch(queries["fallback_groups"], broadcast_id)
    return {r["departement"]: r["group_no"] for r in rows}


async def follow_ups(conn: Conn, broadcast_id: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(queries["follow_ups"], broadcast_id)]


async def summary(conn: Conn, broadcast_id: int) -> Summary:
    """The counts, read from the roll-ups (a few rows, whatever the broadcast's size)."""
    return _summary(
        await rollups.read(conn, broadcast_id), await _possibly_twice(conn, broadcast_id)
    )


async def _possibly_twice(conn: Conn, broadcast_id: int) -> int:
    return int(await conn.fetchval(queries["possibly_twice"], broadcast_id) or 0)


def _summary(rolled: rollups.Rolled, resent: int) -> Summary:
    return Summary(
        recorded=rolled.recorded,
        accepted=rolled.accepted,
        failed=rolled.failed,
        duplicates=rolled.duplicates,
        part_outcomes=rolled.part_outcomes,
        failed_by_status=rolled.failed_by_status(),
        resent_in_flight=resent,
    )


async def progress(conn: Conn, broadcast_id: int) -> dict[str, Any]:
    """Status for people and scripts: the record, chunk progress and derived counts."""
    await expire_overdue(conn)
    row = await get_broadcast(conn, broadcast_id)
    saved = await conn.fetchval(queries["saved_report"], broadcast_id)
    if saved is not None:  # its outcomes were purged (retention): the report saved before
        report: dict[str, Any] = json.loads(saved)
        return report
    chunks = await conn.fetchrow(queries["chunks_left"], broadcast_id)
    rolled = await rollups.read(conn, broadcast_id)
    counts = _summary(rolled, int(row["possibly_twice"] or 0))
    assert chunks is not None
    waiting = None
    ahead: list[int] = []
    alive = None
    if row["state"] in ("pending_approval", "approved"):
        alive = await workers.alive(conn)
        ahead = await ahead_of(conn, broadcast_id) if row["state"] == "approved" else []
        waiting = waiting_for(row["state"], alive, ahead, broadcast_id)
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
        "waiting_for": waiting,
        "waiting_behind": ahead,
        "workers_alive": alive,
        "chunks_total": chunks["total"],
        "chunks_done": chunks["total"] - chunks["todo"],
        "recorded": counts.recorded,
        "part_outcomes": counts.part_outcomes,
        "accepted": counts.accepted,
        "failed": counts.failed,
        "duplicates": counts.duplicates,
        "resent_in_flight": counts.resent_in_flight,
        "possibly_sent_twice": counts.possibly_sent_twice,
        "failed_by_status": {
            f"0x{k & 0xFFFFFFFF:08X}": v for k, v in counts.failed_by_status.items()
        },
        "units": UNITS,
        "receipts": rolled.receipts,
        "by_smsc": _by_smsc(rolled),
        "receipts_unattributed": (
            await store_receipts.unattributed(conn, started)
            if (started := row["started_at"])
            else None
        ),
        **await receipt_watch(conn, broadcast_id, rolled),
    }


async def receipt_watch(
    conn: Conn, broadcast_id: int, rolled: rollups.Rolled | None = None
) -> dict[str, Any]:
    """Parts accepted and still without a final receipt, whether any live worker has a bind
    up to receive them, and what the live workers say is wrong with their SMSCs.

    From the roll-ups, not a scan of the outcomes (that took seconds at 30k recipients): parts
    accepted minus parts with a final receipt (a part accepted twice counts twice, one with two
    final stats once per stat: an estimate, never below 0)."""
    rolled = rolled or await rollups.read(conn, broadcast_id)
    accepted = sum(n for (_smsc, status), n in rolled.by_outcome.items() if status == 0)
    final = sum(
        int(r["count"] or 0) for stat, r in rolled.receipts.items() if stat in FINAL_RECEIPT_STATS
    )
    return {
        "receipts_awaited": max(0, accepted - final),
        "receivers_bound": await workers.receiving(conn),
        "smsc_problems": await workers.smsc_problems(conn),
    }


def _by_smsc(rolled: rollups.Rolled) -> dict[str, dict[str, Any]]:
    """Parts accepted and failed (by status) per SMSC."""
    out: dict[str, dict[str, Any]] = {}
    for (smsc, status), n in sorted(rolled.by_outcome.items()):
        entry = out.setdefault(smsc, {"accepted": 0, "failed": 0, "failed_by_status": {}})
        if status == 0:
            entry["accepted"] += n
        else:
            entry["failed"] += n
            entry["failed_by_status"][f"0x{status & 0xFFFFFFFF:08X}"] = n
    return out


async def list_recent(conn: Conn, limit: int = 20) -> list[dict[str, Any]]:
    await expire_overdue(conn)
    return _rows(await conn.fetch(queries["list_broadcasts"], limit))


async def awaiting_approval(conn: Conn, limit: int = 100) -> list[dict[str, Any]]:
    """Broadcasts waiting for a second person, oldest first (not yet expired)."""
    return _rows(await conn.fetch(queries["awaiting_approval"], limit))


def _rows(rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in dict(r).items()}
        for r in rows
    ]


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


# -- who created it through the API, and idempotent creation ----------------------------------


async def record_origin(
    conn: Conn, broadcast_id: int, token_id: int | None, request_id: str | None
) -> None:
    """The API token (and request) that created a broadcast: the two-person rule compares it."""
    await conn.execute(queries["insert_origin"], broadcast_id, token_id, request_id)


async def origin(conn: Conn, broadcast_id: int) -> tuple[int, str] | None:
    """(token id, its holder) of the token that created the broadcast (None: no token)."""
    row = await conn.fetchrow(queries["get_origin"], broadcast_id)
    return None if row is None else (int(row["token_id"]), str(row["holder"]))


async def claim_idempotency_key(conn: Conn, token_id: int, key: str, fingerprint: str) -> bool:
    """Take the key inside the create's transaction (True: it was new, and is now taken)."""
    return bool(await conn.fetchval(queries["claim_idempotency_key"], token_id, key, fingerprint))


async def idempotency_key(conn: Conn, token_id: int, key: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(queries["get_idempotency_key"], token_id, key)
    return row


async def bind_idempotency_key(conn: Conn, token_id: int, key: str, broadcast_id: int) -> None:
    await conn.execute(queries["set_idempotency_broadcast"], token_id, key, broadcast_id)
