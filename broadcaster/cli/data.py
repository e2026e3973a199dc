"""CLI commands for the data: `db migrate`, `subscribers import|synth`, `areas`."""

from __future__ import annotations

import argparse
from pathlib import Path

from broadcaster.cli.options import Commands, add_command, emit, flag
from broadcaster.errors import EXIT_OK, ImportRejectedError, InputError
from broadcaster.settings import Settings


def register(commands: Commands) -> None:
    db = add_command(commands, "db", "database administration", _cmd_help)
    db_sub = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    migrate = db_sub.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    migrate.set_defaults(handler=_cmd_db_migrate)

    subs = add_command(commands, "subscribers", "manage the subscriber index", _cmd_help)
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
    flag(
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
    flag(synth, "--seed", env="BROADCASTER_SEED", type=int, default=1, help="random seed")
    synth.set_defaults(handler=_cmd_subscribers_synth)

    add_command(commands, "areas", "list départements with subscriber counts", _cmd_areas)


async def _cmd_help(args: argparse.Namespace, settings: Settings) -> int:
    raise InputError("a sub-command is needed: see --help")


async def _cmd_db_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.database import database, ensure_migrated

    async with database(settings) as dsn:
        applied = await ensure_migrated(dsn, settings.sql_dir)
    emit(
        args,
        {"applied": applied},
        "applied: " + ", ".join(applied) if applied else "the schema is up to date",
    )
    return EXIT_OK


async def _cmd_subscribers_import(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.importer import import_csv

    result = await import_csv(settings, args.file, args.reject_file)
    emit(
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
    emit(args, {"added": count}, f"added {count} synthetic subscribers")
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
    emit(args, {"areas": areas}, "\n".join(lines))
    return EXIT_OK
