"""Broadcast use cases: preview, create (update, all-clear), approve, pause/resume/cancel, and
the reads (status, report, list) — for every interface, with a `Caller`.

Creation plans first (`planning.make_plan`): an unknown area, template or variable, or a text
over the parts limit, is refused before anything is stored. A live broadcast above the approval
threshold waits for a second person (the two-person rule); the CLI's `send`, where the operator
types the number of recipients at their own terminal, stores what they confirmed
(`create_planned`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

import asyncpg
import structlog

from broadcaster.commands.access import OPERATIONS, allowed, authorize
from broadcaster.commands.context import Context
from broadcaster.commands.planning import (
    create_broadcast,
    initial_state,
    make_plan,
)
from broadcaster.domain.caller import Caller
from broadcaster.domain.localtime import zone_of_groups
from broadcaster.domain.requests import DEFAULT_EXPIRY, BroadcastRequest
from broadcaster.domain.states import FINAL, Action, applies, refuse
from broadcaster.errors import ConflictError, ForbiddenError, InputError
from broadcaster.planning import Plan
from broadcaster.settings import Settings
from broadcaster.store import audit
from broadcaster.store import broadcasts as store
from broadcaster.store import reports as store_reports
from broadcaster.store.database import Conn

log = structlog.get_logger(__name__)

FollowUpKind = Literal["update", "all_clear"]
CreateAction = Literal["create", "update", "all_clear"]
OPERATION_OF: dict[str, str] = {
    "create": "createBroadcast",
    "update": "updateBroadcast",
    "all_clear": "allClearBroadcast",
    "approve": "approveBroadcast",
    "cancel": "cancelBroadcast",
    "pause": "pauseBroadcast",
    "resume": "resumeBroadcast",
}
CONTROL_ACTIONS: frozenset[Action] = frozenset({"pause", "resume", "cancel"})


def subject(broadcast_id: int | None) -> str | None:
    return audit.subject_of("broadcast", broadcast_id)


def needs_approval(settings: Settings, kind: str, recipients: int) -> bool:
    """The two-person rule: live broadcasts above the threshold wait for a second person."""
    return kind == "live" and recipients > settings.api_approval_threshold


@dataclass(frozen=True)
class Preview:
    plan: Plan
    approval_required: bool


@dataclass(frozen=True)
class Idempotency:
    """A client's key for "create once": the same key and request return the first answer."""

    key: str
    fingerprint: str
    """What makes two requests the same (method, path, canonical body)."""


@dataclass(frozen=True)
class Created:
    broadcast_id: int
    approval_required: bool
    status: dict[str, Any]
    plan: Plan | None = None
    """None for a replay (the first request's plan is not kept)."""
    replayed: bool = False


@dataclass(frozen=True)
class FollowUp:
    """An update or all-clear of a broadcast, as an interface received it."""

    template: str
    variables: dict[str, str] = field(default_factory=dict)
    areas: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    gsm_safe: bool = False
    expires_in: timedelta = DEFAULT_EXPIRY
    reached_only: bool = False
    allow_language_fallback: bool = False


# -- create ----------------------------------------------------------------------------------


async def preview(
    ctx: Context, caller: Caller, request: BroadcastRequest, *, action: CreateAction = "create"
) -> Preview:
    """Plan without storing (a dry run); audited as `<action>_preview`."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, OPERATION_OF[action], subject(request.parent_id))
        await authorize_follow_up(conn, caller, request, OPERATION_OF[action])
        plan = await make_plan(conn, ctx.settings, request)
        await audit.record(
            conn,
            caller,
            f"{action}_preview",
            subject(request.parent_id),
            template=request.template,
            areas=list(request.areas),
            recipients=plan.recipients,
        )
    return Preview(plan, needs_approval(ctx.settings, request.kind, plan.recipients))


async def create(
    ctx: Context,
    caller: Caller,
    request: BroadcastRequest,
    *,
    action: CreateAction = "create",
    idempotency: Idempotency | None = None,
) -> Created:
    """Plan, then store (pending approval when the two-person rule says so) and audit, in one
    transaction; with an idempotency key, a retried request returns the first answer."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, OPERATION_OF[action], subject(request.parent_id))
        await authorize_follow_up(conn, caller, request, OPERATION_OF[action])
        replayed: int | None = None
        async with conn.transaction():
            if idempotency is not None:
                replayed = await _claim_key(conn, caller, idempotency)
            if replayed is None:
                plan = await make_plan(conn, ctx.settings, request)
                broadcast_id, required = await _store_and_audit(
                    conn,
                    ctx.settings,
                    caller,
                    request,
                    plan,
                    action=action,
                    idempotency_key=idempotency.key if idempotency else None,
                )
                if idempotency is not None:
                    assert caller.token_id is not None
                    await store.bind_idempotency_key(
                        conn, caller.token_id, idempotency.key, broadcast_id
                    )
        if replayed is not None:
            status = await store.progress(conn, replayed)
            log.info("idempotent_replay", broadcast_id=replayed)
            return Created(
                replayed, status["state"] == "pending_approval", status, None, replayed=True
            )
        status = await store.progress(conn, broadcast_id)
    return Created(broadcast_id, required, status, plan)


