"""The `cli` fixture: `broadcaster --json ...` run in-process against this test's database,
returning the parsed JSON object (or stderr, for refusals)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from broadcaster.cli import main


class Cli:
    def __init__(self, dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
        self.dsn = dsn
        self.capsys = capsys

    def __call__(self, *args: str, code: int = 0) -> Any:
        """Run `broadcaster --json ARGS`; check the exit code; the JSON output (or stderr)."""
        self.capsys.readouterr()
        self.answer: Any = None
        exit_code = main(["--database-url", self.dsn, "--json", "--log-level", "warning", *args])
        out, err = self.capsys.readouterr()
        assert exit_code == code, err
        if code == 0:
            return json.loads(out)  # all of stdout: one JSON object, nothing else
        if out.strip():
            answer = self.answer = json.loads(out)
            if "error" not in answer:
                return answer  # a command's own answer with a meaning of its exit code
            # A refusal: stdout still holds one JSON object, saying what stderr says.
            assert answer["exit_code"] == code and answer["error"] in err, (answer, err)
        return err


@pytest.fixture
def cli(
    db_dsn: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    # main() would point structlog at this test's captured stderr, closed after the test; and
    # structlog's default prints to stdout, which must hold the JSON object alone.
    monkeypatch.setattr(
        "broadcaster.cli.configure_logging",
        lambda **_: structlog.configure(
            wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL)
        ),
    )
    yield Cli(db_dsn, capsys)
    structlog.reset_defaults()
