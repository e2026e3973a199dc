"""The pure parts of `send`'s live display: rate over a window, ETA, the panel's words."""

from __future__ import annotations

from rich.console import Console

from broadcaster.cli.terminal import Figures, RateMeter, eta_text, kind_banner, panel, plain_line
from broadcaster.smpp.pool import BindHealth, SmscHealth


def _figures(**overrides: object) -> Figures:
    values: dict[str, object] = dict(
        state="running",
        total=10_000,
        submitted=4_200,
        accepted=3_900,
        failed=100,
        throttled=7,
        rate=1_000.0,
        elapsed=4.0,
    )
    values.update(overrides)
    return Figures(**values)  # type: ignore[arg-type]


def test_rate_is_over_the_recent_window_not_the_whole_run() -> None:
    meter = RateMeter(window=3.0)
    assert meter.add(0.0, 0) == 0.0
    for t in range(1, 11):  # 1,000 parts/s for ten seconds...
        meter.add(float(t), t * 1000)
    for t in range(11, 15):  # ...then a stall
        rate = meter.add(float(t), 10_000)
    assert rate == 0.0  # a whole-run average would still say ~700/s


def test_eta_from_what_is_left_at_the_current_rate() -> None:
    assert _figures().eta_s == 6.0  # 6,000 parts left at 1,000/s
    assert _figures(rate=0.0).eta_s is None  # stalled: no honest ETA
    assert _figures(accepted=9_900, failed=100).eta_s == 0.0
    assert [eta_text(s) for s in (None, 12.4, 600, 7200)] == ["—", "12 s", "10 min", "2.0 h"]


def test_plain_line_has_every_count() -> None:
    line = plain_line(_figures())
    assert line == (
        "progress: 4,200 parts submitted, 3,900 accepted, 100 failed, 7 throttled, "
        "1,000 parts/s, ETA 6 s, 4.0 s [running]"
    )


def _render(renderable: object) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_panel_marks_live_and_drill_and_shows_each_smsc() -> None:
    bind = BindHealth(
        name="paris#1",
        state="bound",
        inflight=64,
        window=64,
        rate=500.0,
        ceiling=500.0,
        accepted_per_s=498.0,
        accepted=3_000,
        failed=0,
        throttled=7,
        timeouts=0,
        reconnects=0,
        last_error=None,
        retry_in=None,
    )
    lost = BindHealth(
        name="lyon#1",
        state="connecting",
        inflight=0,
        window=64,
        rate=0.0,
        ceiling=500.0,
        accepted_per_s=0.0,
        accepted=900,
        failed=0,
        throttled=0,
        timeouts=0,
        reconnects=2,
        last_error="connection reset by peer",
        retry_in=1.5,
    )
    health = (
        SmscHealth("paris", "up", 1, 1, (bind,), 498.0, 64, 3_000, 0, 7),
        SmscHealth("lyon", "down", 1, 0, (lost,), 0.0, 0, 900, 0, 0),
    )
    live = _render(panel(12, "live", "outage", _figures(), health))
    assert "LIVE ALERT — goes to the public" in live
    assert "broadcast 12 · outage · running" in live
    assert "4,000/10,000 parts" in live
    assert "throttled 7" in live
    assert "ETA 6 s" in live
    paris = next(line for line in live.splitlines() if line.startswith("paris"))
    assert paris.split()[:6] == ["paris", "up", "1/1", "498", "64", "7"]
    lyon = next(line for line in live.splitlines() if line.startswith("lyon"))
    assert "down" in lyon and "connection reset by peer" in lyon
    drill = _render(panel(13, "drill", "drill", _figures(), ()))
    assert "DRILL — EXERCISE, test group only" in drill
    assert "LIVE" not in drill
    assert kind_banner("live").style != kind_banner("drill").style
