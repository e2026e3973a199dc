"""Tokens and the audit log: who may call, and what they did.

`authenticate` is how the API and the console turn a presented token into a `Caller` (named
for the token's holder: the person); a revoked token is refused from its next request on, a
pending one until it is activated. Creating, activating and revoking tokens and reading the
audit log are admin operations, each audited.

A token belongs to a person (`holder`, by default its name). An admin may mint tokens for
themselves at once; a token for another person is created *pending* and is refused until a
second admin, a different person, activates it: no admin can give themselves a second
identity (and so approve their own broadcast). The CLI, run by an admin at the machine's
console, sets the holder directly.
"""

from __future__ import annotations

from typing import Any

from broadcaster.commands.access import authorize
from broadcaster.commands.context import Context
from broadcaster.domain.caller import Caller, Interface, check_role
from broadcaster.domain.tokens import PREFIX_LENGTH, TOKEN_SHAPE, check_name, new_token
from broadcaster.errors import ConflictError, ForbiddenError, InputError, NotFoundError
from broadcaster.store import audit
from broadcaster.store import tokens as store
from broadcaster.store.database import Conn


class AuthenticationError(InputError):
    """The credentials were missing or wrong: nothing was done."""

    status = 401
    code = "unauthorized"


async def authenticate(
    conn: Conn,
    authorization: str | None,
    interface: Interface = "api",
    request_id: str | None = None,
    origin: str | None = None,
) -> Caller:
    """The caller of an `Authorization: Bearer ...` header, or an AuthenticationError saying
    why not."""
    if not authorization:
        raise AuthenticationError(
            "missing Authorization header: send `Authorization: Bearer <token>`"
        )
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("the Authorization header must be `Bearer <token>`")
    if not TOKEN_SHAPE.match(token):
        raise AuthenticationError("this is not a broadcaster token (bct_...)")
    row = await store.by_hash(conn, token)
    if row is None:
        raise AuthenticationError(
            "unknown token: ask an admin for one (`broadcaster tokens create`)"
        )
    if row["revoked_at"] is not None:
        raise AuthenticationError(
            f"token {token[:PREFIX_LENGTH]}... was revoked: ask an admin for a new one"
        )
    if row["pending"]:
        raise AuthenticationError(
            f"token {token[:PREFIX_LENGTH]}... waits for a second admin to activate it "
            f"(POST /v1/tokens/{row['id']}/activate)"
        )
    await store.touch(conn, row["id"])
    return Caller(
        name=row["holder"],
        role=check_role(row["role"]),
        interface=interface,
        token_id=row["id"],
        request_id=request_id,
        origin=origin,
    )


async def holder(
    conn: Conn,
    token_id: int,
    interface: Interface,
    request_id: str | None = None,
    origin: str | None = None,
) -> tuple[Caller, str] | None:
    """The holder of an active token, by id (a console session keeps only the id), with the
    token's creation time (a session names the token it was opened with); None when the token
    is gone, revoked or pending."""
    row = await store.get(conn, token_id)
    if row is None or row["revoked_at"] is not None or row["pending"]:
        return None
    await store.touch(conn, token_id)
    caller = Caller(
        name=row["holder"],
        role=check_role(row["role"]),
        interface=interface,
        token_id=row["id"],
        request_id=request_id,
        origin=origin,
    )
    return caller, row["created_at"].isoformat()


async def sign_in(
    ctx: Context, token: str, *, remote: str | None, request_id: str | None
) -> tuple[Caller, str]:
    """Open a console session with a token: the holder, and the token's creation time (the
    session keeps only the token's id and this); audited. AuthenticationError when refused."""
    async with ctx.db.acquire() as conn:
        caller = await authenticate(conn, f"Bearer {token}", "console", request_id, remote)
        assert caller.token_id is not None
        row = await store.get(conn, caller.token_id)
        assert row is not None
        await audit.record(
            conn,
            caller,
            "console_sign_in",
            audit.subject_of("token", caller.token_id),
            remote=remote,
        )
    return caller, row["created_at"].isoformat()


