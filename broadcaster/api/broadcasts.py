"""Broadcast endpoints: create (or preview), approve, cancel, pause, resume, update, all-clear,
status, list, report.

Creation goes through `operations.make_plan`, exactly like the CLI: an unknown area, template or
variable, or a text over the parts limit, is refused (422) before anything is stored.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import structlog
from aiohttp import web

from broadcaster.api import audit
from broadcaster.api.auth import Caller
from broadcaster.api.context import Call, reply
from broadcaster.api.errors import conflict, forbidden, not_found, unprocessable
from broadcaster.api.schemas import IDEMPOTENCY_KEY
from broadcaster.engine.states import Action, refuse, transition
from broadcaster.errors import InputError
from broadcaster.operations import (
    DEFAULT_EXPIRY,
    BroadcastRequest,
    create_broadcast,
    make_plan,
    plan_as_json,
)
from broadcaster.planning import Plan
from broadcaster.settings import Settings
from broadcaster.store import broadcasts as store
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

log = structlog.get_logger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"


def needs_approval(settings: Settings, kind: str, recipients: int) -> bool:
    """The two-person rule: live broadcasts above the threshold wait for a second person."""
    return kind == "live" and recipients > settings.api_approval_threshold


def subject(broadcast_id: int | None) -> str | None:
    return None if broadcast_id is None else f"broadcast:{broadcast_id}"


async def load(conn: Conn, broadcast_id: int) -> Any:
    row = await conn.fetchrow(queries["get_broadcast"], broadcast_id)
    if row is None:
        raise not_found(f"there is no broadcast {broadcast_id}: see GET /v1/broadcasts")
    return row


async def created_by_caller(conn: Conn, caller: Caller, row: Any) -> bool:
    """Whether the caller is the person who created the broadcast (by token, or by name)."""
    origin = await conn.fetchrow(queries["get_origin"], row["id"])
    return caller.same_person(row["created_by"], origin["token_id"] if origin else None)


async def status_of(conn: Conn, broadcast_id: int) -> dict[str, Any]:
    await load(conn, broadcast_id)
    return await store.progress(conn, broadcast_id)


async def store_planned(
    conn: Conn, call: Call, request: BroadcastRequest, plan: Plan
) -> tuple[int, bool]:
    """Store a planned broadcast (pending approval if the rule says so); (id, approval needed).

    Call inside a transaction: the origin row commits with the broadcast.
    """
    required = needs_approval(call.services.settings, request.kind, plan.recipients)
    broadcast_id = await create_broadcast(
        conn,
        call.services.settings,
        request,
        plan,
        state="pending_approval" if required else "approved",
    )
    await conn.execute(
        queries["insert_origin"], broadcast_id, call.caller.token_id, call.request_id
    )
    structlog.contextvars.bind_contextvars(broadcast_id=broadcast_id)
    log.info(
        "broadcast_created",
        kind=request.kind,
        template=request.template,
        recipients=plan.recipients,
        parts=plan.parts,
        approval_required=required,
        parent_id=request.parent_id,
        actor=call.caller.name,
    )
    return broadcast_id, required


# -- create, update, all-clear ---------------------------------------------------------------


async def create(call: Call) -> web.StreamResponse:
    body = call.body
    request = BroadcastRequest(
        areas=tuple(body["areas"]),
        template=body["template"],
        variables=dict(body.get("variables", {})),
        exclude=tuple(body.get("exclude", ())),
        kind=body.get("kind", "live"),
        test_group_only=body.get("test_group_only", False),
        gsm_safe=body.get("gsm_safe", False),
        expires_in=_expires_in(body),
        created_by=call.caller.name,
    )
    return await _submit(call, request, action="create")


async def update(call: Call) -> web.StreamResponse:
    return await _follow_up(call, default_template="update", action="update")


async def all_clear(call: Call) -> web.StreamResponse:
    return await _follow_up(call, default_template="all_clear", action="all_clear")


async def _follow_up(call: Call, default_template: str, action: str) -> web.StreamResponse:
    parent_id = call.path_id("broadcast_id")
    body = call.body
    async with call.services.db.acquire() as conn:
        parent = await load(conn, parent_id)
    target = json.loads(parent["target"])
    request = BroadcastRequest(
        areas=tuple(body.get("areas", ())),
        exclude=tuple(body.get("exclude", ())),
        template=body.get("template", default_template),
        variables=dict(body.get("variables", {})),
        kind=parent["kind"],
        test_group_only=bool(target.get("test_group_only", False)),
        gsm_safe=body.get("gsm_safe", False),
        expires_in=_expires_in(body),
        created_by=call.caller.name,
        parent_id=parent_id,
        reached_only=body.get("reached_only", False),
    )
    return await _submit(call, request, action=action)


def _expires_in(body: dict[str, Any]) -> timedelta:
    seconds = body.get("expires_in_seconds")
    return DEFAULT_EXPIRY if seconds is None else timedelta(seconds=int(seconds))


async def _submit(call: Call, request: BroadcastRequest, action: str) -> web.StreamResponse:
    services = call.services
    settings = services.settings
    caller = call.caller
    if call.body.get("dry_run", False):
        async with services.db.acquire() as conn:
            plan = await make_plan(conn, settings, request)
            await audit.record(
                conn,
                actor=caller.name,
                action=f"{action}_preview",
                subject=subject(request.parent_id),
                request_id=call.request_id,
                role=caller.role,
                template=request.template,
                areas=list(request.areas),
                recipients=plan.recipients,
            )
        return reply(
            {
                "dry_run": True,
                "approval_required": needs_approval(settings, request.kind, plan.recipients),
                "preview": plan_as_json(plan, services.parts_per_second),
            }
        )
    key = idempotency_key(call.request)
    fingerprint = _fingerprint(call)
    async with services.db.acquire() as conn:
        replayed: int | None = None
        async with conn.transaction():
            if key is not None:
                replayed = await _claim_key(conn, caller, key, fingerprint)
            if replayed is None:
                plan = await make_plan(conn, settings, request)
                broadcast_id, required = await store_planned(conn, call, request, plan)
                if key is not None:
                    await conn.execute(
                        queries["set_idempotency_broadcast"], caller.token_id, key, broadcast_id
                    )
                await audit.record(
                    conn,
                    actor=caller.name,
                    action=action,
                    subject=subject(broadcast_id),
                    request_id=call.request_id,
                    role=caller.role,
                    kind=request.kind,
                    template=request.template,
                    areas=list(request.areas),
                    recipients=plan.recipients,
                    parts=plan.parts,
                    parent_id=request.parent_id,
                    approval_required=required,
                    idempotency_key=key,
                )
        if replayed is not None:
            status = await store.progress(conn, replayed)
            log.info("idempotent_replay", broadcast_id=replayed, key=key)
            return reply(
                {
                    "dry_run": False,
                    "replayed": True,
                    "approval_required": status["state"] == "pending_approval",
                    "broadcast": status,
                },
                headers={"Idempotent-Replayed": "true"},
            )
        status = await store.progress(conn, broadcast_id)
    return reply(
        {
            "dry_run": False,
            "replayed": False,
            "approval_required": required,
            "preview": plan_as_json(plan, services.parts_per_second),
            "broadcast": status,
        },
        status=201,
        headers={"Location": f"/v1/broadcasts/{broadcast_id}"},
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


def _fingerprint(call: Call) -> str:
    """What makes two requests the same: method, path and the body's content (key order aside)."""
    canonical = json.dumps(call.body, sort_keys=True, separators=(",", ":"))
    text = f"{call.request.method} {call.request.path}\n{canonical}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


