"""CLI commands for the data: `db migrate`, `subscribers import|synth`, `areas`."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadcaster.cli.options import (
    Commands,
    add_command,
    cli_caller,
    command_context,
    emit,
    flag,
    need_database,
    output_file,
    switch,
)
from broadcaster.errors import EXIT_OK, ImportRejectedError, InputError
from broadcaster.settings import Settings

if TYPE_CHECKING:
    from broadcaster.store.database import Conn


def register(commands: Commands) -> None:
    db = add_command(commands, "db", "database administration", _cmd_help)
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    add_command(
        db_sub,
        "migrate",
        "apply pending schema migrations (idempotent)",
        _cmd_db_migrate,
        epilog="example:\n  DATABASE_URL=postgresql://... broadcaster db migrate --json",
    )
    purge = add_command(
        db_sub,
        "purge",
        "remove what the retention settings say has been kept long enough",
        _cmd_db_purge,
        epilog="examples:\n  broadcaster db purge --dry-run\n  broadcaster db purge --json",
        description="Drop the month partitions of outcomes (deliveries) and receipts older "
        "than retention_outcomes_days / retention_receipts_days, delete audit entries older "
        "than retention_audit_days and location records older than retention_locations_hours "
        "(0: kept). A partition holding outcomes of an unfinished broadcast is kept. "
        "`broadcaster serve` does the same every retention_interval_s.",
    )
    switch(purge, "--dry-run", "BROADCASTER_DRY_RUN", "say what would go; remove nothing")

    subs = add_command(commands, "subscribers", "manage the subscriber index", _cmd_help)
    subs_sub = subs.add_subparsers(dest="subscribers_command", metavar="ACTION", required=True)
    imp = add_command(
        subs_sub,
        "import",
        "import (upsert) subscribers from a CSV file",
        _cmd_subscribers_import,
        epilog="examples:\n  broadcaster subscribers import subscribers.csv\n"
        "  broadcaster subscribers import changes.csv --reject-file rejects.csv --json",
        description="Import subscribers from CSV (UTF-8, a byte order mark is fine) with "
        "header msisdn,departement,commune,cell_id,lang,test_group (commune, cell_id, "
        "test_group optional). msisdn is a mobile number, international (33612345678, "
        "+33 6 12 34 56 78) or national in the plan of BROADCASTER_HOME_COUNTRY (default FR: "
        "06 12 34 56 78, the overseas départements' 0690... included); it is stored as "
        "33612345678. lang is an ISO 639-1 code (fr, en, br...); a language without a "
        "template gets the département's. Into an empty index the rows are bulk-loaded; "
        "otherwise only new and changed subscribers are written (re-importing the same file "
        "writes nothing), so a file of changes is an incremental update. Invalid rows (not a "
        "mobile number, an ambiguous one, an unknown language...) go to a reject file with "
        "line numbers and reasons; the valid rows are imported; the exit code is 2 if any row "
        "was rejected. An import is all or nothing: a file that cannot be read to its end "
        "imports nothing. Progress is logged every few seconds.",
    )
    imp.add_argument("file", type=Path, help="CSV file (UTF-8)")
    flag(
        imp,
        "--reject-file",
        env="BROADCASTER_REJECT_FILE",
        type=output_file,
        help="where rejected rows go (default: FILE.rejects.csv)",
    )
    synth = add_command(
        subs_sub,
        "synth",
        "add N realistic synthetic subscribers (for demos and load tests)",
        _cmd_subscribers_synth,
        epilog="example:\n  broadcaster subscribers synth 1000000 --seed 7",
        description="Add N synthetic subscribers (French mobile numbers, spread over the "
        "départements by population, 5 languages, 0.1% in the test group and at least one per "
        "département, for drills), numbered after "
        "those already there. Several hundred thousand rows/s into an empty index.",
    )
    synth.add_argument("count", type=int, help="how many subscribers")
    flag(synth, "--seed", env="BROADCASTER_SEED", type=int, default=1, help="random seed")

    areas = add_command(
        commands,
        "areas",
        "list areas with subscriber counts; show and set per-area variables",
        _cmd_areas,
        epilog="examples:\n"
        "  broadcaster areas                      # départements\n"
        "  broadcaster areas --regions\n"
        "  broadcaster areas --departement 75     # its communes and cells\n"
        "  broadcaster areas vars 75\n"
        '  broadcaster areas set-var 75 fallback_number "01 53 71 53 71"',
    )
    shown = areas.add_mutually_exclusive_group()
    switch(shown, "--regions", "BROADCASTER_AREAS_REGIONS", "list regions instead")
    flag(
        shown,
        "--departement",
        env="BROADCASTER_AREAS_DEPARTEMENT",
        dest="in_departement",
        metavar="DEP",
        help="list the communes and cells of DEP with counts",
    )
    areas_sub = areas.add_subparsers(dest="areas_command", metavar="ACTION")
    variables = add_command(
        areas_sub,
        "vars",
        "list area variables (fallback numbers, prefecture...) of DEP or all",
        _cmd_areas_vars,
        epilog="examples:\n  broadcaster areas vars 75\n  broadcaster areas vars 75 --history",
    )
    variables.add_argument("departement", nargs="?", help="département code (default: all)")
    switch(
        variables,
        "--history",
        "BROADCASTER_HISTORY",
        "show the recorded changes (who, when, old and new value) instead",
    )
    set_var = add_command(
        areas_sub,
        "set-var",
        "set one area variable (validated; the change is recorded in the audit log)",
        _cmd_areas_set_var,
        epilog='example:\n  broadcaster areas set-var 75 fallback_number "01 53 71 53 71"',
        description="Set variable NAME of département DEP to VALUE. Refused: an unknown "
        "département, a name no template reads, an empty value, one over 160 characters or "
        "with control characters, and for fallback_number anything but a phone number. "
        "The old and new values are recorded in the audit log with the actor.",
    )
    set_var.add_argument("departement", metavar="DEP", help="département code, e.g. 75 or 2A")
    set_var.add_argument("name", metavar="NAME", help="e.g. fallback_number, prefecture")
    set_var.add_argument(
        "value", metavar="VALUE", help='e.g. "01 53 71 53 71" (the real number, never 01 99 00 ..)'
    )
    flag(
        set_var,
        "--actor",
        env="BROADCASTER_ACTOR",
        default=None,
        help="who makes the change, for the audit log (default: the login name)",
    )


async def _cmd_help(args: argparse.Namespace, settings: Settings) -> int:
    raise InputError("a sub-command is needed: see --help")


async def _cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.database import ensure_migrated

    applied = await ensure_migrated(need_database(settings), settings.sql_dir)
    emit(
        args,
        {"applied": applied},
        "applied: " + ", ".join(applied) if applied else "the schema is up to date",
    )
    return EXIT_OK


async def _cmd_db_purge(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands import retention

    async with command_context(settings) as ctx:
        result = await retention.purge(ctx.db, settings, cli_caller(), dry_run=args.dry_run)
    emit(args, result, retention.describe(result))
    return EXIT_OK


async def _cmd_subscribers_import(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.importer import import_csv

    result = await import_csv(settings, args.file, args.reject_file)
    load = result.load
    emit(
        args,
        result.as_json(),
        f"imported {result.imported:,} subscribers ({load.inserted:,} new, {load.updated:,} "
        f"changed, {load.unchanged:,} unchanged; {'bulk load' if load.bulk else 'upsert'}) "
        f"in {load.seconds:.1f} s ({load.rows_per_second:,.0f} rows/s), "
        f"rejected {result.rejected:,}"
        + (f" (see {result.reject_file})" if result.rejected else ""),
    )
    if result.rejected:
        raise ImportRejectedError(
            f"{result.rejected} row(s) rejected; reasons with line numbers in {result.reject_file}"
        )
    return EXIT_OK


async def _cmd_subscribers_synth(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.importer import synthesise

    load = await synthesise(settings, args.count, args.seed)
    added = load.inserted + load.updated
    emit(
        args,
        {"added": added, **load.as_json()},
        f"added {added:,} synthetic subscribers in {load.seconds:.1f} s "
        f"({load.rows_per_second:,.0f} rows/s, {'bulk load' if load.bulk else 'upsert'})",
    )
    return EXIT_OK


async def _cmd_areas(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store import areas as store

    async with migrated_connection(settings) as conn:
        if args.in_departement:
            inside = await store.areas_in_departement(conn, args.in_departement)
        elif args.regions:
            regions = await store.region_counts(conn)
        else:
            deps = await store.departement_counts(conn)
    if args.in_departement:
        lines = [f"{inside['departement']} {inside['name']}"]
        for key, label in (("communes", "commune"), ("cells", "cell")):
            lines.append(f"  {len(inside[key])} {label}s with subscribers")
            lines += [
                f"    {label}:{a['code']:<12} {a['subscribers']:>10,} {a['test_group'] or 0:>6,}"
                for a in inside[key]
            ]
        emit(args, inside, "\n".join(lines))
    elif args.regions:
        lines = [f"{'region':<7} {'name':<28} {'deps':>4} {'subscribers':>12} {'test':>6}"]
        lines += [
            f"{r['code']:<7} {r['name'][:28]:<28} {r['departements']:>4} "
            f"{r['subscribers']:>12,} {r['test_group']:>6,}"
            for r in regions
        ]
        lines.append(_total_line(regions))
        emit(args, {"regions": regions}, "\n".join(lines))
    else:
        lines = [f"{'dep':<4} {'name':<28} {'region':<6} {'subscribers':>12} {'test':>6}"]
        lines += [
            f"{a['code']:<4} {a['name'][:28]:<28} {a['region_code']:<6} "
            f"{a['subscribers']:>12,} {a['test_group']:>6,}"
            for a in deps
        ]
        lines.append(_total_line(deps))
        emit(args, {"areas": deps}, "\n".join(lines))
    return EXIT_OK


def _total_line(rows: list[dict[str, Any]]) -> str:
    total = sum(r["subscribers"] for r in rows)
    tests = sum(r["test_group"] for r in rows)
    return f"total: {total:,} subscribers, {tests:,} in the test group"


async def _cmd_areas_vars(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store import areas as store

    async with migrated_connection(settings) as conn:
        if args.history:
            history = await store.area_variable_history(conn, args.departement)
        else:
            variables = await store.list_area_variables(conn, args.departement)
    if args.history:
        lines = [
            f"{h['at'][:19]} {h['actor']}: {h['departement']} {h['name']} "
            f"{h['old']!r} -> {h['new']!r}"
            for h in history
        ]
        emit(args, {"history": history}, "\n".join(lines) or "no recorded change")
        return EXIT_OK
    lines = [
        f"{v['departement']:<4} {v['name']:<18} {v['value']}"
        + ("  (reference placeholder: live sends refuse it until set)" if v["placeholder"] else "")
        for v in variables
    ]
    emit(args, {"variables": variables}, "\n".join(lines) or "no variables")
    return EXIT_OK


async def _cmd_areas_set_var(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands.areas import set_variable
    from broadcaster.text.templates import TemplateCatalogue

    variables = TemplateCatalogue(settings.templates_dir).variables_read()
    async with command_context(settings) as ctx:
        change = await set_variable(
            ctx, cli_caller(args.actor), args.departement, args.name, args.value, variables
        )
    human = (
        f"{change.departement} {change.name}: {change.old!r} -> {change.new!r} "
        f"(recorded as audit entry {change.audit_id})"
        if change.changed
        else f"{change.departement} {change.name} is already {change.new!r}: nothing changed"
    )
    human += "".join(f"\nwarning: {w}" for w in change.warnings)
    emit(args, change.as_json(), human)
    return EXIT_OK


@asynccontextmanager
async def migrated_connection(settings: Settings) -> AsyncIterator[Conn]:
    """A migrated connection to DATABASE_URL for one command."""
    from broadcaster.store.database import connect, ensure_migrated

    dsn = need_database(settings)
    await ensure_migrated(dsn, settings.sql_dir)
    conn = await connect(dsn)
    try:
        yield conn
    finally:
        await conn.close()
