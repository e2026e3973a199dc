"""CAP messages acted upon: recognised when retried, found again by a later Update or Cancel."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries


async def lock(conn: Conn, sender: str, identifier: str) -> None:
    """Serialise the handling of one (sender, identifier) until the transaction ends."""
    await conn.execute(queries["lock_cap_message"], sender, identifier)


async def get(conn: Conn, sender: str, identifier: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(queries["get_cap_message"], sender, identifier)
    return row


async def insert(
    conn: Conn,
    *,
    sender: str,
    identifier: str,
    sent: str,
    status: str,
    msg_type: str,
    body_hash: str,
    token_id: int | None,
    broadcast_id: int | None,
    result: dict[str, Any],
) -> None:
    await conn.execute(
        queries["insert_cap_message"],
        sender,
        identifier,
        sent,
        status,
        msg_type,
        body_hash,
        token_id,
        broadcast_id,
        json.dumps(result),
    )


async def referenced_broadcasts(
    conn: Conn, references: Sequence[tuple[str, str]]
) -> list[asyncpg.Record]:
    """Broadcasts created by the messages named as (sender, identifier), newest first."""
    return list(
        await conn.fetch(
            queries["cap_referenced_broadcasts"],
            [sender for sender, _ in references],
            [identifier for _, identifier in references],
        )
    )


async def thread(conn: Conn, broadcast_ids: Sequence[int]) -> list[asyncpg.Record]:
    """The broadcasts and every update/all-clear that follows them, with who created them."""
    return list(await conn.fetch(queries["broadcast_thread"], list(broadcast_ids)))
