"""CLI commands for geography: `cells import|synth` and `locations ingest|compact|synth`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from broadcaster.cli.data import migrated_connection
from broadcaster.cli.options import Commands, add_command, emit, flag, output_file, switch
from broadcaster.errors import EXIT_OK, ImportRejectedError, InputError
from broadcaster.settings import Settings

if TYPE_CHECKING:
    from broadcaster.domain.cells import CellRow
    from broadcaster.store.locations import Compaction


def register(commands: Commands) -> None:
    cells = add_command(commands, "cells", "radio cells and their coverage", _cmd_help)
    cells_sub = cells.add_subparsers(dest="cells_command", metavar="ACTION", required=True)
    imp = add_command(
        cells_sub,
        "import",
        "import (upsert) cells from a CSV file",
        _cmd_cells_import,
        epilog="example:\n  broadcaster cells import cells.csv --reject-file cells.rejects.csv",
        description="Import cells from CSV with header cell_id,technology,lat,lon,azimuth,"
        "beam,range_m (a sector: azimuth from north, beam width in degrees, 360 for an "
        "omnidirectional cell, range in metres), or a coverage column holding a WKT POLYGON or "
        "a GeoJSON Polygon instead; optionally departement (else the one the site stands in). "
        "Coverage is computed from the sector when not given. Bad lines (and sites far from "
        "every département: lat/lon swapped?) go to the reject file; the rest is imported; "
        "exit code 2 if any was rejected.",
    )
    imp.add_argument("file", type=Path, help="CSV file (UTF-8)")
    flag(
        imp,
        "--reject-file",
        env="BROADCASTER_REJECT_FILE",
        type=output_file,
        help="where rejected lines go (default: FILE.rejects.csv)",
    )
    synth = add_command(
        cells_sub,
        "synth",
        "add synthetic cells inside each département (denser in cities)",
        _cmd_cells_synth,
        epilog="example:\n  broadcaster cells synth --sites 100000   # 300,000 cells",
        description="Add about 3 x SITES synthetic sectors (three 120° sectors a site), spread "
        "over the départements by population: 60% of the sites clustered around a point of "
        "each département (city cells of 0.5-2 km), the rest over its outline (3-10 km).",
    )
    flag(synth, "--sites", env="BROADCASTER_CELL_SITES", type=int, default=2000, help="sites")
    loc = add_command(commands, "locations", "where numbers were last seen", _cmd_help)
    loc_sub = loc.add_subparsers(dest="locations_command", metavar="ACTION", required=True)
    ing = add_command(
        loc_sub,
        "ingest",
        "apply location updates from a file or stdin",
        _cmd_locations_ingest,
        epilog="examples:\n  broadcaster locations ingest updates.csv\n"
        "  probe-feed | broadcaster locations ingest -",
        description="Append lines msisdn,cell_id,seen_at[,mcc_or_imsi] (seen_at ISO 8601, UTC "
        "when no offset) to the pending sightings with COPY; selection sees them at once. "
        "`locations compact` (and `serve`, every locations_compact_interval_s) folds them into "
        "the last-seen table. A number the subscriber index does not know is a visitor, with "
        "the country of its MCC (else of its number) and that country's language. Malformed "
        "lines and unknown cells go to the reject file with their reason; the rest is "
        "ingested; exit code 2 if any.",
    )
    ing.add_argument("file", help="file of updates, or - for stdin")
    switch(
        ing,
        "--compact",
        env="BROADCASTER_LOCATIONS_COMPACT",
        help="then fold the pending sightings in (as `locations compact`)",
    )
    add_command(
        loc_sub,
        "compact",
        "fold the pending sightings into the last-seen table",
        _cmd_locations_compact,
        epilog="example:\n  broadcaster locations compact --json",
        description="Fold every pending sighting into the last-seen table (newest per number; "
        "an older one never overwrites a newer one), a set-based upsert per batch, and delete "
        "them. Selection gives the same answers before and after. One compaction runs at a "
        "time: a second one returns at once.",
    )
    syn = add_command(
        loc_sub,
        "synth",
        "write synthetic location lines (CSV) for demos and load tests",
        _cmd_locations_synth,
        epilog="examples:\n  broadcaster locations synth - --share 0.3 --visitors 2000 | "
        "broadcaster locations ingest -\n  broadcaster locations synth updates.csv --json",
        description="Write msisdn,cell_id,seen_at lines to FILE (- for stdout, where nothing "
        "else is printed): about SHARE of the subscribers, each "
        "in a random cell of their own département, and VISITORS foreign numbers (DE, GB, ES, "
        "IT, US) in random cells, seen within the last HOURS (12 by default: some are stale).",
    )
    syn.add_argument("file", help="where the lines go, or - for stdout")
    flag(syn, "--share", env="BROADCASTER_LOCATION_SHARE", type=float, default=0.3, help="0-1")
    flag(syn, "--visitors", env="BROADCASTER_VISITORS", type=int, default=1000, help="visitors")
    flag(syn, "--hours", env="BROADCASTER_LOCATION_HOURS", type=float, default=12.0, help="age")
    flag(
        ing,
        "--reject-file",
        env="BROADCASTER_REJECT_FILE",
        type=output_file,
        help="where rejected lines go (default: FILE.rejects.csv, or locations.rejects.csv)",
    )


async def _cmd_help(args: argparse.Namespace, settings: Settings) -> int:
    raise InputError("name an action; see --help")


def _read_cells(path: Path) -> tuple[list[tuple[int, CellRow]], list[tuple[int, str, str]]]:
    from broadcaster.domain.cells import check_header, parse_cell

    rows: list[tuple[int, CellRow]] = []
    rejects: list[tuple[int, str, str]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            reader = csv.DictReader(f)
            check_header([c.strip() for c in reader.fieldnames or []])
            for record in reader:
                line = reader.line_num
                try:
                    rows.append((line, parse_cell({k.strip(): v for k, v in record.items()})))
                except InputError as exc:
                    rejects.append((line, record.get("cell_id") or "", str(exc)))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    return rows, rejects


def _write_rejects(path: Path, header: str, rejects: list[tuple[int, str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["line", header, "reason"])
        writer.writerows(rejects)


async def _cmd_cells_import(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.cells import import_cells

    rows, rejects = _read_cells(args.file)
    async with migrated_connection(settings) as conn:
        result = await import_cells(conn, rows)
    rejects = sorted(rejects + result.rejects)
    reject_file = args.reject_file or args.file.with_suffix(".rejects.csv")
    if rejects:
        _write_rejects(reject_file, "cell_id", rejects)
    emit(
        args,
        {"imported": result.imported, "rejected": len(rejects), "reject_file": str(reject_file)},
        f"imported {result.imported:,} cells, rejected {len(rejects):,}"
        + (f" (see {reject_file})" if rejects else ""),
    )
    if rejects:
        raise ImportRejectedError(f"{len(rejects)} line(s) rejected; reasons in {reject_file}")
    return EXIT_OK


async def _cmd_cells_synth(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.cells import synth_cells

    if not 0 < args.sites <= 1_000_000:
        raise InputError(f"--sites must be between 1 and 1,000,000, not {args.sites}")
    async with migrated_connection(settings) as conn:
        total = await synth_cells(conn, args.sites)
    emit(args, {"cells": total}, f"{total:,} cells in all")
    return EXIT_OK


def _lines(name: str) -> Iterator[str]:
    if name == "-":
        yield from sys.stdin
        return
    try:
        with open(name, encoding="utf-8-sig") as f:
            yield from f
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror}") from exc


async def _cmd_locations_ingest(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.locations import compact, ingest, pending

    async with migrated_connection(settings) as conn:
        result = await ingest(conn, _lines(args.file))
        folded = await compact(conn) if args.compact else None
        waiting = await pending(conn)
    default = "locations.rejects.csv" if args.file == "-" else f"{args.file}.rejects.csv"
    reject_file = args.reject_file or Path(default)
    if result.rejects:
        _write_rejects(reject_file, "text", result.rejects)
    data: dict[str, object] = {
        "read": result.read,
        "written": result.written,
        "rejected": len(result.rejects),
        "seconds": round(result.seconds, 3),
        "updates_per_second": round(result.per_second),
        "pending": waiting,
    }
    text = (
        f"read {result.read:,} updates, appended {result.written:,} in {result.seconds:.1f} s "
        f"({result.per_second:,.0f}/s), rejected {len(result.rejects):,}"
        + (f" (see {reject_file})" if result.rejects else "")
    )
    if folded is not None:
        data["compacted"] = _compaction_json(folded)
        text += "\n" + _compaction_text(folded)
    emit(args, data, text + f"\n{waiting:,} sightings pending compaction")
    if result.rejects:
        raise ImportRejectedError(
            f"{len(result.rejects)} line(s) rejected; reasons in {reject_file}"
        )
    return EXIT_OK


def _compaction_json(done: Compaction) -> dict[str, object]:
    return {
        "moved": done.moved,
        "written": done.written,
        "visitors": done.visitors,
        "seconds": round(done.seconds, 3),
        "sightings_per_second": round(done.per_second),
    }


def _compaction_text(done: Compaction) -> str:
    return (
        f"compacted {done.moved:,} sightings into {done.written:,} locations "
        f"({done.visitors:,} visitors) in {done.seconds:.1f} s ({done.per_second:,.0f}/s)"
    )


async def _cmd_locations_compact(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.locations import compact

    async with migrated_connection(settings) as conn:
        done = await compact(conn)
    emit(args, _compaction_json(done), _compaction_text(done))
    return EXIT_OK


async def _cmd_locations_synth(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.store.locations import synth_lines

    if not 0 < args.share <= 1 or args.visitors < 0 or not 0 < args.hours <= 168:
        raise InputError("--share must be in (0, 1], --visitors >= 0, --hours in (0, 168]")
    lines = 0
    with contextlib.ExitStack() as stack:
        out = (
            sys.stdout.buffer
            if args.file == "-"
            else stack.enter_context(await asyncio.to_thread(open, args.file, "wb"))
        )

        async def write(data: bytes) -> None:
            nonlocal lines
            lines += data.count(b"\n")
            out.write(data)

        async with migrated_connection(settings) as conn:
            await synth_lines(conn, args.share, args.visitors, args.hours, write)
        out.flush()
    if args.file != "-":
        emit(args, {"lines": lines, "file": args.file}, f"wrote {lines:,} lines to {args.file}")
    return EXIT_OK
