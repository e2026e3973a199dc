"""CLI commands that act on stored broadcasts: status, cancel, pause, resume, list, report, worker.

These need the real database (DATABASE_URL): a throwaway one would hold no broadcast.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from broadcaster.afteraction.build import reason_of_code
from broadcaster.afteraction.html import render_html
from broadcaster.afteraction.text import render_text
from broadcaster.cli.options import (
    Commands,
    add_command,
    cli_caller,
    command_context,
    emit,
    flag,
    need_database,
    output_file,
    positive_int,
    record_id,
    refuse_one_file_twice,
    written_whole,
)
from broadcaster.commands import broadcasts as commands
from broadcaster.commands import reports
from broadcaster.domain.localtime import local, zone_for
from broadcaster.domain.states import FINAL, Action
from broadcaster.engine.runner import LEASE_SECONDS
from broadcaster.errors import EXIT_OK, EXIT_PARTIAL, ConfigError
from broadcaster.settings import Settings
from broadcaster.store.database import create_pool, ensure_migrated


def register(commands: Commands) -> None:
    p = add_command(
        commands,
        "status",
        "show a broadcast's state and derived counts",
        _cmd_status,
        epilog=(
            "examples:\n  broadcaster status 42\n  broadcaster status 42 --json\n\n"
            "Recipients are people, parts are SMS (a long text is several): a recipient is\n"
            "'accepted' once every part of their message was accepted by an SMSC. Delivery\n"
            "comes later, in receipts, to a process with binds up (`send` while it runs; after\n"
            "it, `broadcaster worker` or `serve`): 'awaiting a receipt' counts the accepted\n"
            "parts none has come for yet. Times in the area's zone, UTC in --json.\n"
            "exit codes: 0 every recipient reached, or not over yet; 1 failure (database);\n"
            "2 bad input (no such broadcast); 3 over without reaching every recipient (some\n"
            "failed, or it was cancelled or expired first). The whole after-action report:\n"
            "`broadcaster report ID`."
        ),
    )
    p.add_argument("broadcast_id", type=record_id)
    p = add_command(
        commands,
        "report",
        "the after-action report of a broadcast: areas, texts as sent, timeline, per area / "
        "SMSC / language, who was not reached (times in the area's zone, UTC in JSON)",
        _cmd_report,
        epilog="examples:\n  broadcaster report 42\n  broadcaster report 42 --json\n"
        "  broadcaster report 42 --html report-42.html\n"
        "  broadcaster report 42 --not-reached-csv missed-42.csv   # approvers, admins; audited\n\n"
        "'reached': every part accepted by an SMSC; 'delivered': every part's receipt says\n"
        "DELIVRD. The CSV is the follow-up list (msisdn, departement, commune, language, why):\n"
        "those not reached (refused, or never sent: cancelled, expired) and those reached\n"
        "whose receipt says the message was not delivered. A part still awaiting its receipt\n"
        "is in neither until it comes (a worker or `serve` receives it). Exit codes as\n"
        "`status`.",
    )
    p.add_argument("broadcast_id", type=record_id)
    flag(
        p,
        "--html",
        env="BROADCASTER_REPORT_HTML",
        type=output_file,
        help="also write it as HTML (FILE)",
    )
    p.add_argument(
        "--not-reached-csv",
        type=output_file,
        metavar="FILE",
        help="write the recipients not reached to FILE (phone numbers: role-restricted, audited) "
        "[no environment variable: an exported one exported phone numbers at every report]",
    )
    for action, help in (
        ("cancel", "stop a broadcast: no new part is submitted within a second, on any worker"),
        ("pause", "stop submitting, keep the rest for `resume`"),
        ("resume", "continue a paused broadcast"),
    ):
        p = add_command(
            commands, action, help, _cmd_action, epilog=f"example:\n  broadcaster {action} 42"
        )
        p.add_argument("broadcast_id", type=record_id)
        p.set_defaults(action=action)
    lst = add_command(
        commands,
        "list",
        "recent broadcasts, newest first (LIVE and DRILL marked)",
        _cmd_list,
        epilog="examples:\n  broadcaster list\n  broadcaster list --limit 100 --json",
    )
    flag(
        lst, "--limit", env="BROADCASTER_LIST_LIMIT", type=positive_int, default=20, help="how many"
    )
    worker = add_command(
        commands,
        "worker",
        "run approved broadcasts from the database (run as many as you like, on any host)",
        _cmd_worker,
        epilog="example:\n  DATABASE_URL=postgresql://... BROADCASTER_SMSC_URL=smpp://... "
        "broadcaster worker",
    )
    flag(
        worker,
        "--until-idle",
        env="BROADCASTER_UNTIL_IDLE",
        nargs=0,
        default=False,
        help="exit when no runnable broadcast has work left (it waits for chunks other "
        "workers hold: a dead worker's are taken up when their lease expires)",
    )
    flag(
        worker,
        "--lease-seconds",
        env="BROADCASTER_LEASE_SECONDS",
        type=_positive_seconds,
        default=LEASE_SECONDS,
        help="how long a chunk stays this worker's without renewal (renewed every third of "
        "it): after a crash, how soon another worker takes it up",
    )


def _positive_seconds(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not 1.0 <= seconds <= 3600.0:
        # ArgumentTypeError: argparse shows its sentence (a ValueError's is replaced by
        # "invalid _positive_seconds value").
        raise argparse.ArgumentTypeError(f"{raw!r} is not between 1 and 3600 seconds")
    return seconds


async def _cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    async with command_context(settings, migrate=False) as ctx:
        status, names, zone = await commands.status_for_people(ctx, cli_caller(), args.broadcast_id)
    emit(args, status, _status_text(status, names, zone))
    return _exit_of(status)


async def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """The status counts (JSON: the status fields, as before) and the after-action report."""
    caller = cli_caller()
    with contextlib.ExitStack() as files:
        files.enter_context(_terminate_as_interrupt())
        # Opened first: a path that cannot be written is refused before any export is audited;
        # each file takes its place only once the report is done (a refusal, an unknown id,
        # leaves what was there).
        html = csv_out = None
        refuse_one_file_twice(html=args.html, not_reached_csv=args.not_reached_csv)
        if args.html is not None:
            html = files.enter_context(written_whole(args.html))
        if args.not_reached_csv is not None:
            csv_out = files.enter_context(written_whole(args.not_reached_csv))
        async with command_context(settings, migrate=False) as ctx:
            status = await commands.status(ctx, caller, args.broadcast_id)
            report = await reports.after_action(ctx, caller, args.broadcast_id)
            if csv_out is not None:
                async for line in reports.not_reached_csv(ctx, caller, args.broadcast_id):
                    csv_out.write(line)
        if html is not None:
            html.write(render_html(report))
    written = [f"written: {path}" for path in (args.html, args.not_reached_csv) if path]
    human = "\n".join([_report_human(status, report), *written])
    emit(args, {**status, "after_action": report}, human)
    return _exit_of(status)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (`timeout`, systemd's stop) as Ctrl-C: the command is cancelled, so its files
    not yet written whole are removed (the default action killed it, leaving a hidden partial
    list of phone numbers), and it exits 130."""
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is None or threading.current_thread() is not threading.main_thread():
        yield  # (signals reach the main thread only: a caller in another thread keeps them)
        return
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        yield
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def _exit_of(status: dict[str, Any]) -> int:
    """`status` and `report` alike: EXIT_PARTIAL once the broadcast is over with a recipient
    not reached (one failed, or chunks never sent: cancelled or expired first), else EXIT_OK.
    (Not by the recipients planned: numbers that joined or left the index since change that
    count, not who was reached.)"""
    if status["state"] not in FINAL:
        return EXIT_OK
    unsent = status["chunks_done"] < status["chunks_total"]
    return EXIT_PARTIAL if status["failed"] or unsent else EXIT_OK


