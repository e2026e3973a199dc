"""CLI commands for drills: `drill schedule add|list|show|enable|disable|remove`, `drill run`,
`drill runs`, `drill report`.

Scheduled drills are fired by `broadcaster serve`; `drill run` sends one now from this process
(or, with --queue, leaves it to a running server) and reports it. All of them need the real
database (DATABASE_URL): schedules and reports must outlive the command.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from broadcaster.cli.options import (
    Commands,
    add_command,
    cli_caller,
    command_context,
    duration,
    emit,
    flag,
    multi,
    output_file,
    positive_int,
    record_id,
    switch,
)
from broadcaster.errors import (
    EXIT_NOT_YET,
    EXIT_OK,
    EXIT_PARTIAL,
    BroadcasterError,
    ConfigError,
    InputError,
)
from broadcaster.settings import Settings

if TYPE_CHECKING:
    from broadcaster.drills.report import DrillReport

EXAMPLES_SCHEDULE = """\
examples:
  broadcaster drill schedule add monthly-paris --cron '0 12 * * 1#1' --tz Europe/Paris \\
      --area dep:75 --area dep:92 --webhook https://alerts.example/drills
  broadcaster drill schedule list --json
  broadcaster drill schedule show monthly-paris
  broadcaster drill schedule disable monthly-paris
  broadcaster drill schedule remove monthly-paris

The cron expression has 5 fields (minute hour day-of-month month day-of-week) and is read in
the --tz time zone: '0 12 * * 1#1' is the first Monday of the month at 12:00, summer and winter.
`broadcaster serve` fires the schedules. A fire time missed while no server ran is run when one
comes back within the grace period (--grace, default 1h, at least 1 min or twice
BROADCASTER_DRILL_POLL_S); later, it is recorded as missed and raises the alarm. A drill sends
only to the test group, with the exercise marker.
"""

EXAMPLES_RUN = """\
examples:
  broadcaster drill run monthly-paris            # the schedule's drill, now, from here
  broadcaster drill run --area dep:75 --wait 2m  # an ad-hoc drill, receipts awaited 2 min
  broadcaster drill run monthly-paris --queue    # let the running `broadcaster serve` send it