async def create_token(
    ctx: Context, caller: Caller, name: str, role: str, holder: str | None = None
) -> tuple[dict[str, Any], str]:
    """A new token named `name` for the person `holder` (default: `name`); (its listing row,
    the token itself: shown only now). For another person than the caller, the token is
    pending until a second admin activates it (`activate_token`); the CLI sets it directly."""
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "createToken")
        checked_role = check_role(role)
        check_name(name)
        person = check_name(holder) if holder is not None else name
        pending = caller.interface != "cli" and not caller.same_person(person)
        token = new_token()
        async with conn.transaction():
            row = await store.insert(
                conn, name, checked_role, token, caller.name, holder=person, pending=pending
            )
            await audit.record(
                conn,
                caller,
                "token_create",
                audit.subject_of("token", row["id"]),
                name=row["name"],
                holder=row["holder"],
                token_role=row["role"],
                prefix=row["prefix"],
                pending=pending,
            )
    return row, token


async def activate_token(
    ctx: Context, caller: Caller, token_id: int, reason: str | None = None
) -> dict[str, Any]:
    """Activate a token an admin minted for someone else: by a second admin, never the one
    who minted it (ForbiddenError, audited); NotFoundError / ConflictError when there is no
    pending token to activate."""
    where = audit.subject_of("token", token_id)
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "activateToken", where)
        existing = await store.get(conn, token_id)
        if existing is None:
            raise NotFoundError(
                f"there is no token {token_id}: see `broadcaster tokens list` or GET /v1/tokens"
            )
        if caller.same_person(existing["created_by"]):
            await audit.record(
                conn,
                caller,
                "token_activate_refused",
                where,
                reason="two-person rule: the admin who minted it cannot activate it",
                holder=existing["holder"],
            )
            raise ForbiddenError(
                f"token {token_id} ({existing['name']}, for {existing['holder']}) was minted by "
                f"{existing['created_by']}: a second admin, a different person, must activate it",
                code="two_person_rule",
            )
        async with conn.transaction():
            row = await store.activate(conn, token_id, caller.name)
            if row is None:
                state = "revoked" if existing["revoked_at"] is not None else "active already"
                raise ConflictError(f"token {token_id} ({existing['name']}) is {state}")
            await audit.record(
                conn,
                caller,
                "token_activate",
                where,
                name=row["name"],
                holder=row["holder"],
                token_role=row["role"],
                minted_by=row["created_by"],
                reason=reason,
            )
    return row


async def list_tokens(ctx: Context, caller: Caller) -> list[dict[str, Any]]:
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "listTokens")
        return await store.listing(conn)


async def revoke_token(
    ctx: Context, caller: Caller, token_id: int, reason: str | None = None
) -> dict[str, Any]:
    """Revoke a token (NotFoundError / ConflictError when there is none to revoke)."""
    where = audit.subject_of("token", token_id)
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "revokeToken", where)
        existing = await store.get(conn, token_id)
        if existing is None:
            raise NotFoundError(
                f"there is no token {token_id}: see `broadcaster tokens list` or GET /v1/tokens"
            )
        async with conn.transaction():
            row = await store.revoke(conn, token_id, caller.name)
            if row is None:
                raise ConflictError(f"token {token_id} ({existing['name']}) was already revoked")
            await audit.record(conn, caller, "token_revoke", where, name=row["name"], reason=reason)
    return row


async def audit_log(
    ctx: Context, caller: Caller, limit: int = 50, before: int | None = None
) -> list[dict[str, Any]]:
    """The audit log, newest first; `before` (an entry id) pages back."""
    if limit < 1:
        raise InputError("the limit must be at least 1")
    async with ctx.db.acquire() as conn:
        await authorize(conn, caller, "listAudit")
        return await audit.recent(conn, limit, before)