async def create_planned(
    ctx: Context, caller: Caller, request: BroadcastRequest, plan: Plan
) -> int:
    """Store the plan a person has just confirmed at their own terminal (the CLI's `send`,
    where typing the number of recipients is the confirmation): approved at once, audited."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "createBroadcast", subject(request.parent_id))
        await authorize_follow_up(conn, caller, request, "createBroadcast")
        async with conn.transaction():
            broadcast_id, _required = await _store_and_audit(
                conn, ctx.settings, caller, request, plan, action="create", confirmed=True
            )
    return broadcast_id


async def _store_and_audit(
    conn: Conn,
    settings: Settings,
    caller: Caller,
    request: BroadcastRequest,
    plan: Plan,
    *,
    action: CreateAction,
    confirmed: bool = False,
    idempotency_key: str | None = None,
) -> tuple[int, bool]:
    broadcast_id, required = await store_planned(
        conn, settings, caller, request, plan, confirmed=confirmed
    )
    await audit.record(
        conn,
        caller,
        action,
        subject(broadcast_id),
        kind=request.kind,
        template=request.template,
        areas=list(request.areas),
        recipients=plan.recipients,
        parts=plan.parts,
        parent_id=request.parent_id,
        approval_required=required,
        idempotency_key=idempotency_key,
    )
    return broadcast_id, required


async def store_planned(
    conn: Conn,
    settings: Settings,
    caller: Caller,
    request: BroadcastRequest,
    plan: Plan,
    *,
    confirmed: bool = False,
) -> tuple[int, bool]:
    """Store a planned broadcast (pending approval if the rule says so); (id, approval needed).

    Call inside a transaction: the origin row commits with the broadcast.
    """
    required = not confirmed and needs_approval(settings, request.kind, plan.recipients)
    broadcast_id = await create_broadcast(
        conn, settings, request, plan, state=initial_state(required), caller=caller
    )
    if caller.token_id is not None:
        await store.record_origin(conn, broadcast_id, caller.token_id, caller.request_id or "")
    structlog.contextvars.bind_contextvars(broadcast_id=broadcast_id)
    log.info(
        "broadcast_created",
        kind=request.kind,
        template=request.template,
        recipients=plan.recipients,
        parts=plan.parts,
        approval_required=required,
        parent_id=request.parent_id,
        actor=caller.name,
        interface=caller.interface,
    )
    return broadcast_id, required


async def _claim_key(conn: Conn, caller: Caller, idempotency: Idempotency) -> int | None:
    """None when the key is new (now taken); else the broadcast it created before."""
    if caller.token_id is None:
        raise InputError("an idempotency key needs an API token")
    key = idempotency.key
    if await store.claim_idempotency_key(conn, caller.token_id, key, idempotency.fingerprint):
        return None
    row = await store.idempotency_key(conn, caller.token_id, key)
    if row is None or row["broadcast_id"] is None:
        raise ConflictError(
            f"a request with Idempotency-Key {key!r} is still being processed: retry",
            code="idempotency_in_progress",
        )
    if row["request_hash"] != idempotency.fingerprint:
        raise InputError(
            f"Idempotency-Key {key!r} was already used for a different request "
            f"(broadcast {row['broadcast_id']}): use a new key for a new broadcast",
            code="idempotency_mismatch",
        )
    return int(row["broadcast_id"])


async def follow_up_request(
    ctx: Context, caller: Caller, parent_id: int, follow: FollowUp
) -> BroadcastRequest:
    """The request of an update or all-clear: the parent's kind and test-group restriction,
    its areas unless others are named."""
    async with ctx.db.acquire() as conn:
        parent = await store.get_broadcast(conn, parent_id)
    target = _json(parent["target"])
    return BroadcastRequest(
        areas=follow.areas,
        exclude=follow.exclude,
        template=follow.template,
        variables=follow.variables,
        kind=parent["kind"],
        test_group_only=bool(target.get("test_group_only", False)),
        gsm_safe=follow.gsm_safe,
        expires_in=follow.expires_in,
        created_by=caller.name,
        parent_id=parent_id,
        reached_only=follow.reached_only,
        allow_language_fallback=follow.allow_language_fallback,
    )


def _json(value: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(value) if isinstance(value, str) else dict(value)
    return out


# -- approve and control ---------------------------------------------------------------------


async def authorize_follow_up(
    conn: Conn, caller: Caller, request: BroadcastRequest, operation: str
) -> None:
    """A follow-up (update, all-clear, CAP Update) stops the broadcast it follows: it needs the
    right to cancel that one, checked as a direct cancel is (ForbiddenError, audited)."""
    if request.parent_id is not None:
        await authorize_stopping(conn, caller, request.parent_id, via=operation)


async def authorize_stopping(conn: Conn, caller: Caller, parent_id: int, *, via: str) -> None:
    """The right to cancel the broadcast a follow-up stops. A finished one (a final state, which
    it never leaves) is stopped by nobody: any operator may send its all-clear."""
    row = await store.get_broadcast(conn, parent_id)
    if row["state"] not in FINAL:
        await authorize_cancel(conn, caller, parent_id, via=via)


async def authorize_cancel(
    conn: Conn, caller: Caller, broadcast_id: int, *, via: str | None = None
) -> Any:
    """The right to cancel a broadcast (a role that may cancel, or its creator); its row.
    NotFoundError when there is none; ForbiddenError (audited) when the caller may not."""
    row = await store.get_broadcast(conn, broadcast_id)
    creator = allowed(caller, "cancelBroadcast") or await created_it(conn, caller, row)
    await authorize(
        conn,
        caller,
        "cancelBroadcast",
        subject(broadcast_id),
        creator=creator,
        owner=row["created_by"],
        via=via,
    )
    return row


async def created_it(conn: Conn, caller: Caller, row: Any) -> bool:
    """Whether the caller is the person who created the broadcast: the same token, any token
    of the same holder (the two-person rule binds people, not tokens), or the same name."""
    found = await store.origin(conn, row["id"])
    if found is not None and caller.same_person(found[1], found[0]):
        return True
    return caller.same_person(row["created_by"])


async def approve(
    ctx: Context, caller: Caller, broadcast_id: int, reason: str | None = None
) -> dict[str, Any]:
    """The second person's approval: never by the creator (two-person rule)."""
    where = subject(broadcast_id)
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "approveBroadcast", where)
        await store.expire_overdue(conn)
        row = await store.get_broadcast(conn, broadcast_id)
        if not applies("approve", row["state"]):
            raise refuse("approve", broadcast_id, row["state"])
        if await created_it(conn, caller, row):
            await audit.record(
                conn,
                caller,
                "approve_refused",
                where,
                reason="two-person rule: the creator cannot approve",
            )
            raise ForbiddenError(
                f"broadcast {broadcast_id} was created by {row['created_by']}: a live broadcast "
                "must be approved by a different person (two-person rule)",
                code="two_person_rule",
            )
        async with conn.transaction():
            await store.apply_action(conn, broadcast_id, "approve", approved_by=caller.name)
            await audit.record(
                conn,
                caller,
                "approve",
                where,
                reason=reason,
                created_by=row["created_by"],
                recipients=row["recipients"],
            )
        structlog.contextvars.bind_contextvars(broadcast_id=broadcast_id)
        log.info("broadcast_approved", actor=caller.name, created_by=row["created_by"])
        return await store.progress(conn, broadcast_id)


