"""`broadcaster check`: is this installation ready to send? Config, templates, database,
migrations, subscriber index, the areas' variables (no reference placeholder left: a fictional
fallback number would go to the public) and every SMSC bind, each with what to do when it is
not.

Run it after a deployment, from a drill, or at 3 a.m. before the real thing: it sends nothing
(binds are opened and closed, no submit_sm is written) and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import asdict, dataclass
from typing import Literal

from broadcaster.cli.options import Commands, add_command, emit, flag
from broadcaster.errors import EXIT_FAILURE, EXIT_OK, BindError, BroadcasterError
from broadcaster.settings import Settings, SmscConfig
from broadcaster.smpp.pool import SmppPool
from broadcaster.store import workers
from broadcaster.store.areas import placeholder_variables
from broadcaster.store.database import Conn, connect, redact
from broadcaster.store.migrations import applied_versions, discover
from broadcaster.text.templates import TemplateCatalogue

Status = Literal["ok", "warn", "fail"]
MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@dataclass(frozen=True)
class Finding:
    check: str
    status: Status
    detail: str


def register(commands: Commands) -> None:
    p = add_command(
        commands,
        "check",
        "verify config, templates, database, migrations, subscribers and SMSC binds; sends nothing",
        _cmd_check,
        epilog="""\
examples:
  broadcaster check
  DATABASE_URL=postgresql://... BROADCASTER_SMSC_URL=smpp://id:pw@smsc:2775 broadcaster check --json

