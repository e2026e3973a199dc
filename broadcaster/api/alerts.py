"""`POST /v1/cap`: CAP 1.2 alerts from the national alerting platform (see `api.cap` for the
mapping). Alert and Update need a token allowed to create broadcasts; Cancel one allowed to
cancel (or the holder who created every broadcast it cancels).

A message is identified by (sender, identifier): a retried message returns the first answer;
the same identifier with different content is refused (409). Test, Draft and System messages
are validated and previewed against the real areas and templates, and nothing is stored.
"""

from __future__ import annotations

import json
from typing import Any

import structlog
from aiohttp import web

from broadcaster.api import audit, cap
from broadcaster.api.broadcasts import needs_approval, store_planned, subject
from broadcaster.api.context import Call, reply
from broadcaster.api.errors import ApiError, conflict, forbidden, unprocessable
from broadcaster.operations import make_plan, plan_as_json
from broadcaster.store import broadcasts as store
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.text.templates import TemplateCatalogue

log = structlog.get_logger(__name__)


async def post(call: Call) -> web.StreamResponse:
    message = cap.parse(call.raw)
    structlog.contextvars.bind_contextvars(
        cap_identifier=message.identifier, cap_sender=message.sender
    )
    if message.msg_type == "Cancel":
        return await _cancel(call, message)
    return await _alert(call, message)


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