async def control(
    ctx: Context, caller: Caller, broadcast_id: int, action: Action, reason: str | None = None
) -> dict[str, Any]:
    """Pause, resume or cancel (the creator may cancel their own broadcast)."""
    assert action in CONTROL_ACTIONS, action
    where = subject(broadcast_id)
    structlog.contextvars.bind_contextvars(broadcast_id=broadcast_id)
    operation = OPERATION_OF[action]
    async with ctx.db.acquire() as conn:
        if allowed(caller, operation) or not OPERATIONS[operation].creator_may:
            await authorize(conn, caller, operation, where)
            row = await store.get_broadcast(conn, broadcast_id)
        else:  # may still be theirs to cancel
            row = await store.get_broadcast(conn, broadcast_id)
            creator = await created_it(conn, caller, row)
            await authorize(
                conn, caller, operation, where, creator=creator, owner=row["created_by"]
            )
        state = await act(conn, caller, broadcast_id, action, reason=reason, previous=row["state"])
        log.info(f"broadcast_{action}", actor=caller.name, state=state)
        try:
            return await store.progress(conn, broadcast_id)
        except (asyncpg.UndefinedColumnError, asyncpg.UndefinedTableError) as exc:
            # Done, on a database behind this version (`db migrate` not run yet): the action
            # stands; the progress it cannot read is not a reason to say it failed.
            log.warning("progress_unread_schema_behind", error=str(exc))
            return {"broadcast_id": broadcast_id, "state": state, "waiting_for": None}


