"""`python -m loadtest --quick`: every scenario runs with tiny counts and reports its figures.

A smoke test of the load test chain (scratch databases, mock SMSC processes, broadcaster
processes, the runner, the report), not of performance: nothing here asserts a rate or a time.
It writes into a temporary directory, never into loadtest/results/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from defusedxml import ElementTree

from broadcaster.settings import PROJECT_ROOT
from loadtest.run import SCENARIOS


@pytest.mark.timeout(300)
def test_quick_run_writes_every_scenarios_figures(tmp_path: Path) -> None:
    env = dict(os.environ)
    if "DATABASE_URL" not in env and env.get("TEST_DATABASE_URL"):
        env["DATABASE_URL"] = env["TEST_DATABASE_URL"]
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "--quick", "--no-profile", "--out", str(tmp_path)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    doc = json.loads((tmp_path / "latest.json").read_text(encoding="utf-8"))
    assert doc["mode"] == "quick"
    assert list(doc["scenarios"]) == [s.name for s in SCENARIOS]
    for scenario in SCENARIOS:
        result = doc["scenarios"][scenario.name]
        assert result["status"] == "ok", result["error"]
        for target in scenario.targets:
            value = result["figures"].get(target.key)
            assert isinstance(value, int | float), (scenario.name, target.key, value)
    assert len(doc["targets"]) == sum(len(s.targets) for s in SCENARIOS)
    assert {row["scenario"] for row in doc["targets"]} == {s.name for s in SCENARIOS}
    assert doc["machine"]["cpus"] >= 1
    assert doc["load"]["timeline"], "the machine's load was sampled"
    assert doc["profile"] is None

    # What each scenario counted is consistent with itself (counts, not speeds).
    figures = {name: r["figures"] for name, r in doc["scenarios"].items()}
    assert figures["pool"]["ours_parts_per_s"] > 0 and figures["pool"]["aiosmpplib_parts_per_s"] > 0
    assert figures["e2e"]["accepted"] == figures["e2e"]["recipients"]
    assert figures["mock_receipts"]["parts"] == 20_000  # every receipt came back and was answered
    receipts = figures["e2e_receipts"]
    assert receipts["state"] == "completed" and receipts["parts_accepted"] >= 20_000
    assert 0 < receipts["receipts_recorded"] <= receipts["parts_accepted"]  # parts, not messages
    assert receipts["status_reads"] > 0
    assert figures["paced"]["accepted_parts"] == figures["paced"]["parts"]
    assert figures["degraded"]["missing_parts"] == 0
    assert figures["faults"]["missing_parts"] == 0
    assert figures["faults"]["runs"]["throttle"][0]["throttles"] > 0
    assert figures["scaleout"]["sent_twice"] == 0
    assert figures["scaleout"]["accepted_one"] == figures["scaleout"]["recipients"]

    report = (tmp_path / "latest.md").read_text(encoding="utf-8")
    for scenario in SCENARIOS:
        assert scenario.title in report
        chart = tmp_path / f"{scenario.name}.svg"
        assert f"]({chart.name})" in report
        assert ElementTree.fromstring(chart.read_bytes()).tag.endswith("svg")
    assert "Shared machine" in report and "Quick mode" in report
