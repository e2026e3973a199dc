"""Template variables as a person at the terminal meets them (issue 18, items 2, 3, 8, 15): what
`check`, `preview`, `send` and `areas set-var` say and exit with, and what the mock SMSC got
(nothing, where nothing should go)."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import pytest
import structlog
from fixtures_cli import Cli

from broadcaster.cli import main
from broadcaster.importer import seed_synthetic
from loadtest.common import mock_smsc

SMSC_URL = "BROADCASTER_SMSC_URL"


@pytest.fixture
def fresh(empty_db_dsn: str, cli: Cli) -> Cli:
    """The CLI on a fresh demo database: migrated by `db migrate`, 2,000 synthetic
    subscribers, the reference placeholder numbers as shipped."""
    fresh = Cli(empty_db_dsn, cli.capsys)
    assert fresh("db", "migrate")["applied"]
    assert fresh("subscribers", "synth", "2000")["added"] == 2000
    return fresh


@pytest.fixture
def seeded(db_dsn: str) -> str:
    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        await seed_synthetic(conn, 3000, seed=5)
        await conn.close()

    asyncio.run(seed())
    return db_dsn


def _human(dsn: str, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`broadcaster ARGS` as a person runs it (no --json): exit code, stdout and stderr."""
    capsys.readouterr()
    code = main(["--database-url", dsn, "--log-level", "warning", *args])
    out, err = capsys.readouterr()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    return code, out + err


