"""Ingest a CAP 1.2 alert (parsed by `broadcaster.cap`): Alert and Update create a broadcast,
Cancel stops the referenced broadcasts and their follow-ups.

A message is identified by (sender, identifier): a retried message returns the first answer;
the same identifier with different content is refused (409). Test, Draft and System messages
are validated and previewed against the real areas and templates, and nothing is stored.
Alert and Update need the permission to create broadcasts; an Update also the right to cancel
the broadcast it follows while that one is unfinished (it stops it: the same check as a direct
cancel); Cancel the permission to cancel (or to have created every broadcast it cancels).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import structlog

from broadcaster import cap
from broadcaster.commands.access import authorize
from broadcaster.commands.broadcasts import (
    authorize_stopping,
    needs_approval,
    store_planned,
    subject,
)
from broadcaster.commands.context import Context
from broadcaster.commands.planning import make_plan, plan_as_json
from broadcaster.domain.caller import Caller
from broadcaster.errors import ConflictError, InputError
from broadcaster.store import audit
from broadcaster.store import broadcasts as store
from broadcaster.store import cap as store_cap
from broadcaster.store.database import Conn
from broadcaster.text.templates import TemplateCatalogue

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class CapOutcome:
    """What was done with a CAP message: `created` is the new broadcast (None: nothing was
    created, e.g. validated only, cancelled, or replayed)."""

    body: dict[str, Any]
    created: int | None = None


async def ingest(ctx: Context, caller: Caller, message: cap.CapMessage) -> CapOutcome:
    structlog.contextvars.bind_contextvars(
        cap_identifier=message.identifier, cap_sender=message.sender
    )
    if message.msg_type == "Cancel":
        return await _cancel(ctx, caller, message)
    return await _alert(ctx, caller, message)


def _base(message: cap.CapMessage) -> dict[str, Any]:
    return {
        "identifier": message.identifier,
        "sender": message.sender,
        "sent": message.sent,
        "status": message.status,
        "msg_type": message.msg_type,
        "audience": (
            "public"
            if message.status == "Actual" and message.msg_type != "Cancel"
            else "test group"
            if message.status == "Exercise" and message.msg_type != "Cancel"
            else "none"
        ),
    }


def _where(message: cap.CapMessage) -> str:
    return f"cap:{message.sender},{message.identifier}"


async def _plan(
    ctx: Context,
    conn: Conn,
    caller: Caller,
    message: cap.CapMessage,
    checked_parent: int | None = None,
) -> tuple[Any, Any, list[str], int | None]:
    """(request, plan, warnings, parent) of an Alert or Update: the `to_request` + `make_plan`
    step both the validated-only and the acted-upon paths take. `checked_parent`: the parent
    the caller's right to cancel was checked on (`_check_update`)."""
    scenario = TemplateCatalogue(ctx.settings.templates_dir).scenario(message.template)
    parent_id = await _parent(conn, message) if message.msg_type == "Update" else None
    if parent_id != checked_parent:
        raise ConflictError(
            f"the alert this Update refers to changed while it was checked (broadcast "
            f"{parent_id}, not {checked_parent}): send it again"
        )
    request, warnings = cap.to_request(
        message,
        languages=scenario.languages,
        created_by=caller.name,
        default_language=ctx.settings.default_language,
        parent_id=parent_id,
    )
    plan = await make_plan(conn, ctx.settings, request)
    return request, plan, [*message.warnings, *warnings], parent_id


async def _check_update(conn: Conn, caller: Caller, message: cap.CapMessage) -> int | None:
    """An Update stops the broadcast it follows: the caller needs the right to cancel it, as
    for a direct cancel (ForbiddenError, audited, outside any transaction that would undo the
    audit entry). The parent checked (None for an Alert)."""
    if message.msg_type != "Update":
        return None
    parent_id = await _parent(conn, message)
    await authorize_stopping(conn, caller, parent_id, via="postCap")
    return parent_id


