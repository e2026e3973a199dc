"""The systemd units under deploy/systemd are valid (`systemd-analyze verify`), start the
commands that exist, and keep their hardening (`systemd-analyze security --offline`).

The units name /opt/broadcaster/venv/bin/broadcaster, the documented install path; the checked
copies point at this checkout's virtualenv instead, so `verify` also proves the command exists.
"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
INSTALL_PREFIX = "/opt/broadcaster/venv"
UNITS = ("broadcaster-serve.service", "broadcaster-worker@.service")
# How each unit is named on the command line: a template needs an instance.
INSTANCES = {"broadcaster-worker@.service": "broadcaster-worker@1.service"}
MAX_EXPOSURE = 2.0
"""systemd's exposure score (0 safest .. 10): the units stay well hardened."""


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is missing: apt-get install systemd (Debian's package)"
    return found


@pytest.fixture
def units(tmp_path: Path) -> list[Path]:
    """Copies of the units whose commands are this checkout's venv."""
    venv = str(Path(sys.prefix))
    assert (Path(venv) / "bin" / "broadcaster").exists()
    copies = []
    for name in UNITS:
        text = (DEPLOY / name).read_text(encoding="utf-8")
        assert INSTALL_PREFIX in text
        copy = tmp_path / name
        copy.write_text(text.replace(INSTALL_PREFIX, venv), encoding="utf-8")
        copies.append(copy)
    return copies


def test_units_pass_systemd_analyze_verify(units: list[Path]) -> None:
    names = [str(u.parent / INSTANCES.get(u.name, u.name)) for u in units]
    result = subprocess.run(
        [_systemd_analyze(), "verify", *names], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_verify_catches_a_broken_unit(units: list[Path]) -> None:
    """The check can fail: a misspelt directive and a missing command are reported."""
    broken = units[0].parent / "broken.service"
    text = units[0].read_text(encoding="utf-8").replace("Restart=", "Restrat=")
    broken.write_text(text.replace("bin/broadcaster serve", "bin/no-such-command"), "utf-8")
    result = subprocess.run(
        [_systemd_analyze(), "verify", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Restrat" in result.stderr
    assert "no-such-command" in result.stderr


@pytest.mark.parametrize("name", UNITS)
def test_units_are_hardened(units: list[Path], name: str) -> None:
    unit = next(u for u in units if u.name == name)
    result = subprocess.run(
        [_systemd_analyze(), "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    score = float(last.split(":")[1].split()[0])
    assert score <= MAX_EXPOSURE, last


@pytest.mark.parametrize("name", UNITS)
def test_units_restart_drop_privileges_and_read_the_environment_file(name: str) -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / name, encoding="utf-8")
    service = unit["Service"]
    assert service["Restart"] == "on-failure"
    assert service["User"] == "broadcaster"
    assert service["EnvironmentFile"] == "/etc/broadcaster/broadcaster.env"
    assert service["KillSignal"] == "SIGTERM"
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    command = service["ExecStart"].split()
    assert command[0] == f"{INSTALL_PREFIX}/bin/broadcaster"
    assert command[1] == ("serve" if "serve" in name else "worker")
