"""The alerting rules under deploy/prometheus are valid (`promtool check rules`), fire on the series
they are written for (`promtool test rules` on broadcaster.tests.yml), use only metrics the code
exports, and the example scrape configuration loads them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from metric_names import exported_metric_names

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "broadcaster.rules.yml"


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make deploy-tools` (Debian's prometheus package)"
    return subprocess.run(
        [found, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def test_rules_pass_promtool_check() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_rules_fire_as_their_unit_tests_expect() -> None:
    result = _promtool("test", "rules", "broadcaster.tests.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_a_broken_rule_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests can fail: a database alert with the wrong threshold does not fire."""
    (tmp_path / RULES.name).write_text(
        RULES.read_text(encoding="utf-8").replace(
            "broadcaster_database_up == 0", "broadcaster_database_up == 2"
        ),
        encoding="utf-8",
    )
    shutil.copy(PROMETHEUS / "broadcaster.tests.yml", tmp_path)
    result = _promtool("test", "rules", "broadcaster.tests.yml", cwd=tmp_path)
    assert result.returncode != 0
    assert "BroadcasterDatabaseUnreachable" in result.stdout + result.stderr


def test_rules_use_only_exported_metrics() -> None:
    used = set(re.findall(r"\bbroadcaster_[a-z_]+", RULES.read_text(encoding="utf-8")))
    assert used, "no metric found in the rules"
    assert used <= exported_metric_names(), used - exported_metric_names()


def test_example_scrape_configuration_loads_the_rules(tmp_path: Path) -> None:
    config = (PROMETHEUS / "prometheus.example.yml").read_text(encoding="utf-8")
    config = config.replace("/etc/prometheus/rules/broadcaster.rules.yml", str(RULES))
    (tmp_path / "prometheus.yml").write_text(config, encoding="utf-8")
    result = _promtool("check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
