"""Who may do what: every operation's permission, checked once, refusals audited once.

The operation names are the API's operation ids (the OpenAPI document and the route table take
their roles from here); the console and the CLI name the same operations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from broadcaster.domain.caller import Caller, Permission, roles_with
from broadcaster.errors import ForbiddenError
from broadcaster.store import audit
from broadcaster.store.database import Conn


@dataclass(frozen=True)
class Operation:
    name: str
    permission: Permission
    creator_may: bool = False
    """The broadcast's creator may do it even without `permission` (cancel: stopping is always
    the safe direction)."""


def _table(*operations: Operation) -> dict[str, Operation]:
    return {op.name: op for op in operations}


OPERATIONS: Final[dict[str, Operation]] = _table(
    Operation("listBroadcasts", "read"),
    Operation("createBroadcast", "create"),
    Operation("getBroadcast", "read"),
    Operation("getReport", "read"),
    # The phone numbers a broadcast did not reach, for follow-up by other means (personal data).
    Operation("exportNotReached", "approve"),
    Operation("approveBroadcast", "approve"),
    Operation("cancelBroadcast", "cancel", creator_may=True),
    Operation("pauseBroadcast", "control"),
    Operation("resumeBroadcast", "control"),
    Operation("updateBroadcast", "create"),
    Operation("allClearBroadcast", "create"),
    Operation("postCap", "create"),
    Operation("cancelCap", "cancel", creator_may=True),
    Operation("listTokens", "tokens"),
    Operation("createToken", "tokens"),
    Operation("activateToken", "tokens"),
    Operation("revokeToken", "tokens"),
    Operation("listAudit", "audit"),
    Operation("listDrillSchedules", "read"),
    Operation("createDrillSchedule", "create"),
    Operation("getDrillSchedule", "read"),
    Operation("deleteDrillSchedule", "control"),
    Operation("enableDrillSchedule", "control"),
    Operation("disableDrillSchedule", "control"),
    Operation("runDrillSchedule", "create"),
    # No endpoint of its own: setting a webhook on a schedule or a run (its URL is a secret and
    # a destination the server will connect to).
    Operation("setDrillWebhook", "webhooks"),
    Operation("listDrills", "read"),
    Operation("getDrillReport", "read"),
)


def allowed(caller: Caller, operation: str) -> bool:
    """Whether the caller's role allows the operation (a creator-may operation may still be
    allowed on the caller's own broadcasts: see `authorize`)."""
    return caller.can(OPERATIONS[operation].permission)


def may_try(caller: Caller, operation: str) -> bool:
    """Whether offering the operation to the caller makes sense (a button on a page): their role
    allows it, or it is one a creator may do to their own broadcast. The command decides."""
    return allowed(caller, operation) or OPERATIONS[operation].creator_may


def roles_for(operation: str) -> list[str]:
    return list(roles_with(OPERATIONS[operation].permission))


async def authorize(
    conn: Conn,
    caller: Caller,
    operation: str,
    subject: str | None = None,
    *,
    creator: bool = False,
    owner: str | None = None,
    via: str | None = None,
) -> None:
    """Return if the caller may do `operation` (`creator`: they created what it acts on, which
    `owner` created); else record the refusal in the audit log and raise ForbiddenError saying
    who may. `via`: the operation that needs this one (an update needs the right to cancel the
    broadcast it stops), named in the audit entry and the message."""
    op = OPERATIONS[operation]
    if caller.can(op.permission) or (op.creator_may and creator):
        return
    extra = {} if via is None else {"via": via}
    await audit.record(conn, caller, "denied", subject, operation=operation, **extra)
    if op.creator_may:
        message = (
            f"an {caller.role} token may {op.permission} only what its holder created; "
            f"{subject or 'this'} was created by {owner or 'someone else'}: ask an approver or "
            "an admin"
        )
    else:
        message = (
            f"an {caller.role} token may not {operation}: it needs the {op.permission!r} "
            f"permission (roles: {', '.join(roles_for(operation))})"
        )
    if via is not None:
        message += f" ({via} stops {subject or 'it'}, so it needs the right to {op.permission} it)"
    raise ForbiddenError(message)