Exit codes: 0 the drill passed its thresholds, 3 it failed them (the alarm was raised),
2 bad input (nothing sent), 1 failure.
"""


def register(commands: Commands) -> None:
    drill = add_command(
        commands,
        "drill",
        "scheduled drills: schedules, run one now, runs, reports",
        _cmd_help,
        epilog=EXAMPLES_SCHEDULE + "\n" + EXAMPLES_RUN,
    )
    sub = drill.add_subparsers(dest="drill_command", metavar="ACTION", required=True)

    schedule = add_command(
        sub, "schedule", "manage drill schedules", _cmd_help, epilog=EXAMPLES_SCHEDULE
    )
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    add = add_command(
        actions,
        "add",
        "add a drill schedule (checked: cron, time zone, areas, drill template)",
        _cmd_add,
        epilog=EXAMPLES_SCHEDULE,
    )
    add.add_argument("name", help="a unique name, e.g. monthly-paris")
    flag(
        add,
        "--cron",
        env="BROADCASTER_DRILL_CRON",
        required=True,
        help="5-field cron expression, e.g. '0 12 * * 1#1' (first Monday, 12:00)",
    )
    flag(
        add,
        "--tz",
        env="BROADCASTER_DRILL_TZ",
        default="Europe/Paris",
        help="IANA time zone the expression is read in (default Europe/Paris)",
    )
    _drill_options(add)
    flag(
        add,
        "--grace",
        env="BROADCASTER_DRILL_GRACE",
        type=duration,
        default=timedelta(hours=1),
        help="a fire time missed while no server ran is still run this late (default 1h; "
        "at least 1m, or twice BROADCASTER_DRILL_POLL_S)",
    )
    switch(add, "--disabled", "BROADCASTER_DRILL_DISABLED", "store it disabled")

    add_command(
        actions,
        "list",
        "list drill schedules and their next fire times",
        _cmd_list,
        epilog="examples:\n  broadcaster drill schedule list\n"
        "  broadcaster drill schedule list --json",
    )
    for name, help, handler in (
        ("show", "a schedule, its next fire times and its recent runs", _cmd_show),
        ("enable", "enable a schedule (fire times while disabled are not missed)", _cmd_enable),
        ("disable", "disable a schedule", _cmd_disable),
        ("remove", "remove a schedule (its past runs and reports stay)", _cmd_remove),
    ):
        p = add_command(
            actions,
            name,
            help,
            handler,
            epilog=f"example:\n  broadcaster drill schedule {name} monthly-paris",
        )
        p.add_argument("schedule", metavar="SCHEDULE", help="schedule id or name")

    run = add_command(
        sub,
        "run",
        "run a drill now (a schedule's, or ad-hoc areas), wait for receipts, report",
        _cmd_run,
        epilog=EXAMPLES_RUN,
    )
    run.add_argument(
        "schedule", metavar="SCHEDULE", nargs="?", help="schedule id or name (or use --area)"
    )
    _drill_options(run, for_run=True)
    switch(
        run,
        "--queue",
        "BROADCASTER_DRILL_QUEUE",
        "only create it: the worker of a running `broadcaster serve` sends it and reports",
    )
    flag(
        run,
        "--wait",
        env="BROADCASTER_DRILL_WAIT",
        type=duration,
        help="longest wait for receipts after sending (default: the delivery window)",
    )
    _html_options(run)

    runs = add_command(
        sub,
        "runs",
        "recent drill runs (started, missed, not started) and their verdicts",
        _cmd_runs,
        epilog="example:\n  broadcaster drill runs --schedule monthly-paris --json",
    )
    flag(
        runs,
        "--limit",
        env="BROADCASTER_DRILL_LIMIT",
        type=positive_int,
        default=20,
        help="how many",
    )
    flag(runs, "--schedule", env="BROADCASTER_DRILL_SCHEDULE", help="only this schedule's runs")

    report = add_command(
        sub,
        "report",
        "a drill's report: table here, HTML page with a chart of deliveries per SMSC",
        _cmd_report,
        epilog="examples:\n  broadcaster drill report 42\n"
        "  broadcaster drill report 42 --html /var/www/drills/42.html --json\n\n"
        "Exit codes: 0 the drill passed its thresholds, 3 it failed them, 4 not known yet (read\n"
        "while its delivery window is open, only deliveries short: read it again after).",
    )
    report.add_argument("drill_id", type=record_id, metavar="ID", help="the drill's broadcast id")
    _html_options(report)


def _drill_options(p: argparse.ArgumentParser, for_run: bool = False) -> None:
    multi(
        p,
        "--area",
        env="BROADCASTER_DRILL_AREA",
        help="area of the drill: dep:75, region:11, commune:75056, cell:ID (repeatable)",
    )
    multi(p, "--exclude", env="BROADCASTER_DRILL_EXCLUDE", help="area to leave out")
    flag(
        p,
        "--template",
        env="BROADCASTER_DRILL_TEMPLATE",
        default=None if for_run else "drill",
        help="a drill template, with the exercise marker (default drill)",
    )
    multi(p, "--var", env="BROADCASTER_DRILL_VAR", help="template variable name=value")
    flag(
        p,
        "--expires-in",
        env="BROADCASTER_DRILL_EXPIRES_IN",
        type=duration,
        default=None,
        help="hard expiry of each drill broadcast (default 1h)",
    )
    flag(
        p,
        "--min-delivered",
        env="BROADCASTER_DRILL_MIN_DELIVERED",
        type=float,
        help="share of parts that must be delivered in the window (default 0.99)",
    )
    flag(
        p,
        "--within",
        env="BROADCASTER_DRILL_WITHIN",
        type=duration,
        help="the delivery window (default 5m)",
    )
    flag(
        p,
        "--max-accept-p95",
        env="BROADCASTER_DRILL_MAX_ACCEPT_P95",
        type=duration,
        help="highest p95 time for an SMSC to accept a part (default 5s)",
    )
    flag(
        p,
        "--webhook",
        env="BROADCASTER_DRILL_WEBHOOK",
        help="URL POSTed the JSON report when the drill fails "
        "(else BROADCASTER_DRILL_WEBHOOK_URL, if set)",
    )


def _html_options(p: argparse.ArgumentParser) -> None:
    flag(
        p,
        "--html",
        env="BROADCASTER_DRILL_HTML",
        type=output_file,
        help="where to write the HTML report (default: drill-ID.html here)",
    )
    switch(p, "--no-html", "BROADCASTER_DRILL_NO_HTML", "write no HTML page")


# -- helpers ----------------------------------------------------------------------------------


def _overrides(args: argparse.Namespace) -> Any:
    """What the flags ask of a drill, over a schedule's settings when one is named."""
    from broadcaster.domain.requests import parse_variables
    from broadcaster.drills.schedules import DrillOverrides

    return DrillOverrides(
        areas=tuple(args.area),
        exclude=tuple(args.exclude),
        template=args.template,
        variables=parse_variables(args.var),
        expires_in=args.expires_in,
        thresholds=_threshold_flags(args),
        webhook_url=getattr(args, "webhook", None),
    )


