"""The CLI, run as a process of its own, sets the garbage collector for sending
(broadcaster/gc_policy.py); `BROADCASTER_GC_TUNED=false` keeps CPython's defaults, and a test
calling the CLI in process keeps them too."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys

import pytest

from broadcaster import gc_policy
from broadcaster.cli import main

# The CLI's own entry (`main()` reading sys.argv), then what the collector says.
_PROBE = (
    "import gc, json, sys\n"
    "from broadcaster.cli import main\n"
    "sys.argv = ['broadcaster', 'config', 'reference']\n"
    "code = main()\n"
    "print(json.dumps({'code': code, 'threshold': gc.get_threshold(),"
    " 'frozen': gc.get_freeze_count()}))\n"
)


def _probe(**env: str) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_a_broadcaster_process_freezes_its_start_and_collects_the_young_less_often() -> None:
    seen = _probe()
    assert seen["code"] == 0
    assert seen["threshold"] == [gc_policy.YOUNG, *gc_policy.OLDER]
    assert isinstance(seen["frozen"], int) and seen["frozen"] > 10_000  # modules, classes...


def test_gc_tuned_false_keeps_cpythons_defaults() -> None:
    seen = _probe(BROADCASTER_GC_TUNED="false")
    assert seen["code"] == 0
    assert seen["threshold"] == [700, 10, 10]
    assert seen["frozen"] == 0


def test_the_cli_called_in_process_leaves_the_collector_alone(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() would point the logs at this test's captured stderr, closed after the test
    monkeypatch.setattr("broadcaster.cli.configure_logging", lambda **_: None)
    before = (gc.get_threshold(), gc.get_freeze_count())
    assert main(["config", "reference"]) == 0
    assert (gc.get_threshold(), gc.get_freeze_count()) == before
    assert "gc_tuned" in capsys.readouterr().out  # (the command ran: the reference it printed)
