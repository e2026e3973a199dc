"""Admin endpoints: API tokens (create, list, activate, revoke) and the audit log."""

from __future__ import annotations

from aiohttp import web

from broadcaster.api.context import Call
from broadcaster.commands import tokens
from broadcaster.http.context import reply


async def list_tokens(call: Call) -> web.StreamResponse:
    return reply({"tokens": await tokens.list_tokens(call.ctx, call.caller)})


async def create_token(call: Call) -> web.StreamResponse:
    row, token = await tokens.create_token(
        call.ctx, call.caller, call.body["name"], call.body["role"], call.body.get("holder")
    )
    return reply({**row, "token": token}, status=201)


async def activate_token(call: Call) -> web.StreamResponse:
    token_id = call.path_id("token_id")
    row = await tokens.activate_token(call.ctx, call.caller, token_id, call.body.get("reason"))
    return reply(row)


async def revoke_token(call: Call) -> web.StreamResponse:
    token_id = call.path_id("token_id")
    row = await tokens.revoke_token(call.ctx, call.caller, token_id, call.body.get("reason"))
    return reply(row)


async def list_audit(call: Call) -> web.StreamResponse:
    limit = call.query.get("limit") or 50
    entries = await tokens.audit_log(call.ctx, call.caller, limit, call.query.get("before"))
    return reply({"entries": entries})