def _threshold_flags(args: argparse.Namespace) -> dict[str, float]:
    values: dict[str, float] = {}
    if args.min_delivered is not None:
        values["min_delivered_ratio"] = args.min_delivered
    if args.within is not None:
        values["delivery_within_seconds"] = args.within.total_seconds()
    if args.max_accept_p95 is not None:
        values["max_accept_p95_seconds"] = args.max_accept_p95.total_seconds()
    return values


def _schedule_text(s: dict[str, Any]) -> str:
    state = "enabled" if s["enabled"] else "disabled"
    lines = [
        f"schedule {s['id']} {s['name']} ({state}): {s['cron']} in {s['timezone']} - "
        f"{s['description']}",
        f"  areas {', '.join(s['areas'])}; template {s['template']}; thresholds "
        f"{s['thresholds']['min_delivered_ratio']:.1%} delivered within "
        f"{s['thresholds']['delivery_within_seconds']:g} s; grace {s['grace_seconds']} s",
    ]
    if s["upcoming"]:
        lines.append(f"  next: {', '.join(s['upcoming'])}")
    if s.get("webhook_url"):
        lines.append(f"  webhook: {s['webhook_url']}")
    return "\n".join(lines)


def _runs_text(runs: list[dict[str, Any]]) -> str:
    if not runs:
        return "no drill run yet"
    lines = [f"{'run':>5} {'schedule':<20} {'due':<25} {'outcome':<11} {'drill':>6} verdict"]
    for r in runs:
        verdict = r["verdict"] or ("-" if r["outcome"] != "started" else "(waiting)")
        if r["alarm"]:
            verdict += f" ALARM ({r['alarm']})"
        lines.append(
            f"{r['id']:>5} {(r['schedule_name'] or '(manual)')[:20]:<20} "
            f"{r['due_at'] or '-':<25} {r['outcome']:<11} {r['broadcast_id'] or '-':>6} "
            f"{verdict}" + (f"  {r['reason']}" if r["reason"] and r["outcome"] != "started" else "")
        )
    return "\n".join(lines)