def test_check_on_a_fresh_demo_database_lists_the_placeholder_areas_and_fails(
    fresh: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_smsc() as mock:
        monkeypatch.setenv(SMSC_URL, f"smpp://t:pw@127.0.0.1:{mock.port}")
        report = fresh("check", code=1)
        code, human = _human(fresh.dsn, fresh.capsys, "check")
        _, listed = _human(fresh.dsn, fresh.capsys, "areas", "vars", "75")
        fresh("areas", "set-var", "75", "fallback_number", "01 40 00 75 00")
        after = fresh("check", code=1)
        _, relisted = _human(fresh.dsn, fresh.capsys, "areas", "vars", "75")
    assert report["ok"] is False
    by_name = {c["check"]: c for c in report["checks"]}
    assert {c["status"] for c in report["checks"] if c["check"] != "area variables"} == {"ok"}
    placeholders = by_name["area variables"]
    assert placeholders["status"] == "fail"
    assert "fallback_number of 101 area(s): 01, 02, 03," in placeholders["detail"]
    assert ", 75, " in placeholders["detail"] and placeholders["detail"].count(", 976;") == 1
    assert "broadcaster areas set-var DEP NAME VALUE" in placeholders["detail"]
    assert code == 1
    assert "FAIL  area variables still the reference placeholders" in human
    assert human.rstrip().endswith("NOT ready: fix the FAIL lines above")
    assert "ready to send" not in human.replace("NOT ready", "")
    assert "75   fallback_number    01 99 00 75 00  (reference placeholder: live" in listed
    assert "75   fallback_number    01 40 00 75 00\n" in relisted
    detail = {c["check"]: c for c in after["checks"]}["area variables"]["detail"]
    assert "fallback_number of 100 area(s)" in detail and ", 75, " not in detail


def test_a_live_send_with_placeholder_numbers_is_refused_before_its_question(
    fresh: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = ("--area", "dep:13", "--area", "dep:69", "--template", "outage")
    preview = fresh("preview", *target)
    assert preview["placeholders"] == {"fallback_number": ["13", "69"]}
    with mock_smsc(stats=True) as mock:
        monkeypatch.setenv(SMSC_URL, f"smpp://t:pw@127.0.0.1:{mock.port}")
        expected = str(preview["recipients"])
        refused = fresh("send", *target, "--yes", "--expect-recipients", expected, code=2)
        code, asked = _human(fresh.dsn, fresh.capsys, "send", *target)  # no terminal: no ask
        submits = mock.stats()["submits"]
        drill = fresh("send", "--area", "dep:13", "--template", "drill", "--drill", "--yes")
        given = fresh(
            "send", *target, "--var", "fallback_number=01 40 00 13 00",
            "--yes", "--expect-recipients", expected,
        )  # fmt: skip
    assert "the fallback_number of 13, 69 is still the reference placeholder" in refused
    assert "broadcaster areas set-var DEP fallback_number VALUE" in refused
    assert "nothing was sent" in refused
    assert code == 2 and "reference placeholder" in asked and "Type " not in asked
    assert submits == 0
    assert drill["state"] == "completed"  # drills may carry them
    assert given["state"] == "completed" and given["accepted"] == preview["recipients"]
    assert [b["kind"] for b in fresh("list")["broadcasts"]] == ["live", "drill"]


def test_a_live_send_with_a_fictional_number_given_is_refused_and_nothing_is_sent(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--var fallback_number=01 99 00 13 00` (the fiction range, copied from a rehearsal):
    the preview says it, a live send exits 2 before anything goes out, a drill may carry it."""
    target = ("--area", "dep:13", "--template", "outage")
    fictional = ("--var", "fallback_number=01 99 00 13 00")
    preview = cli("preview", *target, *fictional)
    assert preview["fictional"] == {"fallback_number": "01 99 00 13 00"}
    assert any("reserved for fiction" in w for w in preview["warnings"])
    with mock_smsc(stats=True) as mock:
        monkeypatch.setenv(SMSC_URL, f"smpp://t:pw@127.0.0.1:{mock.port}")
        expected = str(preview["recipients"])
        refused = cli("send", *target, *fictional, "--yes", "--expect-recipients", expected, code=2)
        submits = mock.stats()["submits"]
    assert "fallback_number 01 99 00 13 00 is in the range reserved for fiction" in refused
    assert "--var fallback_number=NUMBER" in refused and "nothing was sent" in refused
    assert submits == 0
    assert cli("list")["broadcasts"] == []


def test_var_values_are_checked_as_set_var_checks_them(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = ("--area", "dep:13", "--template", "outage")
    refusals = {
        "fallback_number=": "the value of fallback_number is empty",
        "fallback_number=abc": "fallback_number 'abc' is not a phone number",
        "prefecture= ": "the value of prefecture is empty",
        "details=Restez chez vous.\n": "control or invisible characters (U+000A)",
        "details=Restez\u0085": "control or invisible characters (U+0085)",
        "details=Appelez le \u202e00 57 00 99 10": "control or invisible characters (U+202E)",
        "details=Pa\u200bris": "control or invisible characters (U+200B)",
    }
    with mock_smsc(stats=True) as mock:
        monkeypatch.setenv(SMSC_URL, f"smpp://t:pw@127.0.0.1:{mock.port}")
        for var, message in refusals.items():
            assert message in cli("preview", *target, "--var", var, code=2), var
            sent = cli("send", *target, "--var", var, "--yes", "--expect-recipients", "1", code=2)
            assert message in sent, var
        submits = mock.stats()["submits"]
    assert submits == 0
    assert cli("list")["broadcasts"] == []
    # `areas set-var` says the same of the same values.
    assert "fallback_number 'abc' is not a phone number" in cli(
        "areas", "set-var", "13", "fallback_number", "abc", code=2
    )
    assert "the value of fallback_number is empty" in cli(
        "areas", "set-var", "13", "fallback_number", "", code=2
    )


def test_follow_ups_in_another_language_need_each_text_or_the_flag(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    area = ("--area", "dep:13")
    preview = cli("preview", *area, "--template", "update", "--var", "instruction=Restez ici.")
    warnings = preview["warnings"]
    assert "template update has no de text: 2 recipient(s) who read de (in 13) get the fr one" in (
        warnings
    )
    assert (
        "instruction, written in fr, goes into the en text of 13: give --var instruction.en=..."
        in warnings
    )
    expected = str(preview["recipients"])
    with mock_smsc(stats=True) as mock:
        monkeypatch.setenv(SMSC_URL, f"smpp://t:pw@127.0.0.1:{mock.port}")
        parent = cli(
            "send", *area, "--template", "outage", "--yes", "--expect-recipients", expected
        )
        before = mock.stats()["submits"]
        follow = ("--follows", str(parent["broadcast_id"]), "--template", "update")
        french = ("--var", "instruction=Restez ici.")
        refused = cli("send", *follow, *french, "--yes", "--expect-recipients", expected, code=2)
        unchanged = mock.stats()["submits"]
        update = cli(
            "send", *follow, *french,
            "--var", "instruction.en=Stay here.", "--var", "instruction.es=Quédese aquí.",
            "--allow-language-fallback", "--yes", "--expect-recipients", expected,
        )  # fmt: skip
    assert "refused:" in refused and "--allow-language-fallback" in refused
    assert "instruction, written in fr, goes into the en text of 13" in refused
    assert unchanged == before > 0  # the refused update sent nothing
    assert update["state"] == "completed"
    assert update["accepted"] == preview["recipients"]
    assert not any("written in fr" in w for w in update["warnings"])
    assert any("has no de text" in w for w in update["warnings"])  # allowed, still said
