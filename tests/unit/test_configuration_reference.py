"""docs/configuration.md is what `broadcaster config reference` generates from the settings (so it
cannot drift), every setting has a meaning, and the example deploy/broadcaster.toml loads."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from broadcaster.cli import main
from broadcaster.settings import ENVIRONMENT_VARIABLES, Settings
from broadcaster.settings_reference import reference, undocumented

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
EXAMPLE = ROOT / "deploy" / "broadcaster.toml"


def test_committed_reference_is_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == reference(), (
        "docs/configuration.md is stale: run `broadcaster config reference --output "
        "docs/configuration.md`"
    )


def test_every_setting_and_environment_variable_is_in_the_reference() -> None:
    assert undocumented() == []
    text = reference()
    for f in dataclasses.fields(Settings):
        assert f.name in text or f.name in ("database_url", "smscs")
    for variable in (*ENVIRONMENT_VARIABLES, "DATABASE_URL", "BROADCASTER_SMSC_URL"):
        assert f"`{variable}`" in text


def test_the_command_writes_the_reference(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # main() would point the logs at this test's captured stderr, closed after the test
    monkeypatch.setattr("broadcaster.cli.configure_logging", lambda **_: None)
    out = tmp_path / "configuration.md"
    assert main(["config", "reference", "--output", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"written": str(out)}
    assert out.read_text(encoding="utf-8") == reference()
    assert main(["config", "reference"]) == 0
    assert capsys.readouterr().out == reference()


def test_example_file_loads_and_sets_every_plain_setting() -> None:
    settings = Settings.load(env={}, config_file=EXAMPLE)
    assert [s.name for s in settings.smscs] == ["paris", "lyon"]
    assert settings.smscs[0].binds == 4 and settings.smscs[0].tps == 100.0
    assert settings.log_json is True
    assert settings.retention_audit_days == 1825
    assert settings.data_dir == Path("/var/lib/broadcaster")
    text = EXAMPLE.read_text(encoding="utf-8")
    for f in dataclasses.fields(Settings):
        if f.name not in ("database_url", "smscs", "sql_dir"):
            assert f"{f.name} =" in text, f"{f.name} is missing from the example file"
