"""The audit log: who did what, to which subject, when, through which interface, in which request.

Every row is written here, in one shape, from every interface: `actor` is the person (or system
actor), `details` always carry their `role` and `interface`, and the `request_id`, `token_id`
and `origin` (login@host for the CLI, the client's address over HTTP) when there are some.
Callers write it in the same transaction as the change it records.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from broadcaster.domain.caller import Caller
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries


def subject_of(kind: str, ident: object | None) -> str | None:
    """`broadcast:42`, `token:7`...: what an entry is about (None: nothing in particular)."""
    return None if ident is None else f"{kind}:{ident}"


async def record(
    conn: Conn, caller: Caller, action: str, subject: str | None, **details: Any
) -> int:
    """Append one entry; returns its id."""
    entry: dict[str, Any] = {"role": caller.role, "interface": caller.interface, **details}
    if caller.request_id is not None:
        entry["request_id"] = caller.request_id
    if caller.token_id is not None:
        entry["token_id"] = caller.token_id
    if caller.origin is not None:
        entry["origin"] = caller.origin
    row = await conn.fetchrow(
        queries["insert_audit"], caller.name, action, subject, json.dumps(entry, default=str)
    )
    assert row is not None
    return int(row["id"])


async def recent(conn: Conn, limit: int = 50, before: int | None = None) -> list[dict[str, Any]]:
    """Newest first; `before` (an entry id) pages back."""
    return [entry_json(r) for r in await conn.fetch(queries["list_audit"], limit, before)]


async def of_subject(conn: Conn, subject: str, limit: int = 200) -> list[dict[str, Any]]:
    """Oldest first: the history of one subject (e.g. `broadcast:42`)."""
    return [entry_json(r) for r in await conn.fetch(queries["audit_of_subject"], subject, limit)]


def entry_json(row: Any) -> dict[str, Any]:
    at = row["at"]
    details = row["details"]
    return {
        "id": row["id"],
        "at": at.isoformat() if isinstance(at, datetime) else at,
        "actor": row["actor"],
        "action": row["action"],
        "subject": row["subject"],
        "details": json.loads(details) if isinstance(details, str) else details,
    }
