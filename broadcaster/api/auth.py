"""Bearer tokens and roles: who may do what through the API.

A token is `bct_` followed by 43 URL-safe characters (32 random bytes). Only its SHA-256 is
stored, with its first 12 characters (`prefix`) to recognise it in listings; the token itself is
shown once, when it is created. A revoked token is refused from the next request on.

Roles (the authorisation matrix, `PERMISSIONS`):
- operator: read, create (broadcasts, previews, updates/all-clears, CAP alerts);
- approver: read, approve, cancel, pause/resume;
- admin: all of these, plus tokens and the audit log.

The creator of a broadcast may also cancel it (stopping is always the safe direction: Hawaii
2018 took 38 minutes to correct); approving needs a *different* person (`two_person_rule`).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal, get_args

from broadcaster.api.errors import unauthorized
from broadcaster.errors import InputError
from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

Role = Literal["operator", "approver", "admin"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)
Permission = Literal["read", "create", "approve", "cancel", "control", "audit", "tokens"]

PERMISSIONS: Final[dict[Role, frozenset[Permission]]] = {
    "operator": frozenset({"read", "create"}),
    "approver": frozenset({"read", "approve", "cancel", "control"}),
    "admin": frozenset(get_args(Permission)),
}

TOKEN_MARK: Final = "bct_"  # noqa: S105 - the visible mark of our tokens, not a secret
TOKEN_SHAPE: Final = re.compile(r"^bct_[A-Za-z0-9_-]{43}$")
PREFIX_LENGTH: Final = 12
NAME_SHAPE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
RESERVED_NAMES: Final = frozenset({"cli", "system", "scheduler", "anonymous"})
"""Actors the rest of the system writes as created_by / audit actor: no token may pose as one."""


@dataclass(frozen=True)
class Caller:
    """The holder of a valid token, as the handlers see them."""

    token_id: int
    name: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in PERMISSIONS[self.role]

    def same_person(self, other_name: str | None, other_token_id: int | None = None) -> bool:
        """True when `other` is this holder: the same token, or the same name (any case)."""
        if other_token_id is not None and other_token_id == self.token_id:
            return True
        return other_name is not None and other_name.casefold() == self.name.casefold()


def new_token() -> str:
    return TOKEN_MARK + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_SHAPE.match(name):
        raise InputError(
            f"token name {name!r} is invalid: 1-64 characters, letters, digits and . _ @ -, "
            "starting with a letter or digit (name the person or system that holds it)"
        )
    if name.casefold() in RESERVED_NAMES:
        raise InputError(
            f"token name {name!r} is reserved ({', '.join(sorted(RESERVED_NAMES))}): "
            "name the person or system that holds it"
        )
    return name


def check_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise InputError(f"role {role!r} is not one of {', '.join(ROLES)}")


async def create_token(
    conn: Conn, name: str, role: str, created_by: str
) -> tuple[dict[str, Any], str]:
    """Store a new token's hash; return its listing row and the token (shown only now)."""
    checked_role = check_role(role)
    check_name(name)
    token = new_token()
    row = await conn.fetchrow(
        queries["insert_token"],
        name,
        checked_role,
        token[:PREFIX_LENGTH],
        hash_token(token),
        created_by,
    )
    assert row is not None
    return token_json(row), token


async def list_tokens(conn: Conn) -> list[dict[str, Any]]:
    return [token_json(r) for r in await conn.fetch(queries["list_tokens"])]


async def revoke_token(conn: Conn, token_id: int, revoked_by: str) -> dict[str, Any]:
    """Revoke a token; InputError if there is none with that id or it is already revoked."""
    row = await conn.fetchrow(queries["revoke_token"], token_id, revoked_by)
    if row is not None:
        return token_json(row)
    existing = await conn.fetchrow(queries["get_token"], token_id)
    if existing is None:
        raise InputError(f"there is no token {token_id}: see `broadcaster tokens list`")
    raise InputError(f"token {token_id} ({existing['name']}) was already revoked")


async def authenticate(conn: Conn, authorization: str | None) -> Caller:
    """The caller of an `Authorization: Bearer ...` header, or a 401 ApiError saying why not."""
    if not authorization:
        raise unauthorized("missing Authorization header: send `Authorization: Bearer <token>`")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("the Authorization header must be `Bearer <token>`")
    if not TOKEN_SHAPE.match(token):
        raise unauthorized("this is not a broadcaster token (bct_...)")
    row = await conn.fetchrow(queries["token_by_hash"], hash_token(token))
    if row is None:
        raise unauthorized("unknown token: ask an admin for one (`broadcaster tokens create`)")
    if row["revoked_at"] is not None:
        raise unauthorized(
            f"token {token[:PREFIX_LENGTH]}... was revoked: ask an admin for a new one"
        )
    await conn.execute(queries["touch_token"], row["id"])
    return Caller(token_id=row["id"], name=row["name"], role=check_role(row["role"]))


def token_json(row: Any) -> dict[str, Any]:
    """A token's listing (never its hash)."""
    out: dict[str, Any] = {}
    for key in (
        "id",
        "name",
        "role",
        "prefix",
        "created_by",
        "created_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ):
        try:
            value = row[key]
        except KeyError:
            continue
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    out["active"] = out.get("revoked_at") is None
    return out