def _status_text(s: dict[str, Any], names: dict[str, str], zone: str) -> str:
    """`status` for a person: the areas by name, times in their zone (`--json`: UTC)."""
    marker = "LIVE" if s["kind"] == "live" else "DRILL (exercise)"

    def at(iso: str | None) -> str:
        return local(datetime.fromisoformat(iso) if iso else None, zone)

    areas = ", ".join(f"{name} ({code})" for code, name in sorted(names.items()))
    lines = [
        f"broadcast {s['broadcast_id']} [{marker}] {s['template']}: {s['state']}"
        + (f", waiting for {s['waiting_for']}" if s.get("waiting_for") else ""),
        f"  areas: {areas or '-'}",
        f"  {s['recipients']:,} recipients in {s['parts']:,} SMS parts, "
        f"chunks {s['chunks_done']}/{s['chunks_total']}",
        f"  recipients: {s['accepted']:,} accepted (every part), {s['failed']:,} failed; "
        f"parts possibly sent twice: {s['possibly_sent_twice']:,} "
        f"({s['resent_in_flight']:,} resent after a loss or a timeout, "
        f"{s['duplicates']:,} recorded twice)",
        f"  created {at(s['created_at'])} by {s['created_by']}"
        + (f", approved by {s['approved_by']}" if s.get("approved_by") else ""),
        f"  started {at(s.get('started_at'))}, finished {at(s.get('finished_at'))}, "
        f"expires {at(s['expires_at'])}",
    ]
    for status, n in s["failed_by_status"].items():
        lines.append(f"  parts failed with {reason_of_code(status)} ({status}): {n:,}")
    for stat, r in s["receipts"].items():
        lines.append(f"  receipts {stat}: {r['count']:,} parts (p50 {r['p50_s']:.1f} s)")
    lines.extend(_receipt_watch_lines(s))
    unattributed = s.get("receipts_unattributed") or {}
    if any(unattributed.values()):
        lines.append(
            f"  receipts naming no part of any broadcast since it started: "
            f"{unattributed['unmatched']:,} unmatched, {unattributed['ambiguous']:,} ambiguous "
            "(not counted as delivered)"
        )
    return "\n".join(lines)


