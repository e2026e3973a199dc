"""API tokens for tests: minted straight into the store (the commands' `create_token` needs an
admin caller; fixtures set up the people the tests act as)."""

from __future__ import annotations

from typing import Any

from broadcaster.domain.caller import check_role
from broadcaster.domain.tokens import check_name, new_token
from broadcaster.store import tokens
from broadcaster.store.database import Conn


async def mint_token(
    conn: Conn,
    name: str,
    role: str,
    *,
    holder: str | None = None,
    created_by: str = "test",
    pending: bool = False,
) -> tuple[dict[str, Any], str]:
    """(the token's listing row, the token) named `name` with `role`, held by `holder`
    (default: `name`); `pending`: waiting for a second admin's activation."""
    token = new_token()
    row = await tokens.insert(
        conn,
        check_name(name),
        check_role(role),
        token,
        created_by,
        holder=check_name(holder) if holder else None,
        pending=pending,
    )
    return row, token
