"""CLI commands for the HTTP trigger: `serve`, `tokens create|list|revoke`, `audit`.

`serve` runs the API and a worker in one process, so that approved broadcasts are sent. All of
them need the real database (DATABASE_URL): tokens and broadcasts must outlive the command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from typing import Any

import structlog

from broadcaster.cli.options import (
    Commands,
    add_command,
    cli_actor,
    emit,
    flag,
    need_database,
    switch,
)
from broadcaster.errors import EXIT_FAILURE, EXIT_OK, ConfigError, InputError
from broadcaster.settings import Settings, SmscConfig
from broadcaster.store.database import connect, create_pool, ensure_migrated

log = structlog.get_logger(__name__)


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
        "API tokens: create (shown once), list, revoke",
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
        help="who holds it (the two-person rule compares names)",
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
    revoke.add_argument("token_id", type=int)

    audit = add_command(
        commands,
        "audit",
        "the audit log, newest first (who did what, when, in which request)",
        _cmd_audit,
        epilog="example:\n  broadcaster audit --limit 20 --json",
    )
    flag(audit, "--limit", env="BROADCASTER_AUDIT_LIMIT", type=int, default=50, help="how many")
    flag(audit, "--before", env="BROADCASTER_AUDIT_BEFORE", type=int, help="entries before this id")


# -- serve ------------------------------------------------------------------------------------


async def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from aiohttp import web

    from broadcaster.api.app import create_app
    from broadcaster.engine.worker import Worker

    dsn = need_database(settings)
    smscs = settings.smscs
    if not smscs and not args.mock_smsc:
        raise ConfigError(
            "no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]] in the config file, "
            "or pass --mock-smsc for a lab (nothing reaches a phone)"
        )
    await ensure_migrated(dsn, settings.sql_dir)
    mock: Any = None
    if args.mock_smsc:
        from broadcaster.mocksmsc import MockConfig, MockSmsc

        mock = MockSmsc(MockConfig(receipts=True))  # drills measure delivery: receipts on
        mock_port = await mock.start()
        smscs = (SmscConfig(name="mock", port=mock_port, binds=2, window=256),)
        log.warning("mock_smsc_started", port=mock_port, note="messages go to the mock only")
    # Separate pools: a flood of API requests cannot starve the engine of connections.
    worker_db = await create_pool(dsn, min_size=2, max_size=6)
    api_db = await create_pool(dsn, min_size=1, max_size=6)
    worker = Worker(worker_db, smscs)
    from broadcaster.drills.scheduler import DrillScheduler

    # Fires drill schedules, reports drills; records the SMSCs the worker sends through.
    scheduler = DrillScheduler(api_db, settings, smscs=[s.name for s in smscs])
    worker_task = asyncio.create_task(worker.run(), name="worker")
    scheduler_task = asyncio.create_task(scheduler.run(), name="drill-scheduler")
    runner = web.AppRunner(
        create_app(settings, api_db, worker, console=True), access_log=None, handle_signals=False
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    code = EXIT_OK
    try:
        await runner.setup()
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        host, port = runner.addresses[0][:2]
        url = f"http://{host}:{port}"
        emit(
            args,
            {"listening": url, "smscs": [s.name for s in smscs], "mock_smsc": bool(mock)},
            f"listening on {url} (API and worker; SMSCs: {', '.join(s.name for s in smscs)})",
        )
        sys.stdout.flush()
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait(
            {stopping, worker_task, scheduler_task}, return_when=asyncio.FIRST_COMPLETED
        )
        stopping.cancel()
        watched = (
            (worker_task, "worker", "worker_stopped"),
            (scheduler_task, "drill scheduler", "drill_scheduler_died"),
        )
        for task, what, event in watched:
            if task in done:  # neither ends before stop: drills must not stop silently either
                exc = task.exception()
                log.error(
                    event,
                    action=event,
                    task=task.get_name(),
                    error=str(exc) if exc else "returned",
                    exc_info=exc,
                )
                print(f"error: the {what} stopped: {exc or 'it returned'}", file=sys.stderr)
                code = EXIT_FAILURE
    finally:
        await runner.cleanup()
        worker.stop()
        scheduler.stop()
        with contextlib.suppress(Exception):
            await worker_task
        with contextlib.suppress(Exception):
            await scheduler_task
        await api_db.close()
        await worker_db.close()
        if mock is not None:
            await mock.stop()
    return code


# -- tokens -----------------------------------------------------------------------------------


async def _cmd_tokens_help(args: argparse.Namespace, settings: Settings) -> int:
    raise InputError("name an action: broadcaster tokens create|list|revoke (see --help)")


async def _cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.api import audit, auth

    dsn = need_database(settings)
    await ensure_migrated(dsn, settings.sql_dir)
    conn = await connect(dsn)
    try:
        async with conn.transaction():
            row, token = await auth.create_token(conn, args.name, args.role, cli_actor())
            await audit.record(
                conn,
                actor=cli_actor(),
                action="token_create",
                subject=f"token:{row['id']}",
                name=row["name"],
                token_role=row["role"],
                prefix=row["prefix"],
            )
    finally:
        await conn.close()
    emit(
        args,
        {**row, "token": token},
        f"token {row['id']} for {row['name']} ({row['role']}):\n{token}\n"
        "store it now: it is not shown again (only its hash is kept)",
    )
    return EXIT_OK


async def _cmd_tokens_list(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.api import auth

    dsn = need_database(settings)
    await ensure_migrated(dsn, settings.sql_dir)
    conn = await connect(dsn)
    try:
        rows = await auth.list_tokens(conn)
    finally:
        await conn.close()
    lines = [f"{'id':>4} {'name':<24} {'role':<9} {'prefix':<13} {'state':<8} last used"]
    lines += [
        f"{r['id']:>4} {r['name']:<24} {r['role']:<9} {r['prefix']:<13} "
        f"{'active' if r['active'] else 'revoked':<8} {r['last_used_at'] or '-'}"
        for r in rows
    ]
    emit(args, {"tokens": rows}, "\n".join(lines))
    return EXIT_OK


async def _cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.api import audit, auth

    conn = await connect(need_database(settings))
    try:
        async with conn.transaction():
            row = await auth.revoke_token(conn, args.token_id, cli_actor())
            await audit.record(
                conn,
                actor=cli_actor(),
                action="token_revoke",
                subject=f"token:{args.token_id}",
                name=row["name"],
            )
    finally:
        await conn.close()
    emit(args, row, f"token {row['id']} ({row['name']}, {row['role']}) revoked")
    return EXIT_OK


# -- audit ------------------------------------------------------------------------------------


async def _cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.api import audit

    if args.limit < 1:
        raise InputError("--limit must be at least 1")
    conn = await connect(need_database(settings))
    try:
        entries = await audit.recent(conn, args.limit, args.before)
    finally:
        await conn.close()
    lines = [
        f"{e['id']:>6} {e['at']} {e['actor']:<20} {e['action']:<16} {e['subject'] or '-'}"
        + (f"  request {e['details']['request_id']}" if "request_id" in e["details"] else "")
        for e in entries
    ]
    emit(args, {"entries": entries}, "\n".join(lines) or "the audit log is empty")
    return EXIT_OK
