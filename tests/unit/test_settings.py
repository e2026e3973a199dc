"""Settings: TOML file < environment, each value coerced to its field's type, errors that say
which setting and what is wrong; SMSC endpoints from URLs or [[smsc]] tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.errors import ConfigError
from broadcaster.settings import Settings, SmscConfig


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "broadcaster.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file_or_environment() -> None:
    settings = Settings.load(env={})
    assert settings == Settings()
    assert settings.smscs == ()


def test_environment_overrides_the_file_and_is_coerced(tmp_path: Path) -> None:
    config = _toml(
        tmp_path,
        'max_parts = 4\nchunk_size = 100\nlog_level = "debug"\n[database]\nurl = "postgresql://file"\n',
    )
    env = {
        "BROADCASTER_CONFIG": str(config),
        "DATABASE_URL": "postgresql://env",
        "BROADCASTER_MAX_PARTS": "5",
        "BROADCASTER_LOG_JSON": "yes",
        "BROADCASTER_API_RATE_PER_SECOND": "2.5",
        "BROADCASTER_DATA_DIR": "~/bc-data",
        "BROADCASTER_UNRELATED": "ignored",
    }
    settings = Settings.load(env=env)
    assert settings.database_url == "postgresql://env"
    assert settings.max_parts == 5
    assert settings.chunk_size == 100
    assert settings.log_level == "debug"
    assert settings.log_json is True
    assert settings.api_rate_per_second == 2.5
    assert settings.data_dir == Path("~/bc-data").expanduser()


def test_an_explicit_config_file_wins_over_broadcaster_config(tmp_path: Path) -> None:
    chosen = _toml(tmp_path, "chunk_size = 7\n")
    settings = Settings.load(
        env={"BROADCASTER_CONFIG": str(tmp_path / "absent.toml")}, config_file=chosen
    )
    assert settings.chunk_size == 7


def test_empty_environment_values_of_database_and_smsc_are_ignored(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[database]\nurl = "postgresql://file"\n[[smsc]]\nhost = "h"\n')
    settings = Settings.load(
        env={"BROADCASTER_CONFIG": str(config), "DATABASE_URL": "", "BROADCASTER_SMSC_URL": ""}
    )
    assert settings.database_url == "postgresql://file"
    assert [s.host for s in settings.smscs] == ["h"]


@pytest.mark.parametrize(
    ("var", "value", "message"),
    [
        (
            "BROADCASTER_LOG_JSON",
            "maybe",
            "setting BROADCASTER_LOG_JSON: 'maybe' is not a valid bool",
        ),
        (
            "BROADCASTER_MAX_PARTS",
            "three",
            "setting BROADCASTER_MAX_PARTS: 'three' is not a valid int",
        ),
        (
            "BROADCASTER_API_RATE_PER_SECOND",
            "fast",
            "setting BROADCASTER_API_RATE_PER_SECOND: 'fast' is not a valid float",
        ),
    ],
)
def test_unreadable_environment_values_name_the_variable(
    var: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(env={var: value})
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"BROADCASTER_MAX_PARTS": "0"}, "max_parts and chunk_size must be at least 1"),
        ({"BROADCASTER_CHUNK_SIZE": "0"}, "max_parts and chunk_size must be at least 1"),
        (
            {"BROADCASTER_API_APPROVAL_THRESHOLD": "-1"},
            "api_approval_threshold must be >= 0, api_max_body_bytes >= 1024",
        ),
        (
            {"BROADCASTER_API_MAX_BODY_BYTES": "1023"},
            "api_approval_threshold must be >= 0, api_max_body_bytes >= 1024",
        ),
        (
            {"BROADCASTER_API_RATE_PER_SECOND": "0"},
            "api_rate_per_second must be positive, api_rate_burst >= 1",
        ),
        (
            {"BROADCASTER_API_RATE_BURST": "0"},
            "api_rate_per_second must be positive, api_rate_burst >= 1",
        ),
        (
            {"BROADCASTER_LOCATIONS_COMPACT_INTERVAL_S": "-1"},
            "locations_compact_interval_s must be 0 (never) or positive",
        ),
    ],
)
def test_out_of_range_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(env=env)
    assert str(caught.value) == message


def test_home_country_comes_from_the_environment_in_capitals(tmp_path: Path) -> None:
    assert Settings.load(env={}).home_country == "FR"
    assert Settings.load(env={"BROADCASTER_HOME_COUNTRY": " be "}).home_country == "BE"
    config = _toml(tmp_path, 'home_country = "ch"\n')
    assert Settings.load(env={}, config_file=config).home_country == "CH"


@pytest.mark.parametrize("value", ["", "FRA", "F1", "33"])
def test_a_home_country_that_is_not_a_country_code_is_refused(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.load(env={"BROADCASTER_HOME_COUNTRY": value})
    assert str(caught.value) == (
        f"home_country {value.upper()!r} is not a two-letter country code (FR, BE, ...)"
    )


def test_file_errors_say_which_file_and_what(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read config file .*absent\.toml: No such file"):
        Settings.load(env={}, config_file=tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match=r"config file .*broadcaster\.toml is not valid TOML"):
        Settings.load(env={}, config_file=_toml(tmp_path, "max_parts = \n"))
    with pytest.raises(ConfigError) as caught:
        Settings.load(env={}, config_file=_toml(tmp_path, "colour = 1\n"))
    assert str(caught.value).endswith("broadcaster.toml: unknown setting 'colour'")
    with pytest.raises(ConfigError) as caught:
        Settings.load(env={}, config_file=_toml(tmp_path, "smscs = 1\n"))
    assert str(caught.value).endswith("unknown setting 'smscs'")
    with pytest.raises(ConfigError) as caught:
        Settings.load(
            env={}, config_file=_toml(tmp_path, '[[smsc]]\nhost = "h"\n[[smsc]]\nhots = 1\n')
        )
    assert str(caught.value).endswith("[[smsc]] #2 has unknown keys ['hots']")
    with pytest.raises(ConfigError, match="setting max_parts: 'x' is not a valid int"):
        Settings.load(env={}, config_file=_toml(tmp_path, 'max_parts = "x"\n'))


def test_smsc_tables_are_named_in_order_and_validated(tmp_path: Path) -> None:
    config = _toml(
        tmp_path,
        '[[smsc]]\nhost = "a"\nbinds = 3\n[[smsc]]\nname = "site-b"\nhost = "b"\ntps = 50\n',
    )
    settings = Settings.load(env={}, config_file=config)
    assert [(s.name, s.host, s.binds, s.tps) for s in settings.smscs] == [
        ("smsc1", "a", 3, 0.0),
        ("site-b", "b", 2, 50),
    ]
    with pytest.raises(ConfigError, match="smsc 'smsc1': window must be at least 1"):
        Settings.load(env={}, config_file=_toml(tmp_path, "[[smsc]]\nwindow = 0\n"))


def test_smsc_urls_in_the_environment_replace_the_file_tables(tmp_path: Path) -> None:
    config = _toml(tmp_path, '[[smsc]]\nhost = "file"\n')
    env = {
        "BROADCASTER_CONFIG": str(config),
        "BROADCASTER_SMSC_URL": "smpp://a:b@h1:2776?binds=3, ,smpp://h2",
    }
    smscs = Settings.load(env=env).smscs
    assert [(s.name, s.host, s.port, s.system_id, s.password, s.binds) for s in smscs] == [
        ("smsc1", "h1", 2776, "a", "b", 3),
        ("smsc3", "h2", 2775, "broadcaster", "", 2),
    ]


def test_smsc_url_fields_and_coercion() -> None:
    config = SmscConfig.from_url(
        " smpp://sys%40id:p%3Ass@example.org:2780?binds=4&tps=12.5&window=8&bind_mode=transmitter"
        "&registered_delivery=0&source_addr=INFO&system_type= "
    )
    assert config == SmscConfig(
        name="example.org:2780",
        host="example.org",
        port=2780,
        system_id="sys@id",
        password="p:ss",
        binds=4,
        tps=12.5,
        window=8,
        bind_mode="transmitter",
        registered_delivery=0,
        source_addr="INFO",
        system_type="",
    )
    assert SmscConfig.from_url("smpp://h", name="x").name == "x"
    assert SmscConfig.from_url("smpp://u:@h").password == ""
    assert SmscConfig.from_url("smpp://h").name == "h:2775"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "http://h:1",
            "SMSC URL 'http://h:1' is not of the form smpp://system_id:password@host:port",
        ),
        (
            "smpp://:1",
            "SMSC URL 'smpp://:1' is not of the form smpp://system_id:password@host:port",
        ),
        ("smpp://h?colour=red", "SMSC URL 'smpp://h?colour=red': unknown parameter 'colour'"),
        ("smpp://h?host=x", "SMSC URL 'smpp://h?host=x': unknown parameter 'host'"),
        ("smpp://h?password=x", "SMSC URL 'smpp://h?password=x': unknown parameter 'password'"),
        ("smpp://h?binds=two", "setting binds: 'two' is not a valid int"),
        ("smpp://h?binds=0", "smsc 'h:2775': binds must be at least 1"),
        ("smpp://h?tps=-1", "smsc 'h:2775': tps must be 0 (no limit) or positive"),
        (
            "smpp://h?response_timeout_s=0",
            "smsc 'h:2775': response_timeout_s must be positive (seconds)",
        ),
        (
            "smpp://h?bind_mode=outbind",
            "smsc 'h:2775': bind_mode must be one of transmitter, transceiver, receiver,"
            " not 'outbind'",
        ),
        ("smpp://h?receivers=-1", "smsc 'h:2775': receivers must be 0 or more"),
    ],
)
def test_bad_smsc_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SmscConfig.from_url(url)
    assert str(caught.value) == message


def test_transmit_and_receive_binds_of_an_smsc() -> None:
    split = SmscConfig.from_url("smpp://h?bind_mode=transmitter&binds=3&receivers=1")
    assert (split.transmit_binds, split.receive_binds) == (3, 1)
    assert (SmscConfig(binds=2).transmit_binds, SmscConfig(binds=2).receive_binds) == (2, 2)
    receiver = SmscConfig.from_url("smpp://h?bind_mode=receiver&binds=2")
    assert (receiver.transmit_binds, receiver.receive_binds) == (0, 2)


def test_an_smsc_needs_a_host() -> None:
    with pytest.raises(ConfigError, match="smsc 'x': host is empty"):
        SmscConfig(name="x", host="")


@pytest.mark.parametrize("zone", ["Europe/Pariss", "../../etc/passwd", "Paris", "UTC+2"])
def test_a_time_zone_nobody_can_read_is_refused_when_the_settings_load(zone: str) -> None:
    """Refused at load (`check`, `serve` at start), not at each console page and report."""
    with pytest.raises(ConfigError, match="is not an IANA time zone name"):
        Settings.load(env={"BROADCASTER_TIMEZONE": zone})


@pytest.mark.parametrize("zone", ["", "Europe/Paris", "Indian/Reunion", "UTC"])
def test_a_readable_time_zone_or_none_loads(zone: str) -> None:
    assert Settings.load(env={"BROADCASTER_TIMEZONE": zone}).display_timezone == zone
