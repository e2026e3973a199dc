"""CLI commands for the HTTP trigger: `serve`, `tokens create|list|activate|revoke`, `audit`.

`serve` runs the API and a worker in one process, so that approved broadcasts are sent. All of
them need the real database (DATABASE_URL): tokens and broadcasts must outlive the command.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from broadcaster.cli.options import (
    Commands,
    add_command,
    cli_caller,
    command_context,
    emit,
    flag,
    need_database,
    positive_int,
    record_id,
    switch,
)
from broadcaster.commands import tokens
from broadcaster.errors import EXIT_OK, InputError
from broadcaster.settings import Settings


def register(commands: Commands) -> None:
    serve = add_command(
        commands,
        "serve",
        "run the HTTP API and a worker (approved broadcasts are sent from this process)",
        _cmd_serve,
        epilog="examples:\n"
        "  DATABASE_URL=postgresql://... BROADCASTER_SMSC_URL=smpp://... broadcaster serve\n"
        "  broadcaster serve --host 127.0.0.1 --port 8080 --mock-smsc   # a lab, no real SMSC",
    )
    flag(serve, "--host", env="BROADCASTER_API_HOST", default="127.0.0.1", help="address")
    flag(serve, "--port", env="BROADCASTER_API_PORT", type=int, default=8080, help="port (0: any)")
    switch(
        serve,
        "--mock-smsc",
        "BROADCASTER_MOCK_SMSC",
        "start the mock SMSC in-process and send to it (labs and tests only)",
    )

    tokens = add_command(
        commands,
        "tokens",
        "API tokens: create (shown once), list, activate, revoke",
        _cmd_tokens_help,
        epilog="examples:\n"
        "  broadcaster tokens create --role operator --name cellule-crise\n"
        "  broadcaster tokens list --json\n"
        "  broadcaster tokens revoke 3",
    )
    sub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION", required=True)
    create = add_command(
        sub,
        "create",
        "create a token; it is printed once",
        _cmd_tokens_create,
        epilog="example:\n  broadcaster tokens create --role approver --name prefet-astreinte",
    )
    flag(
        create,
        "--role",
        env="BROADCASTER_TOKEN_ROLE",
        required=True,
        choices=["operator", "approver", "admin"],
        help="operator (create, preview), approver (approve, cancel), admin (everything)",
    )
    flag(
        create,
        "--name",
        env="BROADCASTER_TOKEN_NAME",
        required=True,
        help="the token's name (and its holder unless --holder is given)",
    )
    flag(
        create,
        "--holder",
        env="BROADCASTER_TOKEN_HOLDER",
        help="the person who holds it (the two-person rule compares holders); default: --name",
    )
    add_command(
        sub,
        "list",
        "list tokens (never the tokens themselves)",
        _cmd_tokens_list,
        epilog="example:\n  broadcaster tokens list --json",
    )
    revoke = add_command(
        sub,
        "revoke",
        "revoke a token (refused from its next request)",
        _cmd_revoke,
        epilog="example:\n  broadcaster tokens revoke 3",
    )
    revoke.add_argument("token_id", type=record_id)
    activate = add_command(
        sub,
        "activate",
        "activate a token another admin minted for someone else over the API",
        _cmd_activate,
        epilog="example:\n  broadcaster tokens activate 4",
    )
    activate.add_argument("token_id", type=record_id)

    audit = add_command(
        commands,
        "audit",
        "the audit log, newest first (who did what, when, in which request)",
        _cmd_audit,
        epilog="example:\n  broadcaster audit --limit 20 --json",
    )
    flag(
        audit,
        "--limit",
        env="BROADCASTER_AUDIT_LIMIT",
        type=positive_int,
        default=50,
        help="how many",
    )
    flag(
        audit,
        "--before",
        env="BROADCASTER_AUDIT_BEFORE",
        type=record_id,
        help="entries before this id",
    )


# -- serve ------------------------------------------------------------------------------------


async def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.serve import Listening, serve

    def announce(listening: Listening) -> None:
        emit(
            args,
            {
                "listening": listening.url,
                "smscs": list(listening.smscs),
                "mock_smsc": listening.mock_smsc,
            },
            f"listening on {listening.url} (API and worker; SMSCs: {', '.join(listening.smscs)})",
        )
        sys.stdout.flush()

    return await serve(
        settings,
        need_database(settings),
        args.host,
        args.port,
        mock_smsc=args.mock_smsc,
        announce=announce,
    )


# -- tokens -----------------------------------------------------------------------------------


async def _cmd_tokens_help(args: argparse.Namespace, settings: Settings) -> int:
    raise InputError("name an action: broadcaster tokens create|list|activate|revoke (see --help)")


async def _cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    async with command_context(settings) as ctx:
        row, token = await tokens.create_token(ctx, cli_caller(), args.name, args.role, args.holder)
    emit(
        args,
        {**row, "token": token},
        f"token {row['id']} {row['name']} for {row['holder']} ({row['role']}):\n{token}\n"
        "store it now: it is not shown again (only its hash is kept)",
    )
    return EXIT_OK


async def _cmd_tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    async with command_context(settings) as ctx:
        rows = await tokens.list_tokens(ctx, cli_caller())
    lines = [
        f"{'id':>4} {'name':<24} {'holder':<20} {'role':<9} {'prefix':<13} {'state':<8} last used"
    ]
    lines += [
        f"{r['id']:>4} {r['name']:<24} {r['holder']:<20} {r['role']:<9} {r['prefix']:<13} "
        f"{_token_state(r):<8} {r['last_used_at'] or '-'}"
        for r in rows
    ]
    emit(args, {"tokens": rows}, "\n".join(lines))
    return EXIT_OK


def _token_state(row: dict[str, Any]) -> str:
    if row["revoked_at"] is not None:
        return "revoked"
    return "pending" if row["pending"] else "active"


async def _cmd_activate(args: argparse.Namespace, settings: Settings) -> int:
    async with command_context(settings, migrate=False) as ctx:
        row = await tokens.activate_token(ctx, cli_caller(), args.token_id)
    emit(args, row, f"token {row['id']} ({row['name']}, for {row['holder']}) activated")
    return EXIT_OK


async def _cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    async with command_context(settings, migrate=False) as ctx:
        row = await tokens.revoke_token(ctx, cli_caller(), args.token_id)
    emit(args, row, f"token {row['id']} ({row['name']}, {row['role']}) revoked")
    return EXIT_OK


# -- audit ------------------------------------------------------------------------------------


async def _cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit < 1:
        raise InputError("--limit must be at least 1")
    async with command_context(settings, migrate=False) as ctx:
        entries = await tokens.audit_log(ctx, cli_caller(), args.limit, args.before)
    emit(args, {"entries": entries}, _audit_text(entries, args.before))
    return EXIT_OK


def _audit_text(entries: list[dict[str, Any]], before: int | None) -> str:
    """One line an entry; when there is none, whether the log is empty or the filter left none."""
    lines = [
        f"{e['id']:>6} {e['at']} {e['actor']:<20} {e['action']:<16} {e['subject'] or '-'}"
        + (f"  request {e['details']['request_id']}" if "request_id" in e["details"] else "")
        for e in entries
    ]
    if lines:
        return "\n".join(lines)
    if before is None:
        return "the audit log is empty"
    return f"no audit entry before id {before} (the oldest ids are the lowest)"
