"""CLI commands for broadcasts: `preview`, `send`, `demo`."""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

from broadcaster.cli.options import (
    Commands,
    add_command,
    cli_actor,
    cli_caller,
    command_context,
    duration,
    emit,
    flag,
    multi,
    need_database,
    output_file,
    record_id,
    switch,
)
from broadcaster.cli.terminal import KIND_BANNER, SendConsole, preview_text
from broadcaster.domain.requests import BroadcastRequest, parse_variables
from broadcaster.errors import EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL, ConfigError, InputError
from broadcaster.settings import Settings


def register(commands: Commands) -> None:
    preview = add_command(
        commands,
        "preview",
        "show what a broadcast would send, per (area, language) group; sends nothing",
        _cmd_preview,
        epilog="example:\n  broadcaster preview --area dep:75 --area region:11 --template outage",
    )
    _add_target_options(preview)

    send = add_command(
        commands,
        "send",
        "preview, confirm, then send a broadcast and report",
        _cmd_send,
        epilog="""\
examples:
  broadcaster send --area dep:75 --area dep:92 --template outage \\
      --var fallback_number="01 53 71 53 71"
  broadcaster send --area region:11 --template drill --drill --yes --json
  broadcaster send --area dep:2B --template outage --yes --expect-recipients 550
  broadcaster send --follows 42 --template update --reached-only \\
      --var instruction="Évitez l'A6." --var instruction.en="Avoid the A6." \\
      --var instruction.es="Evite la A6." --allow-language-fallback

The preview is shown first (on stderr); you confirm by typing the number of recipients. A
script skips the question with --yes, and for a live send also says how many recipients it
expects (--expect-recipients N): a plan that differs is refused. No environment variable
confirms a send. Progress goes to stderr, the final report to stdout.
Ctrl-C pauses at once and asks: resume, cancel, or leave it paused (`broadcaster resume|cancel
ID` later); SIGTERM or a closed terminal pauses it and leaves it paused.
exit codes: 0 all accepted, 1 did not complete (failed, expired, paused or cancelled from
elsewhere, no SMSC would bind: the broadcast is then paused), 2 bad input or not confirmed
(nothing sent), 3 some recipients failed, 130 interrupted here (cancelled or left paused).
""",
    )
    _add_target_options(send)
    send.add_argument(
        "--yes",
        action="store_true",
        help="do not ask (for scripts); a live send also needs --expect-recipients "
        "[no environment variable: a confirmation never comes from the environment]",
    )
    send.add_argument(
        "--expect-recipients",
        type=int,
        metavar="N",
        help="with --yes: the recipients the script expects; refused if the plan differs "
        "[no environment variable, as for --yes]",
    )
    send.add_argument(
        "--allow-language-fallback",
        action="store_true",
        help="send live even where a group gets a text not in its recipients' language (no "
        "template in theirs, or a --var written for another: the preview lists them) "
        "[no environment variable, as for --yes]",
    )
    flag(
        send,
        "--progress",
        env="BROADCASTER_PROGRESS",
        choices=("auto", "rich", "plain", "none"),
        default="auto",
        help="progress display on stderr: rich panel on a terminal, plain lines otherwise "
        "(auto), or none",
    )
    flag(
        send,
        "--follows",
        env="BROADCASTER_FOLLOWS",
        type=record_id,
        metavar="ID",
        help="an update or all-clear of broadcast ID: same areas unless --area is given; "
        "stops ID if it is still sending",
    )
    switch(
        send,
        "--reached-only",
        "BROADCASTER_REACHED_ONLY",
        "with --follows: only the recipients the earlier broadcast reached, if only in part "
        "(a part accepted: someone who got half a message hears the follow-up too; the report's "
        "'reached' counts every part accepted)",
    )
    flag(
        send,
        "--expires-in",
        env="BROADCASTER_EXPIRES_IN",
        type=duration,
        default=timedelta(hours=2),
        help="hard expiry: nothing is submitted after it (default 2h)",
    )

    demo = add_command(
        commands,
        "demo",
        "run whole broadcasts on embedded defaults (7 départements, then the numbers present "
        "in a polygon): throwaway database, mock SMSC",
        _cmd_demo,
        epilog="example:\n  broadcaster demo --subscribers 100000 --json",
    )
    flag(
        demo,
        "--subscribers",
        env="BROADCASTER_DEMO_SUBSCRIBERS",
        type=int,
        default=100_000,
        help="synthetic subscribers to seed (default 100000)",
    )
    flag(
        demo,
        "--record",
        env="BROADCASTER_DEMO_RECORD",
        type=output_file,
        help="write what the mock SMSC received for the first broadcast (JSON lines: "
        "destination, text)",
    )


