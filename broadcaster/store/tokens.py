"""API tokens in the database: only their hash is kept, with a prefix to recognise them, and
the person who holds each (`holder`: the two-person rule compares holders)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from broadcaster.domain.tokens import PREFIX_LENGTH, hash_token
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

TOKEN_FIELDS = (
    "id",
    "name",
    "holder",
    "role",
    "prefix",
    "created_by",
    "created_at",
    "pending",
    "activated_by",
    "activated_at",
    "last_used_at",
    "revoked_at",
    "revoked_by",
)


async def insert(
    conn: Conn,
    name: str,
    role: str,
    token: str,
    created_by: str,
    *,
    holder: str | None = None,
    pending: bool = False,
) -> dict[str, Any]:
    """Store a new token's hash for `holder` (default: `name`); its listing row. A `pending`
    token is refused until a second admin activates it."""
    row = await conn.fetchrow(
        queries["insert_token"],
        name,
        role,
        token[:PREFIX_LENGTH],
        hash_token(token),
        created_by,
        holder or name,
        pending,
    )
    assert row is not None
    return token_json(row)


async def listing(conn: Conn) -> list[dict[str, Any]]:
    return [token_json(r) for r in await conn.fetch(queries["list_tokens"])]


async def get(conn: Conn, token_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(queries["get_token"], token_id)
    return row


async def by_hash(conn: Conn, token: str) -> asyncpg.Record | None:
    """The row of a presented token (by its hash), revoked or not; None when unknown."""
    row: asyncpg.Record | None = await conn.fetchrow(queries["token_by_hash"], hash_token(token))
    return row


async def touch(conn: Conn, token_id: int) -> None:
    """Record use (at most one write a minute per token)."""
    await conn.execute(queries["touch_token"], token_id)


async def revoke(conn: Conn, token_id: int, revoked_by: str) -> dict[str, Any] | None:
    """Revoke a token; its row, or None when there is no active token with that id."""
    row = await conn.fetchrow(queries["revoke_token"], token_id, revoked_by)
    return None if row is None else token_json(row)


async def activate(conn: Conn, token_id: int, activated_by: str) -> dict[str, Any] | None:
    """Activate a pending token; its row, or None when there is no pending active one."""
    row = await conn.fetchrow(queries["activate_token"], token_id, activated_by)
    return None if row is None else token_json(row)


def token_json(row: Any) -> dict[str, Any]:
    """A token's listing (never its hash)."""
    out: dict[str, Any] = {}
    for key in TOKEN_FIELDS:
        try:
            value = row[key]
        except KeyError:
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    out["active"] = out.get("revoked_at") is None and not out.get("pending", False)
    return out
