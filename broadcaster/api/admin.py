"""Admin endpoints: API tokens (create, list, revoke) and the audit log."""

from __future__ import annotations

from aiohttp import web

from broadcaster.api import audit, auth
from broadcaster.api.context import Call, reply
from broadcaster.api.errors import conflict, not_found
from broadcaster.store.queries import queries


async def list_tokens(call: Call) -> web.StreamResponse:
    async with call.services.db.acquire() as conn:
        return reply({"tokens": await auth.list_tokens(conn)})


async def create_token(call: Call) -> web.StreamResponse:
    caller = call.caller
    async with call.services.db.acquire() as conn, conn.transaction():
        row, token = await auth.create_token(
            conn, call.body["name"], call.body["role"], created_by=caller.name
        )
        await audit.record(
            conn,
            actor=caller.name,
            action="token_create",
            subject=f"token:{row['id']}",
            request_id=call.request_id,
            role=caller.role,
            name=row["name"],
            token_role=row["role"],
            prefix=row["prefix"],
        )
    return reply({**row, "token": token}, status=201)


async def revoke_token(call: Call) -> web.StreamResponse:
    token_id = call.path_id("token_id")
    caller = call.caller
    async with call.services.db.acquire() as conn:
        existing = await conn.fetchrow(queries["get_token"], token_id)
        if existing is None:
            raise not_found(f"there is no token {token_id}: see GET /v1/tokens")
        if existing["revoked_at"] is not None:
            raise conflict(f"token {token_id} ({existing['name']}) was already revoked")
        async with conn.transaction():
            row = await auth.revoke_token(conn, token_id, caller.name)
            await audit.record(
                conn,
                actor=caller.name,
                action="token_revoke",
                subject=f"token:{token_id}",
                request_id=call.request_id,
                role=caller.role,
                name=row["name"],
                reason=call.body.get("reason"),
            )
    return reply(row)


async def list_audit(call: Call) -> web.StreamResponse:
    limit = call.query.get("limit") or 50
    async with call.services.db.acquire() as conn:
        entries = await audit.recent(conn, limit, call.query.get("before"))
    return reply({"entries": entries})
