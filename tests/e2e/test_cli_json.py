"""Every command's `--json` output, parsed, as a script would; every flag has its environment
variable; and the map below proves no command was left out (a new command fails the last test
until someone writes the test that parses its output)."""

from __future__ import annotations

import argparse
import ast
import asyncio
import getpass
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from fixtures_cli import Cli
from fixtures_tokens import mint_token

from broadcaster.cli import build_parser
from broadcaster.cli.control import _action_text
from broadcaster.cli.options import _EnvDefault
from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.importer import seed_synthetic
from broadcaster.settings import Settings
from broadcaster.text.templates import EXERCISE_MARKERS
from loadtest.common import mock_smsc, mock_smsc_process

TESTS = Path(__file__).parent.parent

# command -> the test (module::function) that parses its --json output.
JSON_COVERAGE = {
    "db migrate": "e2e.test_cli_json::test_db_migrate",
    "db purge": "integration.test_retention::test_cli_purge_dry_run_says_what_would_go",
    "config reference": "unit.test_configuration_reference::test_the_command_writes_the_reference",
    "subscribers import": "e2e.test_cli_data::test_import_reports_rows_modes_and_rejects",
    "subscribers synth": "e2e.test_cli_data::test_synth_then_areas_at_every_level",
    "areas": "e2e.test_cli_data::test_synth_then_areas_at_every_level",
    "areas vars": "e2e.test_cli_data::test_set_var_validates_records_and_lists",
    "areas set-var": "e2e.test_cli_data::test_set_var_validates_records_and_lists",
    "preview": "e2e.test_cli_data::test_preview_json_with_cells_exclusions_and_the_pool_eta",
    "send": "e2e.test_cli_json::test_send_then_status_report_and_list",
    "status": "e2e.test_cli_json::test_send_then_status_report_and_list",
    "report": "e2e.test_cli_json::test_send_then_status_report_and_list",
    "list": "e2e.test_cli_json::test_send_then_status_report_and_list",
    "pause": "e2e.test_cli_json::test_pause_resume_cancel_and_a_refusal",
    "resume": "e2e.test_cli_json::test_pause_resume_cancel_and_a_refusal",
    "cancel": "e2e.test_cli_json::test_pause_resume_cancel_and_a_refusal",
    "worker": "e2e.test_cli_json::test_worker_runs_what_is_approved",
    "demo": "e2e.test_demo::test_demo_delivers_each_recipient_exactly_its_text_once",
    "mock-smsc": (
        "integration.test_mock_smsc_cli::test_listening_line_stats_endpoint_and_stats_at_exit"
    ),
    "serve": "e2e.test_http::test_create_approve_by_a_second_person_and_watch_until_completed",
    "tokens create": "e2e.test_cli_json::test_tokens_and_audit",
    "tokens list": "e2e.test_cli_json::test_tokens_and_audit",
    "tokens revoke": "e2e.test_cli_json::test_tokens_and_audit",
    "tokens activate": "e2e.test_cli_json::test_tokens_and_audit",
    "audit": "e2e.test_cli_json::test_tokens_and_audit",
    "check": "e2e.test_cli_json::test_check_ready_and_not_ready",
    **dict.fromkeys(
        ["cells import", "cells synth", "locations synth", "locations ingest", "locations compact"],
        "e2e.test_cli_geo::test_cells_locations_and_a_polygon_preview",
    ),
    **dict.fromkeys(
        [f"drill schedule {a}" for a in ("add", "list", "show", "enable", "disable", "remove")],
        "e2e.test_drill_cli::test_schedules_are_added_listed_shown_disabled_and_removed",
    ),
    **dict.fromkeys(
        ["drill run", "drill runs", "drill report"],
        "e2e.test_drill_cli::test_a_drill_run_passes_writes_its_html_and_reports_again",
    ),
}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[str]:
    """Every runnable command path: `send`, `tokens create`, and `areas` (which also runs bare)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            if path and not action.required:
                yield " ".join(path)
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))
            return
    yield " ".join(path)


def _parsers(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield " ".join(path) or "broadcaster", parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


@pytest.fixture
def seeded(db_dsn: str) -> str:
    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        await seed_synthetic(conn, 3000, seed=5)
        await conn.close()

    asyncio.run(seed())
    return db_dsn


def _approved_broadcast(dsn: str, area: str = "dep:75") -> int:
    """An approved broadcast, stored but not run (what the API leaves for a worker)."""

    async def create() -> int:
        settings = Settings()
        request = BroadcastRequest(
            areas=[area],
            template="outage",
            variables={},
            expires_in=timedelta(hours=1),
            created_by="test",
        )
        conn = await asyncpg.connect(dsn)
        try:
            plan = await make_plan(conn, settings, request)
            return await create_broadcast(conn, settings, request, plan)
        finally:
            await conn.close()

    return asyncio.run(create())


def test_db_migrate(cli: Cli) -> None:
    out = cli("db", "migrate")
    assert out == {"applied": []}  # the test database is migrated already: nothing to apply


def test_send_then_status_report_and_list(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_smsc_process() as port:
        monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{port}")
        expected = cli("preview", "--area", "dep:13", "--template", "outage")["recipients"]
        sent = cli(
            "send", "--area", "dep:13", "--template", "outage", "--yes",
            "--expect-recipients", str(expected),
        )  # fmt: skip
    assert sent["state"] == "completed"
    assert sent["kind"] == "live"
    assert sent["recipients"] > 0
    assert sent["accepted"] == sent["recipients"]
    assert sent["failed"] == sent["duplicates"] == 0
    assert sent["submitted"] == sent["parts"]
    status = cli("status", str(sent["broadcast_id"]))
    assert status["state"] == "completed"
    assert status["accepted"] == sent["accepted"]
    assert status["chunks_done"] == status["chunks_total"]
    report = cli("report", str(sent["broadcast_id"]))
    assert report["failed_by_status"] == {}
    listing = cli("list", "--limit", "5")["broadcasts"]
    assert [b["id"] for b in listing] == [sent["broadcast_id"]]
    assert listing[0]["kind"] == "live"
    err = cli("status", "999", code=2)
    assert "999" in err
    # `status 999 --json | jq` gets an object too: what went wrong, and the exit code.
    assert cli.answer == {"error": cli.answer["error"], "kind": "NotFoundError", "exit_code": 2}
    assert "there is no broadcast 999" in cli.answer["error"]


def test_pause_resume_cancel_and_a_refusal(cli: Cli, seeded: str) -> None:
    broadcast_id = str(_approved_broadcast(seeded))
    paused = cli("pause", broadcast_id)
    assert paused == {"broadcast_id": int(broadcast_id), "state": "paused", "waiting_for": None}
    resumed = cli("resume", broadcast_id)
    assert resumed["state"] == "approved"
    # No worker runs here: `resume` says that nothing is sent until one does.
    assert "a worker: none is running" in resumed["waiting_for"]
    assert _action_text(resumed).startswith(
        f"broadcast {broadcast_id}: approved, waiting for a worker: none is running"
    )
    assert cli("cancel", broadcast_id)["state"] == "cancelled"
    # Over, nobody reached: `status` and `report` both exit 3 (partial), as `send` would.
    assert cli("status", broadcast_id, code=3)["state"] == "cancelled"
    assert cli("report", broadcast_id, code=3)["after_action"]["totals"]["reached"] == 0
    err = cli("resume", broadcast_id, code=2)
    assert f"cannot resume broadcast {broadcast_id}: it is cancelled" in err
    audit = cli("audit")["entries"]
    assert [e["action"] for e in audit if e["subject"] == f"broadcast:{broadcast_id}"] == [
        "cancel",
        "resume",
        "pause",
    ]


def test_report_files_that_cannot_be_written_are_refused_without_a_traceback(
    cli: Cli, seeded: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broadcast_id = str(_approved_broadcast(seeded))
    html, csv = tmp_path / "report.html", tmp_path / "missed.csv"
    kept = "what was there before\n"
    for option, path in (("--html", html), ("--not-reached-csv", csv)):
        # A directory where the file should go: refused by the parser, before any work.
        with pytest.raises(SystemExit) as stopped:
            cli("report", broadcast_id, option, str(tmp_path))
        assert stopped.value.code == 2
        assert f"cannot write {tmp_path}: it is a directory" in capsys.readouterr().err
        # A report refused (an unknown id) leaves an existing file as it was, not emptied.
        path.write_text(kept, encoding="utf-8")
        err = cli("report", "424242", option, str(path), code=2)
        assert "424242" in err and path.read_text(encoding="utf-8") == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["missed.csv", "report.html"]
    # Nothing was exported, so nothing was audited as exported.
    assert not [e for e in cli("audit")["entries"] if e["action"] == "export_not_reached"]
    cli("report", broadcast_id, "--html", str(html), "--not-reached-csv", str(csv))
    assert "<html" in html.read_text(encoding="utf-8").lower()
    assert csv.read_text(encoding="utf-8").startswith("msisdn,")
    assert [e for e in cli("audit")["entries"] if e["action"] == "export_not_reached"]


def test_worker_runs_what_is_approved(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = _approved_broadcast(seeded, "dep:75"), _approved_broadcast(seeded, "dep:13")
    with mock_smsc_process() as port:
        monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{port}")
        out = cli("worker", "--until-idle")
    assert sorted(r["broadcast_id"] for r in out["runs"]) == [first, second]
    assert {r["state"] for r in out["runs"]} == {"completed"}


def test_tokens_and_audit(cli: Cli) -> None:
    created = cli(
        "tokens", "create", "--role", "operator", "--name", "night-shift", "--holder", "ines"
    )
    assert created["token"].startswith("bct_")
    assert created["role"] == "operator"
    # An admin at the machine's console names the holder directly: active at once.
    assert (created["holder"], created["pending"], created["active"]) == ("ines", False, True)
    listed = cli("tokens", "list")["tokens"]
    assert [t["name"] for t in listed] == ["night-shift"]
    assert "token" not in listed[0]  # the secret is shown once, at creation

    async def mint_pending() -> int:
        conn = await asyncpg.connect(cli.dsn)
        row, _ = await mint_token(conn, "newcomer", "approver", created_by="root1", pending=True)
        await conn.close()
        return int(row["id"])

    pending = asyncio.run(mint_pending())
    activated = cli("tokens", "activate", str(pending))
    assert (activated["pending"], activated["active"]) == (False, True)
    assert activated["activated_by"].startswith("cli:")
    revoked = cli("tokens", "revoke", str(created["id"]))
    assert revoked["active"] is False
    actions = [e["action"] for e in cli("audit")["entries"]]
    assert "token_create" in actions
    assert "token_revoke" in actions


def test_check_ready_and_not_ready(cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with mock_smsc_process() as port:
        monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{port}?binds=2")
        ready = cli("check")
    assert ready["ok"] is True
    by_name = {c["check"]: c for c in ready["checks"]}
    assert {c["status"] for c in ready["checks"]} == {"ok"}
    assert "2/2 binds up" in by_name["smsc smsc1"]["detail"]
    assert "3,000 subscribers" in by_name["subscribers"]["detail"]
    # The mock has stopped: the SMSC check fails, the rest still says what it found.
    not_ready = cli("check", "--bind-timeout", "3", code=1)
    assert not_ready["ok"] is False
    by_name = {c["check"]: c for c in not_ready["checks"]}
    assert by_name["smsc smsc1"]["status"] == "fail"
    assert "cannot connect" in by_name["smsc smsc1"]["detail"]
    assert by_name["database"]["status"] == "ok"


def test_every_command_has_a_test_that_parses_its_json() -> None:
    commands = set(_commands(build_parser()))
    assert commands - set(JSON_COVERAGE) == set(), "add a --json test and list it above"
    assert set(JSON_COVERAGE) - commands == set(), "a listed command no longer exists"
    for where in set(JSON_COVERAGE.values()):
        module_name, _, function = where.partition("::")
        path = TESTS / (module_name.replace(".", "/") + ".py")
        tree = ast.parse(path.read_text(encoding="utf-8"))
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert function in defined, where


def test_every_flag_has_its_environment_variable() -> None:
    # --json and --database-url after a command: BROADCASTER_JSON and DATABASE_URL, read by
    # the same flags before it.
    exempt = {"--help", "--version", "--json", "--database-url"}
    # A confirmation never comes from the environment (an exported BROADCASTER_YES once sent a
    # live alert without the question): `send --yes` and `--expect-recipients` have none.
    exempt |= {"--yes", "--expect-recipients"}
    # Nor does an override of a safety gate: texts in another language need the flag typed.
    exempt |= {"--allow-language-fallback"}
    # Nor an export of phone numbers: an exported variable wrote (and audited) the list of
    # recipients not reached at every `report`.
    exempt |= {"--not-reached-csv"}
    missing = [
        f"{where} {action.option_strings[0]}"
        for where, parser in _parsers(build_parser())
        for action in parser._actions
        if action.option_strings
        and not set(action.option_strings) & exempt
        and not isinstance(action, _EnvDefault)
    ]
    assert missing == []
    for _where, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, _EnvDefault):
                assert "[env: BROADCASTER_" in (action.help or "") or "DATABASE_URL" in (
                    action.help or ""
                ), action.option_strings


def test_every_command_help_teaches_with_examples() -> None:
    leaves = {
        where: parser
        for where, parser in _parsers(build_parser())
        if where in set(_commands(build_parser())) | {"broadcaster"}
    }
    without = [where for where, parser in leaves.items() if "example" not in (parser.epilog or "")]
    assert without == []
    send_help = leaves["send"].format_help()
    assert "exit codes" in send_help
    assert "Ctrl-C" in send_help


def test_a_drill_previews_only_the_test_group(cli: Cli, seeded: str) -> None:
    live = cli("preview", "--area", "region:11", "--template", "outage")
    drill = cli("preview", "--area", "region:11", "--template", "drill", "--drill")
    areas = {a["code"]: a for a in cli("areas")["areas"]}
    idf = [code for code, a in areas.items() if a["region_code"] == "11"]
    assert (live["kind"], drill["kind"]) == ("live", "drill")
    assert live["recipients"] == sum(areas[c]["subscribers"] for c in idf)
    assert drill["recipients"] == sum(areas[c]["test_group"] for c in idf)
    assert 0 < drill["recipients"] < live["recipients"]
    assert all(g["text"].startswith(EXERCISE_MARKERS[g["language"]]) for g in drill["groups"])
    err = cli("preview", "--area", "region:11", "--template", "outage", "--drill", code=2)
    assert "a drill must use a drill template" in err


def test_a_scripted_live_send_names_the_recipients_it_expects(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--yes alone does not send live (a script must say what it expects); a plan that
    differs from the expectation is refused; the SMSC receives nothing either way."""
    target = ("--area", "dep:13", "--template", "outage")
    expected = cli("preview", *target)["recipients"]
    with mock_smsc(stats=True) as mock:
        monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{mock.port}")
        bare = cli("send", *target, "--yes", code=2)
        wrong = cli("send", *target, "--yes", "--expect-recipients", str(expected + 1), code=2)
        submits = mock.stats()["submits"]
        drill = cli("send", "--area", "dep:13", "--template", "drill", "--drill", "--yes")
    assert f"--expect-recipients {expected}" in bare
    assert f"the plan reaches {expected:,} recipients, not the {expected + 1:,}" in wrong
    assert submits == 0
    assert drill["state"] == "completed"  # a drill keeps its plain --yes
    assert [b["kind"] for b in cli("list")["broadcasts"]] == ["drill"]