def _add_target_options(p: argparse.ArgumentParser) -> None:
    multi(
        p,
        "--area",
        env="BROADCASTER_AREA",
        help="area to target: dep:75, region:11, commune:75056, cell:ID, "
        "circle:LAT,LON,RADIUS_KM, polygon:LAT,LON LAT,LON ... (closed ring) or "
        "polygon:FILE.geojson (repeat for more)",
    )
    multi(p, "--exclude", env="BROADCASTER_EXCLUDE", help="area to leave out (same forms)")
    flag(
        p,
        "--mode",
        env="BROADCASTER_MODE",
        default="auto",
        choices=("auto", "present", "resident", "both"),
        help="who an area reaches: numbers present in its cells, subscribers resident there, "
        "or both (one message each); auto: present for a polygon or circle, resident otherwise",
    )
    flag(
        p,
        "--freshness-hours",
        env="BROADCASTER_FRESHNESS_HOURS",
        type=float,
        default=6.0,
        help="present mode: a location older than this is stale, not reached (default 6)",
    )
    multi(
        p,
        "--visitor-language",
        env="BROADCASTER_VISITOR_LANGUAGE",
        help="COUNTRY=lang: this broadcast's language for visitors from that country, over "
        "the country table (e.g. CH=de); repeatable",
    )
    flag(
        p,
        "--cells-from",
        env="BROADCASTER_CELLS_FROM",
        type=Path,
        help="file of cell ids to target (one per line or comma-separated; # comments)",
    )
    flag(
        p,
        "--template",
        env="BROADCASTER_TEMPLATE",
        required=True,
        help="scenario from templates/catalogue.toml: outage, update, all_clear, drill",
    )
    multi(
        p,
        "--var",
        env="BROADCASTER_VAR",
        help="template variable name=value, or name.LANG=value for one language's texts "
        "(instruction.en=...); repeatable",
    )
    switch(
        p, "--gsm-safe", "BROADCASTER_GSM_SAFE", "transliterate to GSM 03.38 (ê->e) to save parts"
    )
    switch(p, "--test-group", "BROADCASTER_TEST_GROUP", "only subscribers of the test group")
    switch(p, "--drill", "BROADCASTER_DRILL", "an exercise: test group only, drill template")
    flag(
        p,
        "--max-parts",
        env="BROADCASTER_MAX_PARTS",
        type=int,
        help="refuse a text longer than this many SMS parts (default: the max_parts setting, 3)",
    )


def _request(args: argparse.Namespace, created_by: str) -> BroadcastRequest:
    parent_id = getattr(args, "follows", None)
    areas = list(args.area)
    if args.cells_from is not None:
        try:
            text = args.cells_from.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"cannot read the cell list {args.cells_from}: {exc}") from exc
        cells = [
            cell
            for line in text.splitlines()
            for cell in line.split("#", 1)[0].replace(",", " ").split()
        ]
        if not cells:
            raise InputError(f"the cell list {args.cells_from} names no cell id")
        areas += [f"cell:{cell}" for cell in cells]
    if not areas and parent_id is None:
        raise InputError("name at least one --area (dep:75, region:11, commune:75056, cell:ID)")
    return BroadcastRequest(
        areas=[_shape_file(a) for a in areas],
        exclude=[_shape_file(a) for a in args.exclude],
        mode=args.mode,
        freshness_s=round(args.freshness_hours * 3600),
        visitor_languages=_visitor_languages(args.visitor_language),
        template=args.template,
        variables=parse_variables(args.var),
        kind="drill" if args.drill else "live",
        test_group_only=args.test_group,
        gsm_safe=args.gsm_safe,
        expires_in=getattr(args, "expires_in", timedelta(hours=2)),
        created_by=created_by,
        parent_id=parent_id,
        reached_only=getattr(args, "reached_only", False),
        max_parts=args.max_parts,
        allow_language_fallback=getattr(args, "allow_language_fallback", False),
    )