async def _alert(ctx: Context, caller: Caller, message: cap.CapMessage) -> CapOutcome:
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "postCap", _where(message))
        checked = await _check_update(conn, caller, message)
        if not message.sends:
            request, plan, warnings, parent_id = await _plan(ctx, conn, caller, message, checked)
            await _record(conn, caller, message, "cap_validated", None, parent_id=parent_id)
            return CapOutcome(
                {
                    **_base(message),
                    "action": f"validated only (status {message.status}): nothing was stored "
                    "or sent" + (f"; it would update broadcast {parent_id}" if parent_id else ""),
                    "approval_required": needs_approval(
                        ctx.settings, request.kind, plan.recipients
                    ),
                    "preview": plan_as_json(plan, ctx.parts_per_second),
                    "warnings": warnings,
                }
            )
        async with conn.transaction():
            replay = await _replay(conn, message)
            if replay is None:
                request, plan, warnings, parent_id = await _plan(
                    ctx, conn, caller, message, checked
                )
                broadcast_id, required = await store_planned(
                    conn, ctx.settings, caller, request, plan
                )
                result = {
                    **_base(message),
                    "action": "created" if parent_id is None else f"updated {parent_id}",
                    "broadcast_id": broadcast_id,
                    "parent_id": parent_id,
                    "approval_required": required,
                    "warnings": warnings,
                }
                await _store_message(conn, caller, message, broadcast_id, result)
                await _record(
                    conn,
                    caller,
                    message,
                    "cap_update" if parent_id else "cap_alert",
                    broadcast_id,
                    parent_id=parent_id,
                    recipients=plan.recipients,
                    approval_required=required,
                )
        if replay is not None:
            body = {**replay, "replayed": True}
            if replay.get("broadcast_id") is not None:
                body["broadcast"] = await store.progress(conn, int(replay["broadcast_id"]))
            return CapOutcome(body)
        status = await store.progress(conn, broadcast_id)
    return CapOutcome(
        {
            **result,
            "replayed": False,
            "broadcast": status,
            "preview": plan_as_json(plan, ctx.parts_per_second),
        },
        created=broadcast_id,
    )


async def _cancel(ctx: Context, caller: Caller, message: cap.CapMessage) -> CapOutcome:
    async with ctx.db.acquire() as conn:
        if not message.sends:
            thread = await _thread(conn, message)
            await _check_cancel(conn, caller, message, thread)
            ids = [int(r["id"]) for r in thread]
            await _record(conn, caller, message, "cap_validated", None, would_cancel=ids)
            return CapOutcome(
                {
                    **_base(message),
                    "action": f"validated only (status {message.status}): nothing was "
                    f"cancelled; it would cancel {ids}",
                    "cancelled": [],
                    "warnings": list(message.warnings),
                }
            )
        refusal: InputError | None = None
        async with conn.transaction():
            replay = await _replay(conn, message)
            if replay is None:
                thread = await _thread(conn, message)
                try:
                    _check_exercise_cancel(message, thread)
                    others = _not_theirs(caller, thread)
                except InputError as exc:
                    refusal = exc
                else:
                    if others is None:
                        result = await _cancel_thread(conn, caller, message, thread)
        if refusal is not None:
            raise refusal
        if replay is None and others is not None:
            await _denied(conn, caller, message, others)
    if replay is not None:
        return CapOutcome({**replay, "replayed": True})
    log.warning("cap_cancelled", cancelled=result["cancelled"], actor=caller.name)
    return CapOutcome({**result, "replayed": False})


def _check_exercise_cancel(message: cap.CapMessage, thread: list[Any]) -> None:
    if message.status == "Exercise" and any(r["kind"] != "drill" for r in thread):
        raise InputError(
            "an Exercise Cancel may only cancel exercises and it references a live broadcast: "
            "send the Cancel with status Actual"
        )


def _not_theirs(caller: Caller, thread: list[Any]) -> list[int] | None:
    """The broadcasts of the thread this caller may not cancel (None: they may cancel all)."""
    if caller.can("cancel"):
        return None
    others = [
        r["id"]
        for r in thread
        if not (
            caller.same_person(r["holder"], r["token_id"]) or caller.same_person(r["created_by"])
        )
    ]
    return others or None