async def act(
    conn: Conn,
    caller: Caller,
    broadcast_id: int,
    action: Action,
    *,
    reason: str | None = None,
    previous: str | None = None,
) -> str:
    """A state change and its audit entry, together or not at all; the new state (ConflictError
    when the action does not apply to the current state)."""
    async with conn.transaction():
        state = await store.apply_action(conn, broadcast_id, action)
        await audit.record(
            conn, caller, action, subject(broadcast_id), reason=reason, previous_state=previous
        )
    return state


# -- reading ---------------------------------------------------------------------------------


async def status(ctx: Context, caller: Caller, broadcast_id: int) -> dict[str, Any]:
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getBroadcast", subject(broadcast_id))
        return await store.progress(conn, broadcast_id)


async def status_for_people(
    ctx: Context, caller: Caller, broadcast_id: int
) -> tuple[dict[str, Any], dict[str, str], str]:
    """`status`, with what a person reading it needs beside: the areas by name ({département:
    name}) and the zone to read its times in (that of most of its recipients, or the
    configured one)."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getBroadcast", subject(broadcast_id))
        status = await store.progress(conn, broadcast_id)
        groups = [dict(r) for r in await store.groups(conn, broadcast_id)]
        names = await store_reports.area_names(conn, broadcast_id)
    zone = zone_of_groups(groups, ctx.settings.display_timezone)
    return status, names, zone


async def report(ctx: Context, caller: Caller, broadcast_id: int) -> dict[str, Any]:
    """Status, texts, follow-ups and the audit trail."""
    where = subject(broadcast_id)
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getReport", where)
        status = await store.progress(conn, broadcast_id)
        groups = [dict(r) for r in await store.groups(conn, broadcast_id)]
        follow_ups = await store.follow_ups(conn, broadcast_id)
        assert where is not None
        trail = await audit.of_subject(conn, where)
    return {"broadcast": status, "groups": groups, "follow_ups": follow_ups, "audit": trail}


async def list_recent(ctx: Context, caller: Caller, limit: int = 20) -> list[dict[str, Any]]:
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "listBroadcasts")
        return await store.list_recent(conn, limit)


async def approval_queue(ctx: Context, caller: Caller, limit: int = 100) -> list[dict[str, Any]]:
    """What awaits this caller's approval, oldest first: broadcasts waiting for a second
    person that they may approve and did not create (none for a holder who may not approve;
    no refusal is audited for merely looking)."""
    if not allowed(caller, "approveBroadcast"):
        return []
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "listBroadcasts")
        waiting = await store.awaiting_approval(conn, limit)
        return [row for row in waiting if not await created_it(conn, caller, row)]


async def may_watch(ctx: Context, caller: Caller, broadcast_id: int) -> str:
    """The broadcast's state, if the caller may follow it (as `status`, 403/404 otherwise): a
    live page checks this once, then reads through a shared reader (`watched`)."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getBroadcast", subject(broadcast_id))
        state = await store.get_state(conn, broadcast_id)
    if state is None:
        raise store.no_such_broadcast(broadcast_id)
    return state


async def watched(conn: Conn, broadcast_id: int) -> dict[str, Any]:
    """The status `status` reads, on a connection of the reader's own (one per watched
    broadcast, shared by every page open on it): whoever reads it was authorised by
    `may_watch`."""
    return await store.progress(conn, broadcast_id)


async def relation(ctx: Context, caller: Caller, broadcast_id: int) -> tuple[str, bool]:
    """(kind, whether the caller created it): what a page needs to show the right buttons."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "getBroadcast", subject(broadcast_id))
        row = await store.get_broadcast(conn, broadcast_id)
        return row["kind"], await created_it(conn, caller, row)
