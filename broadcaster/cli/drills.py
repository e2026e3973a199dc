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
from typing import Any

from broadcaster.cli.options import (
    Commands,
    add_command,
    cli_actor,
    duration,
    emit,
    flag,
    multi,
    need_database,
    switch,
)
from broadcaster.errors import EXIT_OK, EXIT_PARTIAL, BroadcasterError, ConfigError, InputError
from broadcaster.settings import Settings

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
    flag(runs, "--limit", env="BROADCASTER_DRILL_LIMIT", type=int, default=20, help="how many")
    flag(runs, "--schedule", env="BROADCASTER_DRILL_SCHEDULE", help="only this schedule's runs")

    report = add_command(
        sub,
        "report",
        "a drill's report: table here, HTML page with a chart of deliveries per SMSC",
        _cmd_report,
        epilog="examples:\n  broadcaster drill report 42\n"
        "  broadcaster drill report 42 --html /var/www/drills/42.html --json\n\n"
        "Exit codes: 0 the drill passed its thresholds, 3 it failed them.",
    )
    report.add_argument("drill_id", type=int, metavar="ID", help="the drill's broadcast id")
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
        type=Path,
        help="where to write the HTML report (default: drill-ID.html here)",
    )
    switch(p, "--no-html", "BROADCASTER_DRILL_NO_HTML", "write no HTML page")


# -- helpers ----------------------------------------------------------------------------------


async def _connect(settings: Settings) -> Any:
    from broadcaster.store.database import connect, ensure_migrated

    dsn = need_database(settings)
    await ensure_migrated(dsn, settings.sql_dir)
    return await connect(dsn)


def _spec(args: argparse.Namespace, base: Any = None) -> Any:
    """The drill from the flags, over a schedule's when there is one."""
    from broadcaster.drills.schedules import DEFAULT_EXPIRES_IN, DrillSpec
    from broadcaster.operations import parse_variables

    variables = parse_variables(args.var)
    if base is not None:
        return DrillSpec(
            areas=tuple(args.area) or base.areas,
            exclude=tuple(args.exclude) or base.exclude,
            template=args.template or base.template,
            variables={**base.variables, **variables},
            expires_in=args.expires_in or base.expires_in,
        )
    if not args.area:
        raise InputError("name the drill's areas: --area dep:75 (repeatable), or a schedule")
    return DrillSpec(
        areas=tuple(args.area),
        exclude=tuple(args.exclude),
        template=args.template or "drill",
        variables=variables,
        expires_in=args.expires_in or DEFAULT_EXPIRES_IN,
    )