async def _claim_key(conn: Conn, caller: Caller, key: str, fingerprint: str) -> int | None:
    """None when the key is new (now taken); else the broadcast it created before."""
    if await conn.fetchval(queries["claim_idempotency_key"], caller.token_id, key, fingerprint):
        return None
    row = await conn.fetchrow(queries["get_idempotency_key"], caller.token_id, key)
    if row is None or row["broadcast_id"] is None:
        raise conflict(
            f"a request with {IDEMPOTENCY_HEADER} {key!r} is still being processed: retry",
            code="idempotency_in_progress",
        )
    if row["request_hash"] != fingerprint:
        raise unprocessable(
            f"{IDEMPOTENCY_HEADER} {key!r} was already used for a different request "
            f"(broadcast {row['broadcast_id']}): use a new key for a new broadcast",
            code="idempotency_mismatch",
        )
    return int(row["broadcast_id"])


# -- approve and control ---------------------------------------------------------------------


async def approve(call: Call) -> web.StreamResponse:
    broadcast_id = call.path_id("broadcast_id")
    caller = call.caller
    async with call.services.db.acquire() as conn:
        await store.expire_overdue(conn)
        row = await load(conn, broadcast_id)
        sources, _ = transition("approve")
        if row["state"] not in sources:
            raise conflict(str(refuse("approve", broadcast_id, row["state"])))
        if await created_by_caller(conn, caller, row):
            await audit.record(
                conn,
                actor=caller.name,
                action="approve_refused",
                subject=subject(broadcast_id),
                request_id=call.request_id,
                role=caller.role,
                reason="two-person rule: the creator cannot approve",
            )
            raise forbidden(
                f"broadcast {broadcast_id} was created by {row['created_by']}: a live broadcast "
                "must be approved by a different person (two-person rule)",
                code="two_person_rule",
            )
        async with conn.transaction():
            approved = await conn.fetchval(queries["approve"], broadcast_id, caller.name)
            if approved is None:
                current = await conn.fetchrow(queries["get_state"], broadcast_id)
                state = current["state"] if current is not None else "gone"
                raise conflict(str(refuse("approve", broadcast_id, state)))
            await audit.record(
                conn,
                actor=caller.name,
                action="approve",
                subject=subject(broadcast_id),
                request_id=call.request_id,
                role=caller.role,
                reason=call.body.get("reason"),
                created_by=row["created_by"],
                recipients=row["recipients"],
            )
        structlog.contextvars.bind_contextvars(broadcast_id=broadcast_id)
        log.info("broadcast_approved", actor=caller.name, created_by=row["created_by"])
        return reply(await store.progress(conn, broadcast_id))


