"""The `broadcaster` command line: thin over operations, the store and the engine.

Exit codes: 0 ok, 1 failure, 2 bad input or configuration (nothing was sent), 3 partially
delivered (some recipients failed), 130 interrupted. Every flag can also be set through the
`BROADCASTER_*` environment variable shown in `--help`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from broadcaster import __version__
from broadcaster.errors import (
    EXIT_BAD_INPUT,
    EXIT_OK,
    EXIT_PARTIAL,
    BroadcasterError,
    ConfigError,
    ImportRejectedError,
    InputError,
)
from broadcaster.logs import configure_logging
from broadcaster.settings import Settings

log = structlog.get_logger(__name__)

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]

EPILOG = """\
examples:
  broadcaster demo                                   # everything embedded: try it first
  broadcaster db migrate
  broadcaster subscribers import subscribers.csv
  broadcaster areas
  broadcaster preview --area dep:75 --area dep:92 --template outage
  broadcaster send --area dep:75 --template outage --var fallback_number="01 99 00 75 00"

Without DATABASE_URL a throwaway PostgreSQL is started for the command and deleted at exit.
exit codes: 0 ok, 1 failure, 2 bad input (nothing sent), 3 partially delivered, 130 interrupted.
"""


class _EnvDefault(argparse.Action):
    """An option whose default comes from an environment variable, named in its help."""

    def __init__(self, env: str, required: bool = False, **kwargs: Any) -> None:
        kind = kwargs.get("type") or str
        if env in os.environ:
            raw = os.environ[env]
            if kwargs.get("nargs") == 0:
                kwargs["default"] = raw.lower() in ("1", "true", "yes", "on")
            elif kwargs.get("action_list"):
                kwargs["default"] = [v for v in raw.split(",") if v]
            else:
                try:
                    kwargs["default"] = kind(raw)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{env}={raw!r} is not valid: {exc}") from exc
            required = False
        kwargs.pop("action_list", None)
        kwargs["help"] = f"{kwargs.get('help', '')} [env: {env}]".strip()
        super().__init__(required=required, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if self.nargs == 0:
            setattr(namespace, self.dest, True)
        elif isinstance(self.default, list) and not isinstance(values, list):
            current = getattr(namespace, self.dest)
            if current is self.default:
                current = []
            setattr(namespace, self.dest, [*current, values])
        else:
            setattr(namespace, self.dest, values)


def _flag(parser: argparse.ArgumentParser, *names: str, env: str, **kwargs: Any) -> None:
    parser.add_argument(*names, action=_EnvDefault, env=env, **kwargs)


def _switch(parser: argparse.ArgumentParser, name: str, env: str, help: str) -> None:
    parser.add_argument(name, action=_EnvDefault, env=env, nargs=0, default=False, help=help)


def _multi(parser: argparse.ArgumentParser, name: str, env: str, help: str, **kw: Any) -> None:
    parser.add_argument(
        name, action=_EnvDefault, env=env, default=[], action_list=True, help=help, **kw
    )


def _duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d` -> timedelta."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value, unit = float(text[:-1]), text[-1]
        if unit not in units or value <= 0:
            raise ValueError(text)
    except (ValueError, IndexError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration like 90s, 15m, 2h or 1d"
        ) from None
    return timedelta(seconds=value * units[unit])


def _add_target_options(p: argparse.ArgumentParser) -> None:
    _multi(
        p,
        "--area",
        env="BROADCASTER_AREA",
        help="area to target: dep:75, region:11 or commune:75056 (repeat for more)",
    )
    _multi(p, "--exclude", env="BROADCASTER_EXCLUDE", help="area to leave out (same forms)")
    _flag(
        p,
        "--template",
        env="BROADCASTER_TEMPLATE",
        required=True,
        help="scenario from templates/catalogue.toml: outage, update, all_clear, drill",
    )
    _multi(p, "--var", env="BROADCASTER_VAR", help="template variable name=value (repeatable)")
    _switch(
        p, "--gsm-safe", "BROADCASTER_GSM_SAFE", "transliterate to GSM 03.38 (ê->e) to save parts"
    )
    _switch(p, "--test-group", "BROADCASTER_TEST_GROUP", "only subscribers of the test group")
    _switch(p, "--drill", "BROADCASTER_DRILL", "an exercise: test group only, drill template")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="broadcaster",
        description="Send area-targeted public-guidance SMS through SMPP, fast and safely.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"broadcaster {__version__}")
    _flag(parser, "--config", env="BROADCASTER_CONFIG", type=Path, help="TOML settings file")
    _flag(
        parser,
        "--database-url",
        env="DATABASE_URL",
        help="PostgreSQL URL (none: a throwaway server is started)",
    )
    _switch(parser, "--log-json", "BROADCASTER_LOG_JSON", "JSON log lines on stderr")
    _flag(parser, "--log-level", env="BROADCASTER_LOG_LEVEL", default="info", help="log level")
    _switch(parser, "--json", "BROADCASTER_JSON", "print one JSON object on stdout (for scripts)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(
        name: str, help: str, handler: Handler, epilog: str = ""
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(
            name,
            help=help,
            description=help,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.set_defaults(handler=handler)
        return sub

    db = command("db", "database administration", _cmd_help)
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    migrate.set_defaults(handler=_cmd_db_migrate)

    subs = command("subscribers", "manage the subscriber index", _cmd_help)
    subs_sub = subs.add_subparsers(dest="subscribers_command", metavar="ACTION", required=True)
    imp = subs_sub.add_parser(
        "import",
        help="import (upsert) subscribers from a CSV file",
        description="Import subscribers from CSV with header "
        "msisdn,departement,commune,cell_id,lang,test_group (commune, cell_id, test_group "
        "optional). Invalid rows go to a reject file with line numbers and reasons; the valid "
        "rows are imported; the exit code is 2 if any row was rejected.",
    )
    imp.add_argument("file", type=Path, help="CSV file (UTF-8)")
    _flag(
        imp,
        "--reject-file",
        env="BROADCASTER_REJECT_FILE",
        type=Path,
        help="where rejected rows go (default: FILE.rejects.csv)",
    )
    imp.set_defaults(handler=_cmd_subscribers_import)
    synth = subs_sub.add_parser(
        "synth", help="add N realistic synthetic subscribers (for demos and load tests)"
    )
    synth.add_argument("count", type=int, help="how many subscribers")
    _flag(synth, "--seed", env="BROADCASTER_SEED", type=int, default=1, help="random seed")
    synth.set_defaults(handler=_cmd_subscribers_synth)

    command("areas", "list départements with subscriber counts", _cmd_areas)

    preview = command(
        "preview",
        "show what a broadcast would send, per (area, language) group; sends nothing",
        _cmd_preview,
        epilog="example:\n  broadcaster preview --area dep:75 --area region:11 --template outage",
    )
    _add_target_options(preview)

    send = command(
        "send",
        "preview, confirm, then send a broadcast and report",
        _cmd_send,
        epilog="example:\n  broadcaster send --area dep:75 --template outage --yes",
    )
    _add_target_options(send)
    _switch(send, "--yes", "BROADCASTER_YES", "do not ask for confirmation (for scripts)")
    _flag(
        send,
        "--expires-in",
        env="BROADCASTER_EXPIRES_IN",
        type=_duration,
        default=timedelta(hours=2),
        help="hard expiry: nothing is submitted after it (default 2h)",
    )

    demo = command(
        "demo",
        "run a whole broadcast on embedded defaults: throwaway database, mock SMSC",
        _cmd_demo,
        epilog="example:\n  broadcaster demo --subscribers 100000 --json",
    )
    _flag(
        demo,
        "--subscribers",
        env="BROADCASTER_DEMO_SUBSCRIBERS",
        type=int,
        default=100_000,
        help="synthetic subscribers to seed (default 100000)",
    )
    _flag(
        demo,
        "--record",
        env="BROADCASTER_DEMO_RECORD",
        type=Path,
        help="write what the mock SMSC received (JSON lines: destination, text)",
    )

    from broadcaster.mocksmsc.cli import add_mock_smsc_command

    add_mock_smsc_command(commands)
    return parser


async def _cmd_help(args: argparse.Namespace, settings: Settings) -> int:
    raise InputError("a sub-command is needed: see --help")


def _emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(payload, default=str))
    else:
        print(human)


async def _cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.database import database, ensure_migrated

    async with database(settings) as dsn:
        applied = await ensure_migrated(dsn, settings.sql_dir)
    _emit(
        args,
        {"applied": applied},
        "applied: " + ", ".join(applied) if applied else "the schema is up to date",
    )
    return EXIT_OK


async def _cmd_subscribers_import(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.importer import import_csv

    result = await import_csv(settings, args.file, args.reject_file)
    _emit(
        args,
        result.as_json(),
        f"imported {result.imported} subscribers, rejected {result.rejected}"
        + (f" (see {result.reject_file})" if result.rejected else ""),
    )
    if result.rejected:
        raise ImportRejectedError(
            f"{result.rejected} row(s) rejected; reasons with line numbers in {result.reject_file}"
        )
    return EXIT_OK


async def _cmd_subscribers_synth(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.importer import synthesise

    count = await synthesise(settings, args.count, args.seed)
    _emit(args, {"added": count}, f"added {count} synthetic subscribers")
    return EXIT_OK


async def _cmd_areas(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.database import connect, database, ensure_migrated
    from broadcaster.store.queries import queries

    async with database(settings) as dsn:
        await ensure_migrated(dsn, settings.sql_dir)
        conn = await connect(dsn)
        try:
            rows = await conn.fetch(queries["subscriber_counts_by_departement"])
        finally:
            await conn.close()
    areas = [dict(r) for r in rows]
    lines = [f"{'dep':<4} {'name':<28} {'region':<6} {'subscribers':>12} {'test':>6}"]
    lines += [
        f"{a['code']:<4} {a['name'][:28]:<28} {a['region_code']:<6} "
        f"{a['subscribers']:>12,} {a['test_group']:>6,}"
        for a in areas
    ]
    _emit(args, {"areas": areas}, "\n".join(lines))
    return EXIT_OK


def _request(args: argparse.Namespace, created_by: str = "cli") -> Any:
    from broadcaster.operations import BroadcastRequest, parse_variables

    if not args.area:
        raise InputError("name at least one --area (dep:75, region:11, commune:75056)")
    return BroadcastRequest(
        areas=args.area,
        exclude=args.exclude,
        template=args.template,
        variables=parse_variables(args.var),
        kind="drill" if args.drill else "live",
        test_group_only=args.test_group,
        gsm_safe=args.gsm_safe,
        expires_in=getattr(args, "expires_in", timedelta(hours=2)),
        created_by=created_by,
    )


def _preview_text(preview: dict[str, Any]) -> str:
    lines = []
    for g in preview["groups"]:
        lines.append(
            f"[{g['departement']}/{g['language']}] {g['recipients']:,} recipients, "
            f"{g['encoding']}, {g['characters']} chars, {g['parts_per_message']} part(s)"
        )
        lines.append(f"    {g['text']}")
    eta = preview["eta_seconds"]
    lines.append(
        f"total: {preview['recipients']:,} recipients, {preview['parts']:,} parts"
        + (f", ETA {eta:.0f} s" if eta is not None else "")
    )
    lines += [f"warning: {w}" for w in preview["warnings"]]
    return "\n".join(lines)


async def _cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.operations import make_plan, plan_as_json
    from broadcaster.smpp.pool import contracted_capacity
    from broadcaster.store.database import connect, database, ensure_migrated

    request = _request(args)
    async with database(settings) as dsn:
        await ensure_migrated(dsn, settings.sql_dir)
        conn = await connect(dsn)
        try:
            plan = await make_plan(conn, settings, request)
        finally:
            await conn.close()
    preview = plan_as_json(plan, contracted_capacity(settings.smscs))
    _emit(args, preview, _preview_text(preview))
    return EXIT_OK


async def _cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.sending import send

    if not settings.smscs:
        raise ConfigError(
            "no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]] in the config file "
            "(or try `broadcaster demo`, which starts a mock SMSC)"
        )
    request = _request(args)
    report = await send(settings, request, confirm=None if args.yes else _confirm)
    _emit(args, report, _report_text(report))
    return _exit_for(report)


def _confirm(recipients: int, preview: dict[str, Any]) -> bool:
    """Ask the operator to type the number of recipients (Hawaii 2018: no one-key confirm)."""
    print(_preview_text(preview), file=sys.stderr)
    if not sys.stdin.isatty():
        raise InputError("confirmation needs a terminal: pass --yes to send from a script")
    answer = input(f"Type {recipients} to send to {recipients:,} recipients: ").strip()
    return answer.replace(",", "").replace(" ", "") == str(recipients)


def _report_text(report: dict[str, Any]) -> str:
    return (
        f"broadcast {report['broadcast_id']}: {report['state']}; "
        f"{report['recipients']:,} recipients, {report['accepted']:,} accepted, "
        f"{report['failed']:,} failed, {report['duplicates']} duplicates, "
        f"{report['seconds']:.2f} s, {report['msgs_per_s']:,.0f} msg/s"
    )


def _exit_for(report: dict[str, Any]) -> int:
    if report["state"] != "completed":
        return 1
    return EXIT_PARTIAL if report["failed"] else EXIT_OK


async def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.demo import run_demo

    report = await run_demo(settings, subscribers=args.subscribers, record_file=args.record)
    human = _report_text(report) + (
        f"\nverified by the mock SMSC's record: {report['verified']:,} recipients got exactly "
        f"their text once; {report['mismatched']} mismatched, {report['missing']} missing"
    )
    _emit(args, report, human)
    if report["mismatched"] or report["missing"] or report["duplicates"]:
        return 1
    return _exit_for(report)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        configure_logging(json=args.log_json, level=args.log_level)
        env = dict(os.environ)
        if args.database_url:
            env["DATABASE_URL"] = args.database_url
        settings = Settings.load(env, args.config)
        handler: Handler = args.handler
        return asyncio.run(handler(args, settings))
    except BroadcasterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except argparse.ArgumentTypeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
