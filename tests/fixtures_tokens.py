"""API tokens for tests: minted straight into the store (the commands' `create_token` needs an
admin caller; fixtures set up the people the tests act as)."""

from __future__ import annotations

from typing import Any

from broadcaster.domain.caller import check_role
from broadcaster.domain.tokens import check_name, new_token
from broadcaster.store import tokens
from broadcaster.store.database import Conn


async def mint_token(conn: Conn, name: str, role: str) -> tuple[dict[str, Any], str]:
    """(the token's listing row, the token) for `name` with `role`."""
    token = new_token()
    row = await tokens.insert(conn, check_name(name), check_role(role), token, "test")
    return row, token
