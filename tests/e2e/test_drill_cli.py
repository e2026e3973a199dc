"""`broadcaster drill ...` as an operator drives it: schedules managed with --json output parsed,
bad input refused with exit code 2 and nothing stored, a drill run against mock SMSCs over TCP
with its report table, HTML page and exit code, and the alarm of a failing one."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from fixtures_drills import WebhookSink, seed_subscribers
from fixtures_smsc import StartMock

from broadcaster.cli import main
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings


class Cli:
    """Runs `broadcaster --json ARGS` in a thread (its own event loop, as from a shell), so that
    mock SMSCs served by the test's loop answer it over TCP."""

    def __init__(self, dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.dsn = dsn
        self.capsys = capsys

    async def __call__(self, *args: str, code: int = 0, json_out: bool = True) -> Any:
        self.capsys.readouterr()
        argv = ["--database-url", self.dsn, "--log-level", "warning"]
        argv += ["--json"] if json_out else []
        exit_code = await asyncio.to_thread(main, [*argv, *args])
        out, err = self.capsys.readouterr()
        assert exit_code == code, (out, err)
        if not json_out:
            return out
        if out.strip():
            answer = json.loads(out.strip().splitlines()[-1])
            if code == 0 or "error" not in answer:
                return answer
            # A refusal: stdout's last line is one JSON object saying what stderr says.
            assert answer["exit_code"] == code and answer["error"] in err, (answer, err)
        return err


@pytest.fixture
async def cli(
    db_dsn: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Cli:
    monkeypatch.setattr("broadcaster.cli.configure_logging", lambda **_: None)
    for var in (
        "BROADCASTER_SMSC_URL",
        "BROADCASTER_DRILL_WEBHOOK_URL",
        "BROADCASTER_DRILL_POLL_S",
        "BROADCASTER_JSON",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    conn = await asyncpg.connect(db_dsn)
    try:
        await seed_subscribers(conn)
    finally:
        await conn.close()
    return Cli(db_dsn, capsys)


async def _count(dsn: str, table: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
    finally:
        await conn.close()


ADD = ["drill", "schedule", "add", "monthly-paris", "--cron", "0 12 * * 1#1"]
AREAS = ["--area", "dep:75", "--area", "dep:13"]


async def test_schedules_are_added_listed_shown_disabled_and_removed(cli: Cli) -> None:
    hook = "https://alarm:s3cret@93.184.216.34/hooks?token=T0KEN"  # a secret: shown masked
    added = await cli(
        *ADD, "--tz", "Europe/Paris", *AREAS, "--within", "2m", "--grace", "30m", "--webhook", hook
    )
    schedule = added["schedule"]
    assert schedule["name"] == "monthly-paris"
    assert schedule["webhook_url"] == "https://93.184.216.34/…"
    assert schedule["thresholds"]["delivery_within_seconds"] == 120
    assert schedule["grace_seconds"] == 1800
    assert len(schedule["upcoming"]) == 3
    listed = await cli("drill", "schedule", "list")
    assert [s["id"] for s in listed["schedules"]] == [schedule["id"]]
    shown = await cli("drill", "schedule", "show", "monthly-paris")
    assert shown["runs"] == []
    assert shown["webhook_url"] == "https://93.184.216.34/…"
    assert "s3cret" not in json.dumps(listed) and "T0KEN" not in json.dumps(shown)
    assert (await cli("drill", "schedule", "disable", str(schedule["id"])))["schedule"][
        "enabled"
    ] is False
    assert (await cli("drill", "schedule", "enable", "monthly-paris"))["schedule"]["enabled"]
    text = await cli("drill", "schedule", "list", json_out=False)
    assert "first Monday of the month" in text
    assert (await cli("drill", "schedule", "remove", "monthly-paris"))["remove"] is True
    assert (await cli("drill", "schedule", "list"))["schedules"] == []
    audit = (await cli("audit"))["entries"]
    subject = f"drill_schedule:{schedule['id']}"
    assert [e["action"] for e in audit if e["subject"] == subject] == [
        "drill_schedule_remove",
        "drill_schedule_enable",
        "drill_schedule_disable",
        "drill_schedule_create",
    ]
    assert all(e["actor"].startswith("cli") for e in audit if e["subject"] == subject)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--cron", "0 12 * * 1#9", *AREAS], "not valid"),
        (["--cron", "every monday", *AREAS], "5 fields"),
        (["--tz", "Europe/Pariss", *AREAS], "unknown time zone"),
        (["--area", "dep:99"], "unknown département '99'"),
        ([*AREAS, "--template", "outage"], "a drill must use a drill template"),
        ([*AREAS, "--min-delivered", "1.5"], "min delivered ratio"),
        ([*AREAS, "--webhook", "not-a-url"], "webhook URL"),
        ([], "name the drill's areas"),
        ([*AREAS, "--grace", "30s"], "grace period must be between 60 s and 1 day, not 30 s"),
        ([*AREAS, "--grace", "5s"], "would record on-time drills as missed"),
    ],
)
async def test_bad_schedules_exit_2_and_store_nothing(
    cli: Cli, db_dsn: str, args: list[str], words: str
) -> None:
    err = await cli(*ADD, *args, code=2)
    assert words in err
    assert await _count(db_dsn, "drill_schedules") == 0


async def test_the_grace_floor_follows_the_poll_interval(
    cli: Cli, db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROADCASTER_DRILL_POLL_S", "45")  # the floor: twice that, 90 s
    err = await cli(*ADD, *AREAS, "--grace", "80s", code=2)
    assert "between 90 s and 1 day, not 80 s" in err
    assert await _count(db_dsn, "drill_schedules") == 0
    added = await cli(*ADD, *AREAS, "--grace", "90s")
    assert added["schedule"]["grace_seconds"] == 90


async def test_a_template_without_the_exercise_marker_exits_2(
    cli: Cli, db_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    templates = tmp_path / "templates"
    shutil.copytree(Settings().templates_dir, templates)
    (templates / "drill.en.j2").write_text("Test of SMS alerts in {{ prefecture }}.")
    monkeypatch.setenv("BROADCASTER_TEMPLATES_DIR", str(templates))
    err = await cli(*ADD, *AREAS, code=2)
    assert "must start with the exercise marker 'EXERCISE'" in err
    assert await _count(db_dsn, "drill_schedules") == 0


async def test_a_drill_run_passes_writes_its_html_and_reports_again(
    cli: Cli, start_mock: StartMock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _a, smsc_a = await start_mock(MockConfig(seed=1, receipts=True))
    _b, smsc_b = await start_mock(MockConfig(seed=2, receipts=True))
    monkeypatch.setenv(
        "BROADCASTER_SMSC_URL",
        f"smpp://bc:pw@127.0.0.1:{smsc_a.port}?binds=1,smpp://bc:pw@127.0.0.1:{smsc_b.port}",
    )
    await cli(*ADD, *AREAS)
    ran = await cli("drill", "run", "monthly-paris", "--wait", "30s")
    report = ran["report"]
    assert report["verdict"] == "pass"
    assert ran["alarm"] is False
    assert ran["receipts_missing"] == 0
    assert report["schedule"] == "monthly-paris"
    assert report["total"]["delivered"] == 100
    assert {s["name"] for s in report["by_smsc"]} == {"smsc1", "smsc2"}
    page = (tmp_path / f"drill-{ran['drill_id']}.html").read_text(encoding="utf-8")
    assert Path(ran["html"]).name == f"drill-{ran['drill_id']}.html"
    assert "<svg" in page
    assert "<script" not in page

    again = await cli(
        "drill", "report", str(ran["drill_id"]), "--html", str(tmp_path / "again.html")
    )
    assert again["verdict"] == "pass"
    assert (tmp_path / "again.html").exists()
    table = await cli("drill", "report", str(ran["drill_id"]), "--no-html", json_out=False)
    assert table.splitlines()[0].startswith(f"drill {ran['drill_id']} (monthly-paris): PASS")
    assert "smsc smsc1" in table
    assert "area 75" in table
    runs = (await cli("drill", "runs"))["runs"]
    assert [(r["broadcast_id"], r["verdict"], r["trigger"]) for r in runs] == [
        (ran["drill_id"], "pass", "manual")
    ]


async def test_a_drill_losing_one_smscs_receipts_exits_3_and_raises_the_alarm(
    cli: Cli,
    start_mock: StartMock,
    monkeypatch: pytest.MonkeyPatch,
    webhook_sink: WebhookSink,
) -> None:
    _a, smsc_a = await start_mock(MockConfig(seed=1, receipts=True))
    _b, smsc_b = await start_mock(MockConfig(seed=2, receipts=True, receipt_drop_rate=1.0))
    monkeypatch.setenv(
        "BROADCASTER_SMSC_URL",
        f"smpp://bc:pw@127.0.0.1:{smsc_a.port},smpp://bc:pw@127.0.0.1:{smsc_b.port}",
    )
    monkeypatch.setenv("BROADCASTER_DRILL_WEBHOOK_URL", webhook_sink.url)
    ran = await cli("drill", "run", *AREAS, "--wait", "2s", "--no-html", code=3)
    assert ran["alarm"] is True
    assert ran["receipts_missing"] > 0
    failures = ran["report"]["failures"]
    assert any(f.startswith("smsc smsc2: 0.0%") for f in failures)
    assert not any(f.startswith("smsc smsc1") for f in failures)
    assert [p["event"] for p in webhook_sink.received] == ["drill_failed"]
    assert webhook_sink.received[0]["drill_id"] == ran["drill_id"]
    assert (await cli("drill", "report", str(ran["drill_id"]), "--no-html", code=3))[
        "verdict"
    ] == "fail"


async def test_a_drill_sent_and_read_within_its_window_is_pending_exit_4(
    cli: Cli, start_mock: StartMock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`send --drill` then `drill report` at once, its receipts not all back: it said FAIL
    (exit 3) 30 s into a 300 s window; it is pending (exit 4) until the window ends."""
    _m, smsc = await start_mock(MockConfig(seed=3, receipts=True, receipt_drop_rate=1.0))
    monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://bc:pw@127.0.0.1:{smsc.port}")
    sent = await cli("send", *AREAS, "--template", "drill", "--drill", "--yes")
    assert sent["state"] == "completed" and sent["accepted"] > 0
    report = await cli("drill", "report", str(sent["broadcast_id"]), "--no-html", code=4)
    assert report["verdict"] == "pending" and report["open_until"] is not None
    assert all(f.split(": ", 1)[1].startswith("0.0%") for f in report["failures"])
    text = await cli(
        "drill", "report", str(sent["broadcast_id"]), "--no-html", code=4, json_out=False
    )
    assert ": PENDING;" in text and "its delivery window is open until" in text


async def test_run_needs_an_smsc_unless_queued(cli: Cli, db_dsn: str) -> None:
    err = await cli("drill", "run", *AREAS, code=2)
    assert "no SMSC is configured" in err
    assert await _count(db_dsn, "broadcasts") == 0
    queued = await cli("drill", "run", *AREAS, "--queue")
    assert queued["queued"] is True
    conn = await asyncpg.connect(db_dsn)
    try:
        row = await conn.fetchrow(
            "SELECT kind, state, recipients FROM broadcasts WHERE id = $1", queued["drill_id"]
        )
    finally:
        await conn.close()
    assert row is not None
    assert dict(row) == {"kind": "drill", "state": "approved", "recipients": 100}


async def test_reports_of_unknown_or_live_broadcasts_exit_2(cli: Cli) -> None:
    assert "there is no drill 42" in await cli("drill", "report", "42", code=2)
    assert "no drill schedule 'nope'" in await cli("drill", "schedule", "show", "nope", code=2)


@pytest.mark.parametrize(
    "command",
    [
        ["drill"],
        ["drill", "schedule"],
        ["drill", "schedule", "add"],
        ["drill", "schedule", "remove"],
        ["drill", "run"],
        ["drill", "runs"],
        ["drill", "report"],
    ],
)
def test_every_drill_command_has_help_with_examples(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "example" in out
    assert "broadcaster drill" in out