def _visitor_languages(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        country, sep, lang = pair.partition("=")
        if not sep:
            raise InputError(f"--visitor-language {pair!r} is not COUNTRY=lang (e.g. CH=de)")
        out[country.strip().upper()] = lang.strip().lower()
    return out


def _shape_file(area: str) -> str:
    """`polygon:FILE` (a GeoJSON file) as `polygon:` and the file's GeoJSON."""
    kind, _, rest = area.partition(":")
    if kind.strip().lower() != "polygon" or not rest.strip().lower().endswith(("json", "geojson")):
        return area
    try:
        return "polygon:" + Path(rest.strip()).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the polygon file {rest.strip()}: {exc}") from exc


async def _cmd_preview(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands.planning import make_plan, plan_as_json
    from broadcaster.smpp.pool import contracted_capacity
    from broadcaster.store.database import connect, ensure_migrated

    request = _request(args, cli_actor())
    dsn = need_database(settings)
    await ensure_migrated(dsn, settings.sql_dir)
    conn = await connect(dsn)
    try:
        plan = await make_plan(conn, settings, request)
    finally:
        await conn.close()
    preview = plan_as_json(plan, contracted_capacity(settings.smscs))
    preview["kind"] = request.kind
    emit(args, preview, preview_text(preview, request.kind))
    return EXIT_OK


async def _cmd_send(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.commands.sending import execute

    need_database(settings)
    if not settings.smscs:
        raise ConfigError(
            "no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]] in the config file "
            "(or try `broadcaster demo`, which starts a mock SMSC)"
        )
    caller = cli_caller()
    request = _request(args, caller.name)
    console = SendConsole(
        kind=request.kind,
        template=request.template,
        mode=args.progress,
        ask_first=not args.yes,
        expect_recipients=args.expect_recipients,
    )
    async with command_context(settings, connections=6) as ctx:
        _plan, report = await execute(ctx, caller, settings.smscs, request, console)
    emit(args, report, _report_text(report))
    if report["interrupted"] in ("cancelled", "left_paused"):
        return EXIT_INTERRUPTED
    return _exit_for(report)


def _report_text(report: dict[str, Any]) -> str:
    words, _style = KIND_BANNER.get(report.get("kind", "live"), KIND_BANNER["live"])
    return (
        f"[{words}] broadcast {report['broadcast_id']}: {report['state']}; "
        f"{report['recipients']:,} recipients: {report['accepted']:,} accepted, "
        f"{report['failed']:,} failed; {report['parts']:,} parts, "
        f"{report['possibly_sent_twice']:,} possibly sent twice "
        f"({report['duplicates']:,} recorded twice); "
        f"{report['seconds']:.2f} s, {report['msgs_per_s']:,.0f} recipients/s"
        + _unknown_delivery(report)
    )


def _unknown_delivery(report: dict[str, Any]) -> str:
    """Accepted is not delivered: say so while receipts are still awaited."""
    awaited = report.get("receipts_awaited", 0)
    if not awaited:
        return ""
    bound = report.get("receivers_bound", 0)
    who = (
        f"{bound} bind(s) up to receive their receipts"
        if bound
        else "no process is bound to receive their receipts (run a worker)"
    )
    return f"\ndelivery still unknown for {awaited:,} parts: {who}"


def _exit_for(report: dict[str, Any]) -> int:
    if report["state"] != "completed":
        return 1
    return EXIT_PARTIAL if report["failed"] else EXIT_OK


async def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from broadcaster.demo import run_demo

    report = await run_demo(settings, subscribers=args.subscribers, record_file=args.record)
    emit(args, report, _demo_text(report))
    polygon = report.get("polygon")
    for one in (report, polygon or {}):
        if one.get("mismatched") or one.get("missing") or one.get("duplicates"):
            return 1
    first = _exit_for(report)
    return _exit_for(polygon) if first == EXIT_OK and polygon is not None else first


def _demo_run_text(report: dict[str, Any]) -> str:
    """One run's report, without its advice to run a worker for the receipts: the demo's
    database is dropped at its end, so no receipt will ever be recorded there."""
    human = _report_text({**report, "receipts_awaited": 0})
    if report.get("receipts_awaited"):
        human += (
            f"\ndelivery receipts not awaited for {report['receipts_awaited']:,} parts: the "
            "demo's database is dropped at its end"
        )
    return human


def _demo_text(report: dict[str, Any]) -> str:
    human = _demo_run_text(report)
    if "verified" in report:
        human += (
            f"\nverified by the mock SMSC's record: {report['verified']:,} recipients got "
            f"exactly their text once; {report['mismatched']} mismatched, "
            f"{report['missing']} missing"
        )
    polygon = report.get("polygon")
    if polygon is not None:
        human += (
            f"\n\nthen geography: {polygon['cells_synthesised']:,} synthetic cells, "
            f"{polygon['locations_ingested']:,} last-seen locations; the preview of "
            f"{polygon['area']}:\n"
            + preview_text(polygon["preview"])
            + "\n"
            + _demo_run_text(polygon)
        )
        if "verified" in polygon:
            human += (
                f"\nverified by the mock SMSC's record: {polygon['verified']:,} numbers present "
                f"in the polygon got exactly their text once; {polygon['mismatched']} "
                f"mismatched, {polygon['missing']} missing"
            )
    return human