def _write_html(args: argparse.Namespace, report: Any) -> str | None:
    from broadcaster.drills.html import render_report_html

    if args.no_html:
        return None
    path: Path = args.html or Path(f"drill-{report.info.drill_id}.html")
    try:
        path.write_text(render_report_html(report), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the HTML report to {path}: {exc.strerror}") from exc
    return str(path)


# -- commands ---------------------------------------------------------------------------------


async def _cmd_help(args: argparse.Namespace, settings: Settings) -> int:
    raise InputError("name an action: see `broadcaster drill --help`")


async def _cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands import drills
    from broadcaster.drills.report import Thresholds
    from broadcaster.drills.schedules import ScheduleRequest

    caller = cli_caller()
    spec, _thresholds, _webhook = _overrides(args).resolve(None)
    request = ScheduleRequest(
        name=args.name,
        cron=args.cron,
        timezone=args.tz,
        drill=spec,
        thresholds=Thresholds.from_json(_threshold_flags(args)),
        webhook_url=args.webhook,
        grace=args.grace,
        enabled=not args.disabled,
        created_by=caller.name,
    )
    async with command_context(settings) as ctx:
        shown, warnings = await drills.create_schedule(ctx, caller, request)
    emit(
        args,
        {"schedule": shown, "warnings": warnings},
        "added " + _schedule_text(shown) + "".join(f"\nwarning: {w}" for w in warnings),
    )
    return EXIT_OK


async def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands import drills

    async with command_context(settings) as ctx:
        rows = await drills.list_schedules(ctx, cli_caller())
    text = "\n".join(_schedule_text(s) for s in rows) or "no drill schedule"
    emit(args, {"schedules": rows}, text)
    return EXIT_OK


async def _cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands import drills

    async with command_context(settings) as ctx:
        shown = await drills.get_schedule(ctx, cli_caller(), args.schedule)
    emit(args, shown, _schedule_text(shown) + "\n" + _runs_text(shown["runs"]))
    return EXIT_OK


async def _cmd_enable(args: argparse.Namespace, settings: Settings) -> int:
    return await _change(args, settings, "enable")


async def _cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    return await _change(args, settings, "disable")


async def _cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    return await _change(args, settings, "remove")


async def _change(
    args: argparse.Namespace, settings: Settings, action: Literal["enable", "disable", "remove"]
) -> int:
    from broadcaster.commands import drills

    async with command_context(settings) as ctx:
        shown = await drills.change_schedule(ctx, cli_caller(), args.schedule, action)
    done = {"enable": "enabled", "disable": "disabled", "remove": "removed"}[action]
    emit(args, {action: True, "schedule": shown}, f"{done} " + _schedule_text(shown))
    return EXIT_OK


async def _cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands import drills

    if args.limit < 1:
        raise InputError("--limit must be at least 1")
    async with command_context(settings) as ctx:
        runs = await drills.runs(ctx, cli_caller(), args.limit, args.schedule)
    emit(args, {"runs": runs}, _runs_text(runs))
    return EXIT_OK


async def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands import drills
    from broadcaster.drills.text import render_report_text

    async with command_context(settings) as ctx:
        report = await drills.report(ctx, cli_caller(), args.drill_id)
    html = _write_html(args, report)
    emit(
        args,
        {**report.to_json(), "html": html},
        render_report_text(report) + (f"\nHTML report: {html}" if html else ""),
    )
    return _exit_of(report)


def _exit_of(report: DrillReport) -> int:
    """0 passed, 3 failed, 4 not known yet (its delivery window still open)."""
    if report.passed:
        return EXIT_OK
    return EXIT_NOT_YET if report.pending else EXIT_PARTIAL


async def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands import drills
    from broadcaster.drills.config import DrillSettings
    from broadcaster.drills.local import send_drill
    from broadcaster.drills.runs import report_finished
    from broadcaster.drills.text import render_report_text

    if not args.queue and not settings.smscs:
        raise ConfigError(
            "no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]], or pass --queue to "
            "let a running `broadcaster serve` send the drill"
        )
    config = DrillSettings.from_env()
    async with command_context(settings, connections=4) as ctx:
        started = await drills.start(ctx, cli_caller(), _overrides(args), args.schedule)
        drill_id = started.broadcast_id
        assert drill_id is not None
        assert started.run_id is not None
        if args.queue:
            emit(
                args,
                {"run_id": started.run_id, "drill_id": drill_id, "queued": True},
                f"drill {drill_id} queued ({started.recipients:,} test-group recipients): a "
                "running `broadcaster serve` sends and reports it; then `broadcaster drill "
                f"report {drill_id}`",
            )
            return EXIT_OK
        assert started.thresholds is not None
        wait = args.wait.total_seconds() if args.wait else started.thresholds.delivery_within_s
        stats, pending = await send_drill(ctx.db, settings.smscs, drill_id, wait)
        reported = await report_finished(
            ctx.db, datetime.now(UTC), config, run_id=started.run_id, force=True
        )
    if not reported:
        raise BroadcasterError(
            f"drill {drill_id} did not finish here ({stats.state}): see `broadcaster status "
            f"{drill_id}`; a running `broadcaster serve` reports it once it ends"
        )
    report = reported[0].report
    html = _write_html(args, report)
    emit(
        args,
        {
            "run_id": started.run_id,
            "drill_id": drill_id,
            "receipts_missing": pending,
            "alarm": reported[0].alarm is not None,
            "report": report.to_json(),
            "html": html,
        },
        render_report_text(report) + (f"\nHTML report: {html}" if html else ""),
    )
    return EXIT_OK if report.passed else EXIT_PARTIAL
