"""Bad numbers on the command line: argparse's usage and a sentence, exit 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Iterator

import pytest

from broadcaster.cli import build_parser, main

BAD = [
    (["list", "--limit", "-1"], "'-1' is not a whole number of 1 or more"),
    (["audit", "--limit", "x"], "'x' is not a whole number of 1 or more"),
    (["drill", "runs", "--limit", "0"], "'0' is not a whole number of 1 or more"),
    (["worker", "--lease-seconds", "0"], "'0' is not between 1 and 3600 seconds"),
    # Ids: a bigint's range (a larger one reached the database as a traceback).
    (["status", "99999999999999999999"], "'99999999999999999999' is not an id"),
    (["report", "0"], "'0' is not an id"),
    (["cancel", "-3"], "'-3' is not an id"),
    (["tokens", "revoke", "x"], "'x' is not an id"),
    (["audit", "--before", "9223372036854775808"], "'9223372036854775808' is not an id"),
    (["drill", "report", "1e3"], "'1e3' is not an id"),
    (["send", "--follows", "99999999999999999999"], "is not an id"),
    (["worker", "--lease-seconds", "soon"], "'soon' is not between 1 and 3600 seconds"),
    # Files to write: refused before the work (an import done, then its reject file lost).
    (["report", "1", "--html", "/no/such/dir/r.html"], "cannot write /no/such/dir/r.html: no "),
    (["subscribers", "import", "f.csv", "--reject-file", "/no/such/r.csv"], "no directory"),
    (["locations", "ingest", "-", "--reject-file", "/no/such/r.csv"], "no directory /no/such"),
    (["config", "reference", "--output", "/no/such/c.md"], "cannot write /no/such/c.md"),
    (["demo", "--record", "/no/such/r.jsonl"], "cannot write /no/such/r.jsonl"),
]


@pytest.mark.parametrize(("argv", "sentence"), BAD)
def test_a_bad_number_is_refused_with_a_sentence(
    argv: list[str], sentence: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    assert sentence in capsys.readouterr().err


def test_a_good_limit_is_taken() -> None:
    assert build_parser().parse_args(["list", "--limit", "5"]).limit == 5


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_no_help_teaches_a_fictional_number_for_a_live_send() -> None:
    """A 3 a.m. reader copies the example: it must not carry the fiction range (01 99 00 xx xx),
    which `areas set-var` would take as the real number and the public would be told to call."""
    helps = [p.format_help() for p in _parsers(build_parser())]
    assert len(helps) > 20
    assert not [h.splitlines()[0] for h in helps if re.search(r"01 99 00 \d\d", h)]


def test_no_help_shows_a_doubled_percent_sign() -> None:
    """argparse formats `help` (%% is %) but not `description`: "0.1%%" was shown as is."""
    helps = [p.format_help() for p in _parsers(build_parser())]
    assert not [h.splitlines()[0] for h in helps if "%%" in h]


def test_the_database_url_is_taken_after_the_command_too() -> None:
    """Put at the end of the line, it was refused ("unrecognized arguments"); after the command
    it wins over the one before it, as the nearer word."""
    parse = build_parser().parse_args
    assert parse(["status", "7", "--database-url", "postgresql://h/a"]).database_url == (
        "postgresql://h/a"
    )
    assert parse(["db", "purge", "--dry-run", "--database-url", "postgresql://h/b"]).database_url
    both = ["--database-url", "postgresql://h/first", "list", "--database-url", "postgresql://h/c"]
    assert parse(both).database_url == "postgresql://h/c"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        # A confirmation typed short was a live send: argparse took `--ye` for `--yes`.
        (
            ["send", "--area", "dep:75", "--template", "outage", "--ye", "--expect", "56"],
            "not recognised: --ye (did you mean --yes?), --expect (did you mean "
            "--expect-recipients?)",
        ),
        (
            ["preview", "--area", "dep:75", "--template", "drill", "--dril"],
            "not recognised: --dril (did you mean --drill?)",
        ),
        # A typo of a required flag: argparse said only that --template was missing.
        (
            ["send", "--area", "dep:75", "--temlate", "outage"],
            "the following arguments are required: --template; not recognised: --temlate "
            "(did you mean --template?)",
        ),
        (["db", "purge", "--dry"], "not recognised: --dry (did you mean --dry-run?)"),
        # Each named once, however often typed.
        (
            ["list", "--limt", "3", "--limt", "4"],
            "not recognised: --limt (did you mean --limit?)\n",
        ),
    ],
)
def test_a_flag_is_taken_only_as_spelled_and_a_mistake_names_the_nearest(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refused while the command line is read, before any command runs (nothing can be sent):
    exit 2, the flags not recognised named with the one meant."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert said in err
    assert out == ""


def test_with_json_a_command_line_mistake_is_the_one_json_object_on_stdout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every refusal is a JSON object for a script (README), a command line not understood
    too (it printed nothing on stdout); by flag or by BROADCASTER_JSON."""
    with pytest.raises(SystemExit) as exited:
        main(["--json", "send", "--areas", "dep:75", "--template", "outage"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert json.loads(out) == {
        "error": "not recognised: --areas (did you mean --area?)",
        "kind": "UsageError",
        "exit_code": 2,
    }
    assert "not recognised: --areas" in err
    monkeypatch.setenv("BROADCASTER_JSON", "1")
    with pytest.raises(SystemExit):
        main(["status"])
    assert json.loads(capsys.readouterr().out)["error"] == (
        "the following arguments are required: broadcast_id"
    )