async def _alert(call: Call, message: cap.CapMessage) -> web.StreamResponse:
    caller = call.caller
    services = call.services
    settings = services.settings
    if not caller.can("create"):
        async with services.db.acquire() as conn:
            await _denied(conn, call, message)
        raise forbidden(
            f"an {caller.role} token may not send CAP {message.msg_type} messages: "
            "use an operator or admin token"
        )
    scenario = TemplateCatalogue(settings.templates_dir).scenario(message.template)
    async with services.db.acquire() as conn:
        if not message.sends:
            parent_id = await _parent(conn, message) if message.msg_type == "Update" else None
            request, warnings = cap.to_request(
                message,
                languages=scenario.languages,
                created_by=caller.name,
                default_language=settings.default_language,
                parent_id=parent_id,
            )
            plan = await make_plan(conn, settings, request)
            await _record(conn, call, message, "cap_validated", None, parent_id=parent_id)
            return reply(
                {
                    **_base(message),
                    "action": f"validated only (status {message.status}): nothing was stored "
                    "or sent" + (f"; it would update broadcast {parent_id}" if parent_id else ""),
                    "approval_required": needs_approval(settings, request.kind, plan.recipients),
                    "preview": plan_as_json(plan, services.parts_per_second),
                    "warnings": [*message.warnings, *warnings],
                }
            )
        async with conn.transaction():
            replay = await _replay(conn, message)
            if replay is None:
                parent_id = await _parent(conn, message) if message.msg_type == "Update" else None
                request, warnings = cap.to_request(
                    message,
                    languages=scenario.languages,
                    created_by=caller.name,
                    default_language=settings.default_language,
                    parent_id=parent_id,
                )
                plan = await make_plan(conn, settings, request)
                broadcast_id, required = await store_planned(conn, call, request, plan)
                result = {
                    **_base(message),
                    "action": "created" if parent_id is None else f"updated {parent_id}",
                    "broadcast_id": broadcast_id,
                    "parent_id": parent_id,
                    "approval_required": required,
                    "warnings": [*message.warnings, *warnings],
                }
                await _store_message(conn, call, message, broadcast_id, result)
                await _record(
                    conn,
                    call,
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
            return reply(body)
        status = await store.progress(conn, broadcast_id)
    return reply(
        {
            **result,
            "replayed": False,
            "broadcast": status,
            "preview": plan_as_json(plan, services.parts_per_second),
        },
        status=201,
        headers={"Location": f"/v1/broadcasts/{broadcast_id}"},
    )


async def _cancel(call: Call, message: cap.CapMessage) -> web.StreamResponse:
    caller = call.caller
    refusal: ApiError | None = None
    replay: dict[str, Any] | None = None
    async with call.services.db.acquire() as conn:
        if not message.sends:
            thread = await _thread(conn, message)
            refusal = _cancel_refusal(call, message, thread)
            if refusal is None:
                ids = [int(r["id"]) for r in thread]
                await _record(conn, call, message, "cap_validated", None, would_cancel=ids)
                return reply(
                    {
                        **_base(message),
                        "action": f"validated only (status {message.status}): nothing was "
                        f"cancelled; it would cancel {ids}",
                        "cancelled": [],
                        "warnings": list(message.warnings),
                    }
                )
        else:
            async with conn.transaction():
                replay = await _replay(conn, message)
                if replay is None:
                    thread = await _thread(conn, message)
                    refusal = _cancel_refusal(call, message, thread)
                    if refusal is None:
                        result = await _cancel_thread(conn, call, message, thread)
        if refusal is not None:
            if refusal.status == 403:
                await _denied(conn, call, message)
            raise refusal
    if replay is not None:
        return reply({**replay, "replayed": True})
    log.warning("cap_cancelled", cancelled=result["cancelled"], actor=caller.name)
    return reply({**result, "replayed": False})


def _cancel_refusal(call: Call, message: cap.CapMessage, thread: list[Any]) -> ApiError | None:
    """Why this caller may not cancel these broadcasts with this message (None: they may)."""
    if message.status == "Exercise" and any(r["kind"] != "drill" for r in thread):
        return unprocessable(
            "an Exercise Cancel may only cancel exercises and it references a live broadcast: "
            "send the Cancel with status Actual"
        )
    caller = call.caller
    if caller.can("cancel"):
        return None
    others = [r["id"] for r in thread if not caller.same_person(r["created_by"], r["token_id"])]
    if not others:
        return None
    return forbidden(
        f"an {caller.role} token may cancel only what its holder created; broadcasts "
        f"{others} were created by others: ask an approver or an admin"
    )


async def _cancel_thread(
    conn: Conn, call: Call, message: cap.CapMessage, thread: list[Any]
) -> dict[str, Any]:
    """Cancel every broadcast of the thread still active; store and audit the message."""
    caller = call.caller
    ids = [int(r["id"]) for r in thread]
    cancelled = [i for i in ids if await store.stop_if_active(conn, i)]
    result = {
        **_base(message),
        "action": "cancelled",
        "cancelled": cancelled,
        "referenced": ids,
        "warnings": list(message.warnings),
    }
    await _store_message(conn, call, message, None, result)
    await _record(conn, call, message, "cap_cancel", None, cancelled=cancelled)
    for i in cancelled:
        await audit.record(
            conn,
            actor=caller.name,
            action="cancel",
            subject=subject(i),
            request_id=call.request_id,
            role=caller.role,
            reason=f"CAP Cancel {message.sender},{message.identifier}",
        )
    return result


async def _replay(conn: Conn, message: cap.CapMessage) -> dict[str, Any] | None:
    """The answer given to this message before, under a lock held until the transaction ends."""
    await conn.execute(queries["lock_cap_message"], message.sender, message.identifier)
    row = await conn.fetchrow(queries["get_cap_message"], message.sender, message.identifier)
    if row is None:
        return None
    if row["body_hash"] != message.body_hash:
        raise conflict(
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
    rows = await conn.fetch(
        queries["cap_referenced_broadcasts"],
        [r.sender for r in refs],
        [r.identifier for r in refs],
    )
    if not rows:
        named = " ".join(f"{r.sender},{r.identifier}" for r in refs)
        raise unprocessable(
            f"the <references> ({named}) name no CAP alert this system broadcast: "
            "check the sender and identifier of the original alert",
            code="unknown_reference",
        )
    return list(rows)


async def _thread(conn: Conn, message: cap.CapMessage) -> list[Any]:
    rows = await _referenced(conn, message)
    return list(
        await conn.fetch(queries["broadcast_thread"], [int(r["broadcast_id"]) for r in rows])
    )


async def _store_message(
    conn: Conn,
    call: Call,
    message: cap.CapMessage,
    broadcast_id: int | None,
    result: dict[str, Any],
) -> None:
    await conn.execute(
        queries["insert_cap_message"],
        message.sender,
        message.identifier,
        message.sent,
        message.status,
        message.msg_type,
        message.body_hash,
        call.caller.token_id,
        broadcast_id,
        json.dumps(result),
    )


async def _record(
    conn: Conn,
    call: Call,
    message: cap.CapMessage,
    action: str,
    broadcast_id: int | None,
    **details: Any,
) -> None:
    await audit.record(
        conn,
        actor=call.caller.name,
        action=action,
        subject=subject(broadcast_id) or f"cap:{message.sender},{message.identifier}",
        request_id=call.request_id,
        role=call.caller.role,
        cap_status=message.status,
        cap_msg_type=message.msg_type,
        cap_identifier=message.identifier,
        cap_sender=message.sender,
        **details,
    )


async def _denied(conn: Conn, call: Call, message: cap.CapMessage) -> None:
    await _record(conn, call, message, "denied", None, operation=f"cap_{message.msg_type}")
