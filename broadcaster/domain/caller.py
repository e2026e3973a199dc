"""Who calls a command: a person (or a system actor) with a role, through an interface (pure).

Roles (the authorisation matrix, `PERMISSIONS`):
- operator: read, create (broadcasts, previews, updates/all-clears, CAP alerts);
- approver: read, approve, cancel, pause/resume;
- admin: all of these, plus tokens, the audit log and drill webhooks (secrets: only admins set
  them and see them, masked).

The creator of a broadcast may also cancel it (stopping is always the safe direction: Hawaii
2018 took 38 minutes to correct); approving needs a *different* person (two-person rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

from broadcaster.errors import InputError

Role = Literal["operator", "approver", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
Permission = Literal[
    "read", "create", "approve", "cancel", "control", "audit", "tokens", "webhooks"
]
Interface = Literal["api", "console", "cli", "cap", "scheduler", "engine"]
"""How the caller reached the command: recorded with every audit entry."""

PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    "operator": frozenset({"read", "create"}),
    "approver": frozenset({"read", "approve", "cancel", "control"}),
    "admin": frozenset(get_args(Permission)),
}


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise InputError(f"role {role!r} is not one of {', '.join(ROLES)}")


def roles_with(permission: Permission) -> list[Role]:
    """The roles that hold `permission`, in the matrix's order."""
    return [r for r in ROLES if permission in PERMISSIONS[r]]


@dataclass(frozen=True)
class Caller:
    """The person (or system actor) a command acts for.

    `name` is who acts: the person holding the token (its `holder`, whatever the token's own
    name), `cli:<login>`, `scheduler`; `token_id` the API token they used, if any;
    `request_id` ties the audit entry to the request's log lines; `origin` is where the call
    came from (`login@host` for the CLI, the client's address over HTTP).
    """

    name: str
    role: Role
    interface: Interface = "api"
    token_id: int | None = None
    request_id: str | None = None
    origin: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]

    def same_person(self, other_name: str | None, other_token_id: int | None = None) -> bool:
        """True when `other` is this person: the same token, or the same holder (any case): any
        token of a person is that person, for the two-person rule."""
        if other_token_id is not None and other_token_id == self.token_id:
            return True
        return other_name is not None and other_name.casefold() == self.name.casefold()


SCHEDULER: Final = Caller(name="scheduler", role="admin", interface="scheduler")
"""The actor of scheduled drills (a name no API token may take)."""
ENGINE: Final = Caller(name="engine", role="admin", interface="engine")
"""The actor of what the engine decides by itself (a drill refused for reaching the public)."""
