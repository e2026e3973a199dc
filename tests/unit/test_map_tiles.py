"""The map's optional tile server: only an https URL template with {z}, {x} and {y} is accepted,
and its host (nothing else) joins the console's img-src."""

from __future__ import annotations

import pytest

from broadcaster.errors import ConfigError
from broadcaster.settings import Settings
from broadcaster.web.security import CSP, policy


def test_no_tile_server_keeps_the_policy_as_it_is() -> None:
    assert Settings.load(env={}).map_tiles_url == ""
    assert policy("") == CSP


def test_a_tile_server_joins_img_src_only() -> None:
    url = "https://tiles.example.net:8443/osm/{z}/{x}/{y}.png"
    settings = Settings.load(env={"BROADCASTER_MAP_TILES_URL": url})
    assert settings.map_tiles_url == url
    csp = policy(url)
    assert "img-src 'self' data: https://tiles.example.net:8443;" in csp
    assert csp.replace(" https://tiles.example.net:8443", "") == CSP


@pytest.mark.parametrize(
    "url",
    [
        "http://tiles.example.net/{z}/{x}/{y}.png",  # not https
        "https://tiles.example.net/{z}/{x}.png",  # no {y}
        "https://{s}.tiles.example.net/{z}/{x}/{y}.png",  # host pattern: one host only
        "https://tiles.example.net/{z}/{x}/{y}.png; script-src *",  # widening the policy
        "https://tiles.example.net/{z}/{x}/{y}.png' x",
    ],
)
def test_other_tile_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="map_tiles_url"):
        Settings.load(env={"BROADCASTER_MAP_TILES_URL": url})