def _thresholds(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Any:
    from broadcaster.drills.report import Thresholds

    values = dict(base or {})
    if args.min_delivered is not None:
        values["min_delivered_ratio"] = args.min_delivered
    if args.within is not None:
        values["delivery_within_seconds"] = args.within.total_seconds()
    if args.max_accept_p95 is not None:
        values["max_accept_p95_seconds"] = args.max_accept_p95.total_seconds()
    return Thresholds.from_json(values)


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
    if s["webhook_url"]:
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
    from broadcaster.api import audit
    from broadcaster.drills.config import DrillSettings
    from broadcaster.drills.policy import grace_floor
    from broadcaster.drills.schedules import ScheduleRequest, create_schedule, schedule_json

    request = ScheduleRequest(
        name=args.name,
        cron=args.cron,
        timezone=args.tz,
        drill=_spec(args),
        thresholds=_thresholds(args),
        webhook_url=args.webhook,
        grace=args.grace,
        enabled=not args.disabled,
        created_by=cli_actor(),
    )
    min_grace = grace_floor(DrillSettings.from_env().poll_s)
    conn = await _connect(settings)
    try:
        async with conn.transaction():
            row, warnings = await create_schedule(
                conn, settings, request, datetime.now(UTC), min_grace=min_grace
            )
            await audit.record(
                conn,
                actor=cli_actor(),
                action="drill_schedule_create",
                subject=f"drill_schedule:{row['id']}",
                name=row["name"],
                cron=row["cron"],
                timezone=row["timezone"],
                areas=list(row["areas"]),
                template=row["template"],
            )
    finally:
        await conn.close()
    shown = schedule_json(row)
    emit(
        args,
        {"schedule": shown, "warnings": warnings},
        "added " + _schedule_text(shown) + "".join(f"\nwarning: {w}" for w in warnings),
    )
    return EXIT_OK


async def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.drills.schedules import list_schedules

    conn = await _connect(settings)
    try:
        rows = await list_schedules(conn)
    finally:
        await conn.close()
    text = "\n".join(_schedule_text(s) for s in rows) or "no drill schedule"
    emit(args, {"schedules": rows}, text)
    return EXIT_OK


async def _cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.drills.runs import list_runs
    from broadcaster.drills.schedules import find_schedule, schedule_json

    conn = await _connect(settings)
    try:
        row = await find_schedule(conn, args.schedule)
        runs = await list_runs(conn, 20, row["id"])
    finally:
        await conn.close()
    shown = schedule_json(row)
    emit(args, {**shown, "runs": runs}, _schedule_text(shown) + "\n" + _runs_text(runs))
    return EXIT_OK


async def _cmd_enable(args: argparse.Namespace, settings: Settings) -> int:
    return await _change(args, settings, "enable")


async def _cmd_disable(args: argparse.Namespace, settings: Settings) -> int:
    return await _change(args, settings, "disable")


async def _cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    return await _change(args, settings, "remove")


async def _change(args: argparse.Namespace, settings: Settings, action: str) -> int:
    from broadcaster.api import audit
    from broadcaster.drills.schedules import (
        find_schedule,
        remove_schedule,
        schedule_json,
        set_enabled,
    )

    conn = await _connect(settings)
    try:
        async with conn.transaction():
            row = await find_schedule(conn, args.schedule)
            if action == "remove":
                changed = await remove_schedule(conn, row["id"])
            else:
                changed = await set_enabled(conn, row["id"], action == "enable", datetime.now(UTC))
            assert changed is not None
            await audit.record(
                conn,
                actor=cli_actor(),
                action=f"drill_schedule_{action}",
                subject=f"drill_schedule:{row['id']}",
                name=row["name"],
            )
    finally:
        await conn.close()
    shown = schedule_json(changed)
    done = {"enable": "enabled", "disable": "disabled", "remove": "removed"}[action]
    emit(args, {action: True, "schedule": shown}, f"{done} " + _schedule_text(shown))
    return EXIT_OK


async def _cmd_runs(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.drills.runs import list_runs
    from broadcaster.drills.schedules import find_schedule

    if args.limit < 1:
        raise InputError("--limit must be at least 1")
    conn = await _connect(settings)
    try:
        schedule_id = (await find_schedule(conn, args.schedule))["id"] if args.schedule else None
        runs = await list_runs(conn, args.limit, schedule_id)
    finally:
        await conn.close()
    emit(args, {"runs": runs}, _runs_text(runs))
    return EXIT_OK


async def _cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.drills.runs import load_report
    from broadcaster.drills.text import render_report_text

    conn = await _connect(settings)
    try:
        report = await load_report(conn, args.drill_id)
    finally:
        await conn.close()
    html = _write_html(args, report)
    emit(
        args,
        {**report.to_json(), "html": html},
        render_report_text(report) + (f"\nHTML report: {html}" if html else ""),
    )
    return EXIT_OK if report.passed else EXIT_PARTIAL


async def _cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    import json

    from broadcaster.drills.config import DrillSettings
    from broadcaster.drills.runs import report_finished, start_drill
    from broadcaster.drills.schedules import DrillSpec, find_schedule
    from broadcaster.store.database import create_pool

    if not args.queue and not settings.smscs:
        raise ConfigError(
            "no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]], or pass --queue to "
            "let a running `broadcaster serve` send the drill"
        )
    config = DrillSettings.from_env()
    conn = await _connect(settings)
    try:
        async with conn.transaction():
            schedule = await find_schedule(conn, args.schedule) if args.schedule else None
            base = DrillSpec.of_schedule(schedule) if schedule is not None else None
            thresholds = _thresholds(
                args, json.loads(schedule["thresholds"]) if schedule is not None else None
            )
            webhook = args.webhook or (schedule["webhook_url"] if schedule is not None else None)
            if webhook:
                from broadcaster.drills.config import check_webhook_url

                webhook = check_webhook_url(webhook)
            started = await start_drill(
                conn,
                settings,
                _spec(args, base),
                now=datetime.now(UTC),
                actor=cli_actor(),
                thresholds=thresholds,
                webhook_url=webhook,
                schedule=schedule,
                smscs=[s.name for s in settings.smscs],
            )
    finally:
        await conn.close()
    drill_id = started.broadcast_id
    assert drill_id is not None
    if args.queue:
        emit(
            args,
            {"run_id": started.run_id, "drill_id": drill_id, "queued": True},
            f"drill {drill_id} queued ({started.recipients:,} test-group recipients): a running "
            f"`broadcaster serve` sends and reports it; then `broadcaster drill report {drill_id}`",
        )
        return EXIT_OK
    from broadcaster.drills.local import send_drill

    db = await create_pool(need_database(settings), min_size=2, max_size=4)
    try:
        wait = args.wait.total_seconds() if args.wait else thresholds.delivery_within_s
        stats, pending = await send_drill(db, settings.smscs, drill_id, wait)
        reported = await report_finished(
            db, datetime.now(UTC), config, run_id=started.run_id, force=True
        )
    finally:
        await db.close()
    if not reported:
        raise BroadcasterError(
            f"drill {drill_id} did not finish here ({stats.state}): see `broadcaster status "
            f"{drill_id}`; a running `broadcaster serve` reports it once it ends"
        )
    report = reported[0].report
    html = _write_html(args, report)
    from broadcaster.drills.text import render_report_text

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