Each line is ok, WARN (works, but look at it) or FAIL (fix it before sending).
exit codes: 0 nothing failed (warnings allowed), 1 something failed, 2 the config itself is invalid.
""",
    )
    flag(
        p,
        "--bind-timeout",
        env="BROADCASTER_CHECK_BIND_TIMEOUT",
        type=float,
        default=10.0,
        help="seconds to wait for each SMSC's binds (default 10)",
    )


async def run_checks(settings: Settings, bind_timeout: float) -> list[Finding]:
    findings = [_check_config(settings), _check_templates(settings)]
    findings += await _check_database(settings)
    if not settings.smscs:
        findings.append(
            Finding(
                "smsc",
                "fail",
                "no SMSC configured: set BROADCASTER_SMSC_URL=smpp://id:pw@host:port or "
                "[[smsc]] tables in the config file",
            )
        )
    for smsc in settings.smscs:
        findings.append(await _check_smsc(smsc, bind_timeout))
    return findings


def _check_config(settings: Settings) -> Finding:
    names = ", ".join(f"{s.name} ({s.host}:{s.port}, {s.binds} binds)" for s in settings.smscs)
    return Finding("config", "ok", f"settings loaded; SMSCs: {names or 'none'}")


def _check_templates(settings: Settings) -> Finding:
    try:
        catalogue = TemplateCatalogue(settings.templates_dir)
    except BroadcasterError as exc:
        return Finding("templates", "fail", str(exc))
    names = sorted(catalogue.scenarios)
    problems = catalogue.undeclared()  # a typo in a template is found here, not at 3 a.m.
    if problems:
        return Finding("templates", "fail", "; ".join(problems))
    return Finding(
        "templates", "ok", f"{len(names)} scenarios in {settings.templates_dir}: {', '.join(names)}"
    )


async def _check_database(settings: Settings) -> list[Finding]:
    if not settings.database_url:
        return [
            Finding(
                "database",
                "fail",
                "no DATABASE_URL: `send`, `serve` and `worker` need the subscriber database "
                "(only `broadcaster demo` runs on a throwaway one)",
            )
        ]
    try:
        conn = await connect(settings.database_url, timeout=5)
    except BroadcasterError as exc:
        return [Finding("database", "fail", str(exc))]
    try:
        version = await conn.fetchval("SHOW server_version")
        found = [
            Finding("database", "ok", f"{redact(settings.database_url)}, PostgreSQL {version}")
        ]
        available = discover(settings.sql_dir / "migrations")
        applied = await applied_versions(conn)
        missing = [m.name for m in available if m.version not in applied]
        newer = sorted(applied - {m.version for m in available})
        if missing:
            found.append(
                Finding(
                    "migrations",
                    "fail",
                    f"{len(missing)} not applied ({', '.join(missing)}): run "
                    "`broadcaster db migrate`",
                )
            )
        elif newer:
            found.append(
                Finding(
                    "migrations",
                    "fail",
                    f"the database has versions this program does not know ({newer}): "
                    "upgrade broadcaster",
                )
            )
        else:
            found.append(Finding("migrations", "ok", f"all {len(available)} applied"))
        if not missing:
            found.append(await _subscriber_finding(conn))
            found.append(await _placeholder_finding(conn))
            found.extend(await _smsc_problem_findings(conn))
        return found
    finally:
        await conn.close()


async def _smsc_problem_findings(conn: Conn) -> list[Finding]:
    """What the running workers found wrong with their SMSCs while sending (a bind test
    sends nothing, so it cannot see an SMSC that accepts parts without a message_id)."""
    return [
        Finding("smsc health", "warn", f"reported by a running worker: {problem}")
        for problem in await workers.smsc_problems(conn)
    ]


async def _subscriber_finding(conn: Conn) -> Finding:
    row = await conn.fetchrow(
        "SELECT coalesce(sum(n), 0)::bigint AS n, "
        "coalesce(sum(n) FILTER (WHERE test_group), 0)::bigint AS t "
        "FROM subscriber_counts WHERE kind = 'departement'"
    )
    assert row is not None
    if row["n"] == 0:
        return Finding(
            "subscribers",
            "warn",
            "the index is empty: `broadcaster subscribers import FILE.csv` (nothing to send to)",
        )
    if row["t"] == 0:
        return Finding(
            "subscribers",
            "warn",
            f"{row['n']:,} subscribers, but no test group: drills reach nobody",
        )
    return Finding("subscribers", "ok", f"{row['n']:,} subscribers, {row['t']:,} in the test group")


async def _placeholder_finding(conn: Conn) -> Finding:
    """FAIL while any area variable is still its reference placeholder: every live text to
    that area would tell the public to call a fictional number (a live send refuses it)."""
    rows = await placeholder_variables(conn)
    if not rows:
        return Finding("area variables", "ok", "no reference placeholder left")
    by_name: dict[str, list[str]] = {}
    for r in rows:
        by_name.setdefault(r["name"], []).append(r["departement"])
    listed = "; ".join(
        f"{name} of {len(deps)} area(s): {', '.join(deps)}" for name, deps in by_name.items()
    )
    return Finding(
        "area variables",
        "fail",
        f"still the reference placeholders (fictional numbers; live sends to these areas are "
        f"refused): {listed}; set the real values with `broadcaster areas set-var DEP NAME "
        "VALUE`",
    )


async def _check_smsc(smsc: SmscConfig, timeout: float) -> Finding:
    """Open the SMSC's binds (as the engine would), report how many came up, close them."""
    name = f"smsc {smsc.name}"
    pool = SmppPool((smsc,), on_outcome=lambda *a: None)
    try:
        await asyncio.wait_for(pool.start(), timeout)
    except BindError as exc:
        return Finding(name, "fail", f"{smsc.host}:{smsc.port}: {exc}")
    except TimeoutError:
        await pool.close(timeout=1)
        return Finding(name, "fail", f"{smsc.host}:{smsc.port}: no bind within {timeout:g} s")
    try:
        health = pool.health()[0]
    finally:
        await pool.close(timeout=2)
    where = f"{smsc.host}:{smsc.port} as {smsc.system_id!r}"
    if health.binds_up < len(health.binds):
        errors = sorted({b.last_error for b in health.binds if b.last_error})
        return Finding(
            name,
            "warn",
            f"{where}: {health.binds_up}/{len(health.binds)} binds up ({'; '.join(errors)})",
        )
    return Finding(name, "ok", f"{where}: {health.binds_up}/{len(health.binds)} binds up")


async def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    findings = await run_checks(settings, args.bind_timeout)
    ok = all(f.status != "fail" for f in findings)
    human = "\n".join(f"{MARK[f.status]}  {f.check:<14} {f.detail}" for f in findings)
    human += "\n" + ("ready to send" if ok else "NOT ready: fix the FAIL lines above")
    emit(args, {"ok": ok, "checks": [asdict(f) for f in findings]}, human)
    return EXIT_OK if ok else EXIT_FAILURE