def test_cli_sends_and_controls_are_audited_with_login_and_host(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A live send from the CLI, then a pause, a resume and a cancel from the CLI: each is an
    audit entry in the API's shape (actor, role, interface), with the login and the host."""
    target = ("--area", "dep:13", "--template", "outage")
    expected = cli("preview", *target)["recipients"]
    with mock_smsc_process() as port:
        monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{port}")
        sent = cli("send", *target, "--yes", "--expect-recipients", str(expected))
    other = _approved_broadcast(seeded)
    for action in ("pause", "resume", "cancel"):
        cli(action, str(other))
    login, host = getpass.getuser(), socket.gethostname()
    entries = {
        (e["subject"], e["action"]): e
        for e in cli("audit")["entries"]
        if e["subject"] in (f"broadcast:{sent['broadcast_id']}", f"broadcast:{other}")
    }
    assert set(entries) == {
        (f"broadcast:{sent['broadcast_id']}", "create"),
        *((f"broadcast:{other}", a) for a in ("pause", "resume", "cancel")),
    }
    for entry in entries.values():
        assert entry["actor"] == f"cli:{login}"
        assert entry["details"]["interface"] == "cli"
        assert entry["details"]["role"] == "admin"
        assert entry["details"]["origin"] == f"{login}@{host}"
    created = entries[(f"broadcast:{sent['broadcast_id']}", "create")]["details"]
    assert (created["kind"], created["recipients"]) == ("live", expected)


def test_a_reader_that_stops_early_is_not_an_error(seeded: str) -> None:
    """`broadcaster list | head -1`: the first line, no traceback, the command's own exit code."""
    _approved_broadcast(seeded)
    env = {**os.environ, "DATABASE_URL": seeded, "BROADCASTER_LOG_LEVEL": "warning"}
    listing = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", "list", "--limit", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert listing.stdout is not None
    listing.stdout.close()  # the reader went away before a line was written
    _out, err = listing.communicate(timeout=60)
    assert listing.returncode == 0, err
    assert b"Traceback" not in err
    assert b"BrokenPipeError" not in err


@pytest.mark.parametrize("text", ["infs", "1e9d", "nan", "0s", "2 weeks", "10000000d", "5"])
def test_a_malformed_duration_is_refused_without_a_traceback(
    cli: Cli, seeded: str, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli("send", "--area", "dep:13", "--template", "outage", "--expires-in", text)
    assert stopped.value.code == 2
    assert f"{text!r} is not a duration like 90s, 15m, 2h or 1d" in capsys.readouterr().err


def test_one_expiry_limit_everywhere(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI refuses what the API and CAP refuse: more than 7 days; nothing is stored."""
    monkeypatch.setenv("BROADCASTER_SMSC_URL", "smpp://t:pw@127.0.0.1:9")  # never reached
    drill = ("--area", "dep:13", "--template", "drill", "--drill", "--yes")
    assert "between 1 s and 7 days" in cli("send", *drill, "--expires-in", "3650d", code=2)
    assert "between 1 s and 7 days" in cli("send", *drill, "--expires-in", "8d", code=2)
    assert cli("list")["broadcasts"] == []
