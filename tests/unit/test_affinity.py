"""Pinned parts: kept per site, served oldest first, released once their site stays down."""

from __future__ import annotations

from broadcaster.smpp.affinity import SitePins


def test_parts_are_kept_per_site_and_taken_oldest_first() -> None:
    pins: SitePins[str] = SitePins([1.0, 1.0], now=0.0)
    for part in ("a1", "a2", "a3"):
        pins.pin(0, part)
    pins.pin(1, "b1")
    assert pins.count == 4
    assert pins.take(0, 2) == ["a1", "a2"]
    assert pins.take(1, 5) == ["b1"]  # never more than the site has
    assert pins.take(1, 5) == []
    assert pins.count == 1
    assert list(pins.queues[0]) == ["a3"]


def test_a_site_with_a_bound_session_keeps_its_parts_however_long() -> None:
    pins: SitePins[str] = SitePins([0.5, 0.5], now=0.0)
    pins.pin(0, "a1")
    for tick in range(1, 100):
        assert pins.release(tick * 0.1, up={0}) == {}
    assert pins.count == 1


def test_a_site_down_longer_than_its_patience_releases_its_parts() -> None:
    pins: SitePins[str] = SitePins([0.5, 2.0], now=0.0)
    assert pins.release(0.1, up={0, 1}) == {}  # both seen up at 0.1
    pins.pin(0, "a1")
    pins.pin(0, "a2")
    pins.pin(1, "b1")
    assert pins.release(0.5, up=set()) == {}  # down for 0.4 s: within both patiences
    assert pins.down_for(0, 0.5) == 0.4
    assert pins.release(0.7, up=set()) == {0: ["a1", "a2"]}  # 0.6 s > 0.5 s
    assert pins.count == 1
    assert pins.release(2.0, up=set()) == {}  # site 1 waits 2 s
    assert pins.release(2.2, up=set()) == {1: ["b1"]}
    assert pins.count == 0
    assert pins.release(5.0, up=set()) == {}  # nothing left to release


def test_a_site_that_comes_back_in_time_keeps_its_parts() -> None:
    pins: SitePins[str] = SitePins([0.5], now=0.0)
    pins.pin(0, "a1")
    assert pins.release(0.4, up=set()) == {}
    assert pins.release(0.45, up={0}) == {}  # back up: the clock starts again
    assert pins.release(0.9, up=set()) == {}
    assert pins.release(1.0, up=set()) == {0: ["a1"]}


def test_clear_forgets_every_pinned_part() -> None:
    pins: SitePins[int] = SitePins([1.0, 1.0, 1.0], now=0.0)
    pins.pin(2, 1)
    pins.pin(0, 2)
    assert sorted(pins.clear()) == [1, 2]
    assert pins.count == 0
    assert all(not queue for queue in pins.queues)
