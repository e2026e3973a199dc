"""Where drill webhooks may go (`drills.config.WebhookPolicy`, pure), how a webhook URL is
shown (`mask_url`), and the JSON depth pre-scan (`http.schemas.json_depth`): issue 19."""

from __future__ import annotations

import json

import pytest

from broadcaster.drills.config import (
    DrillSettings,
    WebhookPolicy,
    WebhookRefusedError,
    mask_url,
    public_address,
)
from broadcaster.errors import ConfigError
from broadcaster.http.schemas import MAX_JSON_DEPTH, json_depth


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1::", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # shared (carrier-grade NAT)
        ("0.0.0.0", False),  # noqa: S104 - an address checked, not bound
        ("224.0.0.1", False),
        ("240.0.0.1", False),  # reserved
        ("::1", False),
        ("fe80::1%eth0", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped loopback
        ("not-an-address", False),
    ],
)
def test_only_public_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert public_address(address) is public


def test_without_an_allow_list_only_https_to_public_destinations_pass() -> None:
    policy = WebhookPolicy()
    assert policy.check_url("https://hooks.example/x?t=1") == "https://hooks.example/x?t=1"
    for url in (
        "http://hooks.example/",
        "https://127.0.0.1/",
        "https://[::1]/",
        "https://localhost:8443/",
        "https://db.internal/",
    ):
        with pytest.raises(WebhookRefusedError, match="refused by policy"):
            policy.check_url(url)
    with pytest.raises(WebhookRefusedError, match="non-public"):
        policy.check_addresses("https://hooks.example/", ["93.184.216.34", "10.0.0.1"])
    assert policy.check_addresses("https://hooks.example/", ["93.184.216.34"]) == ["93.184.216.34"]


def test_allowed_origins_pass_whatever_their_address() -> None:
    policy = WebhookPolicy.parse(
        ["http://10.1.2.3:8080", "http://127.0.0.1:*", "https://Hooks.Lan"]
    )
    assert policy.check_url("http://10.1.2.3:8080/alarms") == "http://10.1.2.3:8080/alarms"
    assert policy.check_url("http://127.0.0.1:4567/x")
    assert policy.check_addresses("https://hooks.lan/a", ["192.168.0.9"]) == ["192.168.0.9"]
    with pytest.raises(WebhookRefusedError):
        policy.check_url("http://10.1.2.3:8081/alarms")  # another port
    with pytest.raises(WebhookRefusedError):
        policy.check_url("https://10.1.2.3:8080/alarms")  # another scheme


@pytest.mark.parametrize("entry", ["ftp://x", "https://x/path", "https://u:p@x", "nonsense"])
def test_a_bad_allow_list_entry_is_a_configuration_error(entry: str) -> None:
    with pytest.raises(ConfigError, match="BROADCASTER_WEBHOOK_ALLOW"):
        WebhookPolicy.parse([entry])


def test_the_global_webhooks_origin_is_allowed() -> None:
    config = DrillSettings.from_env(
        {
            "BROADCASTER_DRILL_WEBHOOK_URL": "http://10.9.9.9:9000/alarms",
            "BROADCASTER_WEBHOOK_ALLOW": "https://a.example, http://127.0.0.1:*",
        }
    )
    assert config.webhook_policy.allowed("http://10.9.9.9:9000/other")
    assert config.webhook_policy.allowed("https://a.example/hook")
    assert not config.webhook_policy.allowed("http://10.9.9.9:9001/alarms")


def test_a_masked_url_keeps_only_scheme_host_and_port() -> None:
    assert (
        mask_url("https://u:secret@hooks.example:8443/p?token=t") == "https://hooks.example:8443/…"
    )
    assert mask_url("https://hooks.example/p") == "https://hooks.example/…"
    assert mask_url("http://[::1]:80/x") == "http://[::1]:80/…"
    assert mask_url(None) is None


def test_json_depth_counts_brackets_outside_strings_without_recursing() -> None:
    assert json_depth("{}") == 1
    assert json_depth('{"a": [{"b": 1}]}') == 3
    assert json_depth(json.dumps({"a": "[[[[{{{{", "b": '\\"[['})) == 1
    assert json_depth("[" * 100_000) == 100_000  # no RecursionError
    deep = json.dumps({"v": [[[[1]]]]})
    assert json_depth(deep) == 5 <= MAX_JSON_DEPTH