async def cancel(call: Call) -> web.StreamResponse:
    return await _control(call, "cancel")


async def pause(call: Call) -> web.StreamResponse:
    return await _control(call, "pause")


async def resume(call: Call) -> web.StreamResponse:
    return await _control(call, "resume")


async def _control(call: Call, action: Action) -> web.StreamResponse:
    broadcast_id = call.path_id("broadcast_id")
    caller = call.caller
    structlog.contextvars.bind_contextvars(broadcast_id=broadcast_id)
    async with call.services.db.acquire() as conn:
        row = await load(conn, broadcast_id)
        if (
            action == "cancel"
            and not caller.can("cancel")
            and not await created_by_caller(conn, caller, row)
        ):
            await audit.record(
                conn,
                actor=caller.name,
                action="denied",
                subject=subject(broadcast_id),
                request_id=call.request_id,
                role=caller.role,
                operation="cancel",
            )
            raise forbidden(
                f"an {caller.role} token may cancel only the broadcasts its holder created; "
                f"broadcast {broadcast_id} was created by {row['created_by']}: ask an "
                "approver or an admin"
            )
        try:
            async with conn.transaction():
                state = await store.apply_action(conn, broadcast_id, action)
                await audit.record(
                    conn,
                    actor=caller.name,
                    action=action,
                    subject=subject(broadcast_id),
                    request_id=call.request_id,
                    role=caller.role,
                    reason=call.body.get("reason"),
                    previous_state=row["state"],
                )
        except InputError as exc:
            raise conflict(str(exc)) from None
        log.info(f"broadcast_{action}", actor=caller.name, state=state)
        return reply(await store.progress(conn, broadcast_id))


# -- reading ---------------------------------------------------------------------------------


async def get(call: Call) -> web.StreamResponse:
    broadcast_id = call.path_id("broadcast_id")
    async with call.services.db.acquire() as conn:
        return reply(await status_of(conn, broadcast_id))


async def list_recent(call: Call) -> web.StreamResponse:
    limit = call.query.get("limit") or 20
    async with call.services.db.acquire() as conn:
        return reply({"broadcasts": await store.list_recent(conn, limit)})


async def report(call: Call) -> web.StreamResponse:
    broadcast_id = call.path_id("broadcast_id")
    async with call.services.db.acquire() as conn:
        status = await status_of(conn, broadcast_id)
        groups = [dict(r) for r in await conn.fetch(queries["get_groups"], broadcast_id)]
        follow_ups = [dict(r) for r in await conn.fetch(queries["follow_ups"], broadcast_id)]
        trail = await audit.of_subject(conn, f"broadcast:{broadcast_id}")
    return reply({"broadcast": status, "groups": groups, "follow_ups": follow_ups, "audit": trail})