def _report_human(status: dict[str, Any], report: dict[str, Any]) -> str:
    """The after-action report, then, as `status` says it, the parts still awaiting a receipt:
    accepted is not delivered."""
    return "\n".join([render_text(report), *_receipt_watch_lines(status)])


def _receipt_watch_lines(s: dict[str, Any]) -> list[str]:
    """Receipts still awaited and whether anyone is bound to get them; SMSC faults."""
    lines: list[str] = []
    awaited = s.get("receipts_awaited", 0)
    if awaited:
        bound = s.get("receivers_bound", 0)
        who = (
            f"{bound} bind(s) up to receive them"
            if bound
            else "no process is bound to receive them: their delivery stays unknown until a "
            "worker with a transceiver or receiver bind runs"
        )
        lines.append(f"  {awaited:,} parts still await a receipt; {who}")
    for problem in s.get("smsc_problems") or ():
        lines.append(f"  SMSC problem: {problem}")
    return lines


async def _cmd_action(args: argparse.Namespace, settings: Settings) -> int:
    action: Action = args.action
    async with command_context(settings, migrate=False, behind_ok=True) as ctx:
        status = await commands.control(ctx, cli_caller(), args.broadcast_id, action)
    payload = {
        "broadcast_id": args.broadcast_id,
        "state": status["state"],
        "waiting_for": status.get("waiting_for"),
    }
    emit(args, payload, _action_text(payload))
    return EXIT_OK


def _action_text(s: dict[str, Any]) -> str:
    """The new state, and what it waits for: a resumed broadcast with no worker running sends
    nothing, and the person who typed `resume` must be told so, not left to think it goes."""
    waiting = f", waiting for {s['waiting_for']}" if s.get("waiting_for") else ""
    return f"broadcast {s['broadcast_id']}: {s['state']}{waiting}"


async def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async with command_context(settings, migrate=False) as ctx:
        rows = await commands.list_recent(ctx, cli_caller(), args.limit)
    emit(args, {"broadcasts": rows}, _list_text(rows, settings.display_timezone))
    return EXIT_OK


def _list_text(rows: list[dict[str, Any]], configured: str) -> str:
    """One line per broadcast: where (its départements) and when (created, in their zone)."""
    lines = [
        f"{'id':>6} {'kind':<5} {'state':<17} {'template':<10} {'recipients':>11} "
        f"{'created':<40} areas"
    ]
    for r in rows:
        departements = list(r.get("departements") or ())
        created = local(datetime.fromisoformat(r["created_at"]), zone_for(departements, configured))
        where = ", ".join(departements[:8]) + (
            f" +{len(departements) - 8}" if len(departements) > 8 else ""
        )
        lines.append(
            f"{r['id']:>6} {'LIVE' if r['kind'] == 'live' else 'DRILL':<5} {r['state']:<17} "
            f"{r['template']:<10} {r['recipients']:>11,} {created:<40} {where or '-'}"
        )
    return "\n".join(lines)


async def _cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.engine.worker import Worker

    dsn = need_database(settings)
    if not settings.smscs:
        raise ConfigError("no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]]")
    await ensure_migrated(dsn, settings.sql_dir)
    db = await create_pool(dsn, min_size=2, max_size=6)
    worker = Worker(db, settings.smscs, lease_seconds=args.lease_seconds)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, worker.stop)
    try:
        runs = await worker.run(until_idle=args.until_idle)
    finally:
        await db.close()
    emit(
        args,
        {"runs": [{"broadcast_id": r.broadcast_id, "state": r.state} for r in runs]},
        f"worker stopped after {len(runs)} run(s)",
    )
    return EXIT_OK