async def _check_cancel(
    conn: Conn, caller: Caller, message: cap.CapMessage, thread: list[Any]
) -> None:
    _check_exercise_cancel(message, thread)
    others = _not_theirs(caller, thread)
    if others is not None:
        await _denied(conn, caller, message, others)


async def _denied(conn: Conn, caller: Caller, message: cap.CapMessage, others: list[int]) -> None:
    """Refuse (and audit) a Cancel of broadcasts others created."""
    await authorize(
        conn,
        caller,
        "cancelCap",
        _where(message),
        owner=f"others (broadcasts {others})",
    )


async def _cancel_thread(
    conn: Conn, caller: Caller, message: cap.CapMessage, thread: list[Any]
) -> dict[str, Any]:
    """Cancel every broadcast of the thread still active; store and audit the message."""
    ids = [int(r["id"]) for r in thread]
    cancelled = [i for i in ids if await store.apply(conn, i, "cancel")]
    result = {
        **_base(message),
        "action": "cancelled",
        "cancelled": cancelled,
        "referenced": ids,
        "warnings": list(message.warnings),
    }
    await _store_message(conn, caller, message, None, result)
    await _record(conn, caller, message, "cap_cancel", None, cancelled=cancelled)
    for i in cancelled:
        await audit.record(
            conn,
            caller,
            "cancel",
            subject(i),
            reason=f"CAP Cancel {message.sender},{message.identifier}",
        )
    return result


async def _replay(conn: Conn, message: cap.CapMessage) -> dict[str, Any] | None:
    """The answer given to this message before, under a lock held until the transaction ends."""
    await store_cap.lock(conn, message.sender, message.identifier)
    row = await store_cap.get(conn, message.sender, message.identifier)
    if row is None:
        return None
    if row["body_hash"] != message.body_hash:
        raise ConflictError(
            f"CAP message {message.sender},{message.identifier} was already received with a "
            "different content: a new message needs a new identifier",
            code="cap_identifier_reused",
        )
    result = row["result"]
    out: dict[str, Any] = json.loads(result) if isinstance(result, str) else dict(result)
    return out


async def _parent(conn: Conn, message: cap.CapMessage) -> int:
    """The broadcast an Update follows: the newest one created by a referenced message."""
    rows = await _referenced(conn, message)
    return int(rows[0]["broadcast_id"])


async def _referenced(conn: Conn, message: cap.CapMessage) -> list[Any]:
    refs = message.references
    rows = await store_cap.referenced_broadcasts(conn, [(r.sender, r.identifier) for r in refs])
    if not rows:
        named = " ".join(f"{r.sender},{r.identifier}" for r in refs)
        raise InputError(
            f"the <references> ({named}) name no CAP alert this system broadcast: "
            "check the sender and identifier of the original alert",
            code="unknown_reference",
        )
    return rows


async def _thread(conn: Conn, message: cap.CapMessage) -> list[Any]:
    rows = await _referenced(conn, message)
    return await store_cap.thread(conn, [int(r["broadcast_id"]) for r in rows])


async def _store_message(
    conn: Conn,
    caller: Caller,
    message: cap.CapMessage,
    broadcast_id: int | None,
    result: dict[str, Any],
) -> None:
    await store_cap.insert(
        conn,
        sender=message.sender,
        identifier=message.identifier,
        sent=message.sent,
        status=message.status,
        msg_type=message.msg_type,
        body_hash=message.body_hash,
        token_id=caller.token_id,
        broadcast_id=broadcast_id,
        result=result,
    )


async def _record(
    conn: Conn,
    caller: Caller,
    message: cap.CapMessage,
    action: str,
    broadcast_id: int | None,
    **details: Any,
) -> None:
    await audit.record(
        conn,
        caller,
        action,
        subject(broadcast_id) or _where(message),
        cap_status=message.status,
        cap_msg_type=message.msg_type,
        cap_identifier=message.identifier,
        cap_sender=message.sender,
        **details,
    )
