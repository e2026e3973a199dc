"""Broadcast endpoints: create (or preview), approve, cancel, pause, resume, update, all-clear,
status, list, report — HTTP in, a command, JSON out (`commands.broadcasts` decides)."""

from __future__ import annotations

from aiohttp import web

from broadcaster.afteraction.html import render_html
from broadcaster.api.context import Call
from broadcaster.commands import broadcasts as commands
from broadcaster.commands import reports
from broadcaster.commands.broadcasts import CreateAction, Idempotency
from broadcaster.commands.planning import plan_as_json
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.domain.states import Action
from broadcaster.http.bodies import broadcast_request, fingerprint, follow_up
from broadcaster.http.context import reply
from broadcaster.http.errors import unprocessable
from broadcaster.http.schemas import IDEMPOTENCY_KEY
from broadcaster.http.streaming import stream_csv

IDEMPOTENCY_HEADER = "Idempotency-Key"


# -- create, update, all-clear ---------------------------------------------------------------


async def create(call: Call) -> web.StreamResponse:
    request = broadcast_request(call.body, created_by=call.caller.name)
    return await _submit(call, request, action="create")


async def update(call: Call) -> web.StreamResponse:
    return await _follow_up(call, default_template="update", action="update")


async def all_clear(call: Call) -> web.StreamResponse:
    return await _follow_up(call, default_template="all_clear", action="all_clear")


async def _follow_up(call: Call, default_template: str, action: CreateAction) -> web.StreamResponse:
    parent_id = call.path_id("broadcast_id")
    follow = follow_up(call.body, default_template)
    request = await commands.follow_up_request(call.ctx, call.caller, parent_id, follow)
    return await _submit(call, request, action=action)


async def _submit(
    call: Call, request: BroadcastRequest, action: CreateAction
) -> web.StreamResponse:
    ctx = call.ctx
    if call.body.get("dry_run", False):
        preview = await commands.preview(ctx, call.caller, request, action=action)
        return reply(
            {
                "dry_run": True,
                "approval_required": preview.approval_required,
                "preview": plan_as_json(preview.plan, ctx.parts_per_second),
            }
        )
    key = idempotency_key(call.request)
    idempotency = (
        None
        if key is None
        else Idempotency(key, fingerprint(call.request.method, call.request.path, call.body))
    )
    created = await commands.create(
        ctx, call.caller, request, action=action, idempotency=idempotency
    )
    if created.replayed:
        return reply(
            {
                "dry_run": False,
                "replayed": True,
                "approval_required": created.approval_required,
                "broadcast": created.status,
            },
            headers={"Idempotent-Replayed": "true"},
        )
    assert created.plan is not None
    return reply(
        {
            "dry_run": False,
            "replayed": False,
            "approval_required": created.approval_required,
            "preview": plan_as_json(created.plan, ctx.parts_per_second),
            "broadcast": created.status,
        },
        status=201,
        headers={"Location": f"/v1/broadcasts/{created.broadcast_id}"},
    )


def idempotency_key(request: web.Request) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        return None
    if not IDEMPOTENCY_KEY.match(key):
        raise unprocessable(
            f"{IDEMPOTENCY_HEADER} must be 1-200 visible ASCII characters (a UUID is ideal)",
            code="invalid_idempotency_key",
        )
    return key


# -- approve and control ---------------------------------------------------------------------


async def approve(call: Call) -> web.StreamResponse:
    broadcast_id = call.path_id("broadcast_id")
    status = await commands.approve(call.ctx, call.caller, broadcast_id, call.body.get("reason"))
    return reply(status)


async def cancel(call: Call) -> web.StreamResponse:
    return await _control(call, "cancel")


async def pause(call: Call) -> web.StreamResponse:
    return await _control(call, "pause")


async def resume(call: Call) -> web.StreamResponse:
    return await _control(call, "resume")


async def _control(call: Call, action: Action) -> web.StreamResponse:
    broadcast_id = call.path_id("broadcast_id")
    reason = call.body.get("reason")
    return reply(await commands.control(call.ctx, call.caller, broadcast_id, action, reason))


# -- reading ---------------------------------------------------------------------------------


async def get(call: Call) -> web.StreamResponse:
    broadcast_id = call.path_id("broadcast_id")
    return reply(await commands.status(call.ctx, call.caller, broadcast_id))


async def list_recent(call: Call) -> web.StreamResponse:
    limit = call.query.get("limit") or 20
    return reply({"broadcasts": await commands.list_recent(call.ctx, call.caller, limit)})


async def report(call: Call) -> web.StreamResponse:
    """The final report with the after-action report (`after_action`); as one HTML page when
    the client asks for text/html first (a browser)."""
    broadcast_id = call.path_id("broadcast_id")
    body = await commands.report(call.ctx, call.caller, broadcast_id)
    after = await reports.after_action(call.ctx, call.caller, broadcast_id)
    if call.request.headers.get("Accept", "").startswith("text/html"):
        return web.Response(text=render_html(after), content_type="text/html")
    return reply({**body, "after_action": after})


async def not_reached(call: Call) -> web.StreamResponse:
    """CSV of the recipients not reached, streamed (role-restricted and audited by the command:
    the refusal comes before anything is sent)."""
    broadcast_id = call.path_id("broadcast_id")
    lines = reports.not_reached_csv(call.ctx, call.caller, broadcast_id)
    return await stream_csv(call.request, lines, f"not-reached-{broadcast_id}.csv")
