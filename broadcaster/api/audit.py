"""The audit log: who did what, to which subject, when, in which request.

Every state-changing request (create, preview, approve, cancel, pause, resume, update, all-clear,
CAP, token changes) and every refusal that matters for security (wrong role, two-person rule)
writes one row, in the same transaction as the change when there is one. Reads are not audited.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries


async def record(
    conn: Conn,
    *,
    actor: str,
    action: str,
    subject: str | None,
    request_id: str | None = None,
    **details: Any,
) -> int:
    """Append one entry; returns its id."""
    if request_id is not None:
        details["request_id"] = request_id
    row = await conn.fetchrow(
        queries["insert_audit"], actor, action, subject, json.dumps(details, default=str)
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
