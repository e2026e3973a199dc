"""Mock SMSC scenarios: `MockConfig` validation, TOML files, CLI flags, the TPS bucket."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from broadcaster.cli.mock_smsc import add_mock_smsc_command, config_from_args
from broadcaster.errors import ConfigError
from broadcaster.mocksmsc.flow import TokenBucket
from broadcaster.mocksmsc.scenario import (
    MockConfig,
    parse_errors,
    parse_receipt_mix,
    parse_status,
)
from broadcaster.smpp.constants import Status


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_mock_smsc_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(["mock-smsc", *argv])


def test_defaults_are_the_fast_path_and_bind_and_receipt_knobs_keep_it() -> None:
    assert MockConfig().fast
    assert MockConfig(system_id="a", password="b", max_binds=2, refuse_first_binds=1).fast
    assert MockConfig(record=False, seed=3).fast
    assert MockConfig(receipts=True, receipt_jitter_ms=5, receipt_mix={"UNDELIV": 1.0}).fast
    for knob in (
        {"window": 5},
        {"tps": 10.0},
        {"latency_ms": 1.0},
        {"latency_jitter_ms": 1.0},
        {"errors": {0x58: 0.1}},
        {"disconnect_after": 3},
        {"disconnect_rate": 0.1},
        {"stall_after": 3},
        {"drain_delay_ms": 1.0},
        {"malformed_reply_rate": 0.1},
        {"corrupt_stream_after": 3},
    ):
        assert not MockConfig(**knob).fast, knob


@pytest.mark.parametrize(
    "fields",
    [
        {"window": -1},
        {"stall_after": 1.5},
        {"tps": -1.0},
        {"latency_ms": float("nan")},
        {"throttle_above": 0.0},
        {"throttle_above": 1.5},
        {"tps_burst_s": 0.0},
        {"disconnect_rate": 2.0},
        {"errors": {0x58: 1.5}},
        {"errors": {0x58: 0.6, 0x14: 0.6}},
        {"errors": {0: 0.1}},
        {"receipt_mix": {"DELIVERED": 1.0}},
        {"receipt_mix": {"DELIVRD": 0.5}},
        {"bind_modes": ("outbind",)},
        {"bind_modes": ()},
        {"receipt_pdu": "submit_sm"},
        {"receipt_text": False, "receipt_tlv": False},
        {"unbind_after": -1},
    ],
)
def test_impossible_settings_are_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        MockConfig(**fields)  # type: ignore[arg-type]


def test_throttle_above_scales_the_accepted_rate_and_its_bucket() -> None:
    config = MockConfig(tps=100.0, throttle_above=0.6)
    assert config.accepted_tps == pytest.approx(60.0)
    assert config.tps_capacity == pytest.approx(6.0)
    assert MockConfig(tps=3.0).tps_capacity == 1.0  # never below one part


def test_statuses_and_rates_parse_from_text() -> None:
    assert parse_status("0x00000401") == 0x401
    assert parse_status("ESME_RTHROTTLED") == Status.ESME_RTHROTTLED
    assert parse_status("esme_rmsgqful") == Status.ESME_RMSGQFUL
    assert parse_status("88") == 88
    assert parse_errors(["0x58=0.01", "0x401=0.001,ESME_RSYSERR=0.002"]) == {
        0x58: 0.01,
        0x401: 0.001,
        0x08: 0.002,
    }
    assert parse_receipt_mix(["delivrd=0.9,UNDELIV=0.05", "EXPIRED=0.05"]) == {
        "DELIVRD": 0.9,
        "UNDELIV": 0.05,
        "EXPIRED": 0.05,
    }
    for bad in (["0x58"], ["0x58=often"], ["=0.1"]):
        with pytest.raises(ConfigError):
            parse_errors(bad)
    with pytest.raises(ConfigError, match="not a command_status"):
        parse_status("THROTTLED")


def test_a_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "bad-day.toml"
    path.write_text(
        """
window = 10
tps = 100
latency_ms = 5
latency_jitter_ms = 2
errors = {"0x00000058" = 0.01, "0x00000401" = 0.001, ESME_RSYSERR = 0.002}
receipts = true
receipt_mix = {delivrd = 0.9, UNDELIV = 0.05, EXPIRED = 0.05}
receipt_12_digit_dates = true
bind_modes = ["transceiver"]
""",
        encoding="utf-8",
    )
    config = MockConfig.from_toml(path, seed=7, window=None)
    assert (config.window, config.tps, config.latency_ms, config.seed) == (10, 100, 5, 7)
    assert config.errors == {0x58: 0.01, 0x401: 0.001, 0x08: 0.002}
    assert config.receipt_mix == {"DELIVRD": 0.9, "UNDELIV": 0.05, "EXPIRED": 0.05}
    assert config.bind_modes == ("transceiver",)
    assert config.receipt_12_digit_dates and not config.fast


def test_scenario_file_errors_name_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("windw = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"typo.toml.*windw"):
        MockConfig.from_toml(path)
    path.write_text("window = [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        MockConfig.from_toml(path)
    with pytest.raises(ConfigError, match="cannot read"):
        MockConfig.from_toml(tmp_path / "missing.toml")


def test_cli_flags_override_the_scenario_file(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('tps = 50\nwindow = 4\nerrors = {"0x58" = 0.1}\n', encoding="utf-8")
    args = parse(
        "--scenario",
        str(path),
        "--tps",
        "80",
        "--error",
        "0x401=0.01",
        "--receipts",
        "--receipt-mix",
        "DELIVRD=0.9,UNDELIV=0.1",
        "--no-record",
        "--bind-modes",
        "transmitter,receiver",
        "--seed",
        "3",
    )
    config = config_from_args(args)
    assert (config.tps, config.window, config.seed, config.record) == (80, 4, 3, False)
    assert config.errors == {0x58: 0.1, 0x401: 0.01}
    assert config.receipts and config.receipt_mix == {"DELIVRD": 0.9, "UNDELIV": 0.1}
    assert config.bind_modes == ("transmitter", "receiver")
    assert config_from_args(parse()) == MockConfig()


def test_cli_flags_fall_back_on_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROADCASTER_MOCK_TPS", "25")
    monkeypatch.setenv("BROADCASTER_MOCK_RECEIPTS", "1")
    config = config_from_args(parse())
    assert config.tps == 25 and config.receipts


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    bucket = TokenBucket(rate=100.0, capacity=10.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(11)] == [True] * 10 + [False]
    assert not bucket.take(0.005)  # half a token
    assert bucket.take(0.010)
    assert not bucket.take(0.010)
    # Paced exactly at the rate for a second: every part passes.
    assert all(bucket.take(0.010 + i / 100) for i in range(1, 101))
    # An idle second refills to the capacity, not beyond.
    assert sum(bucket.take(5.0) for _ in range(20)) == 10
