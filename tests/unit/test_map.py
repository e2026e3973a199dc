"""The console map's pure parts: which selected cells are drawn when there are too many, and the
optional tile server (only an https URL template with {z}, {x} and {y}; its host, nothing else,
joins the console's img-src)."""

from __future__ import annotations

import pytest

from broadcaster.errors import ConfigError
from broadcaster.settings import Settings
from broadcaster.store.maps import spread
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


def test_the_cells_drawn_are_spread_over_the_selection_and_stable() -> None:
    cells = [f"S33-{n:05d}-{sector}" for n in range(2500) for sector in range(3)]
    drawn = spread(cells[::-1], 1000)
    assert len(drawn) <= 1000 and len(drawn) > 900
    assert drawn == spread(cells, 1000)  # whatever the order given
    assert drawn[0] == cells[0] and drawn[-1] > "S33-02490"  # first to last site
    assert spread(cells[:10], 1000) == cells[:10]
    assert spread(cells, 0) == []
