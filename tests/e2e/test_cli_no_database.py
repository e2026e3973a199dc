"""Without DATABASE_URL, every command but `demo` refuses with one clear message (exit 2) and
starts no throwaway database: an import, a token or a broadcast there would be lost at exit."""

from __future__ import annotations

import pytest

from broadcaster.cli import main
from broadcaster.store import embedded

COMMANDS = [
    ["db", "migrate"],
    ["subscribers", "synth", "100"],
    ["subscribers", "import", "nothing.csv"],
    ["areas"],
    ["areas", "vars", "75"],
    ["areas", "set-var", "75", "fallback_number", "01 99 00 75 99"],
    ["preview", "--area", "dep:75", "--template", "outage"],
    ["send", "--area", "dep:75", "--template", "outage"],
    ["status", "1"],
    ["list"],
    ["tokens", "list"],
    ["audit"],
    ["drill", "runs"],
    ["worker", "--until-idle"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_but_demo_needs_the_database(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # main() would point structlog at this test's captured stderr, closed after the test.
    monkeypatch.setattr("broadcaster.cli.configure_logging", lambda **_: None)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("BROADCASTER_SMSC_URL", "smpp://t:pw@127.0.0.1:9")
    started: list[object] = []
    monkeypatch.setattr(embedded.EmbeddedPostgres, "start", lambda self: started.append(self))
    code = main(command)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "set DATABASE_URL (or --database-url)" in err
    assert "only `broadcaster demo` starts a throwaway one" in err
    assert started == []  # no throwaway cluster was started behind the user's back
