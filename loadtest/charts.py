"""Small hand-written SVG charts for the load test report: bars and lines, no dependency.

Each function returns the SVG document as a string; `loadtest.report` writes them next to the
markdown that shows them. Colours are fixed per role so the charts read alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

WIDTH = 720
HEIGHT = 340
MARGIN_LEFT = 80
MARGIN_RIGHT = 24
MARGIN_TOP = 44
MARGIN_BOTTOM = 70
FONT = "font-family='DejaVu Sans, Arial, sans-serif'"

OURS = "#1f77b4"
THEIRS = "#ff7f0e"
TARGET = "#d62728"
GOOD = "#2ca02c"
GREY = "#7f7f7f"
PALETTE = (OURS, THEIRS, GOOD, "#9467bd", "#8c564b", "#e377c2", GREY)


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    color: str = OURS
    note: str = ""
    """Printed above the bar (default: the value)."""


@dataclass(frozen=True)
class Line:
    """A horizontal (`Rule`) or vertical (`Mark`) reference line."""

    at: float
    label: str
    color: str = TARGET
    dashed: bool = True
    left: bool = False
    """Label at the left end (default: the right end)."""


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str = OURS
    step: bool = False
    """Draw as a step function (a capacity that changes at instants)."""


@dataclass
class _Canvas:
    title: str
    parts: list[str] = field(default_factory=list)

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(
        self,
        x: float,
        y: float,
        content: str,
        *,
        size: int = 12,
        anchor: str = "middle",
        color: str = "#222",
        weight: str = "normal",
        rotate: float | None = None,
    ) -> None:
        transform = f" transform='rotate({rotate:g} {x:.1f} {y:.1f})'" if rotate else ""
        self.add(
            f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' "
            f"fill='{color}' font-weight='{weight}'{transform}>{escape(content)}</text>"
        )

    def line(
        self, x1: float, y1: float, x2: float, y2: float, color: str, *, dashed: bool = False
    ) -> None:
        dash = " stroke-dasharray='6 4'" if dashed else ""
        self.add(
            f"<line x1='{x1:.1f}' y1='{y1:.1f}' x2='{x2:.1f}' y2='{y2:.1f}' "
            f"stroke='{color}' stroke-width='1.5'{dash}/>"
        )

    def render(self) -> str:
        body = "\n".join(self.parts)
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{HEIGHT}' "
            f"viewBox='0 0 {WIDTH} {HEIGHT}' {FONT}>\n"
            f"<rect width='{WIDTH}' height='{HEIGHT}' fill='white'/>\n"
            f"<text x='{WIDTH / 2:.1f}' y='24' font-size='15' text-anchor='middle' "
            f"font-weight='bold' fill='#222'>{escape(self.title)}</text>\n{body}\n</svg>\n"
        )


def nice_scale(value: float, ticks: int = 4) -> tuple[float, float]:
    """(top, step): a round step (1, 2, 2.5 or 5 times a power of ten) that reaches `value`
    in about `ticks` steps, and the first multiple of it at or above `value`."""
    if value <= 0:
        return 1.0, 0.25
    rough = value / ticks
    power = 10.0 ** math.floor(math.log10(rough))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if rough <= m * power)
    return math.ceil(value / step - 1e-9) * step, step


def fmt(value: float) -> str:
    """12,345 / 1.23 / 0.5: short, readable numbers for labels."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}".rstrip("0").rstrip(".")
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _y_axis(canvas: _Canvas, top: float, step: float, unit: str) -> tuple[float, float, float]:
    """Grid lines and labels for 0..top; returns (plot top, plot bottom, plot height)."""
    y0 = HEIGHT - MARGIN_BOTTOM
    height = y0 - MARGIN_TOP
    for i in range(round(top / step) + 1):
        value = step * i
        y = y0 - height * value / top
        canvas.line(MARGIN_LEFT, y, WIDTH - MARGIN_RIGHT, y, "#e5e5e5")
        canvas.text(MARGIN_LEFT - 6, y + 4, fmt(value), size=11, anchor="end", color="#555")
    canvas.text(16, MARGIN_TOP + height / 2, unit, size=11, rotate=-90, color="#555")
    canvas.line(MARGIN_LEFT, y0, WIDTH - MARGIN_RIGHT, y0, "#555")
    return MARGIN_TOP, y0, height


def _rule_label(canvas: _Canvas, rule: Line, left: float, right: float, y: float) -> None:
    if rule.left:
        canvas.text(left + 4, y - 5, rule.label, size=11, anchor="start", color=rule.color)
    else:
        canvas.text(right - 4, y - 5, rule.label, size=11, anchor="end", color=rule.color)


def bar_chart(title: str, bars: Sequence[Bar], unit: str, rules: Sequence[Line] = ()) -> str:
    """Vertical bars from zero, with optional horizontal reference lines (targets)."""
    canvas = _Canvas(title)
    top, step = nice_scale(max([b.value for b in bars] + [r.at for r in rules] + [0.0]) * 1.08)
    _, y0, height = _y_axis(canvas, top, step, unit)
    width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    slot = width / max(1, len(bars))
    bar_width = min(120.0, slot * 0.6)
    for i, bar in enumerate(bars):
        x = MARGIN_LEFT + slot * i + (slot - bar_width) / 2
        h = height * max(0.0, bar.value) / top
        canvas.add(
            f"<rect x='{x:.1f}' y='{y0 - h:.1f}' width='{bar_width:.1f}' height='{h:.1f}' "
            f"fill='{bar.color}'/>"
        )
        canvas.text(x + bar_width / 2, y0 - h - 6, bar.note or fmt(bar.value), size=12)
        canvas.text(x + bar_width / 2, y0 + 18, bar.label, size=12)
    for rule in rules:
        y = y0 - height * rule.at / top
        canvas.line(MARGIN_LEFT, y, WIDTH - MARGIN_RIGHT, y, rule.color, dashed=rule.dashed)
        _rule_label(canvas, rule, MARGIN_LEFT, WIDTH - MARGIN_RIGHT, y)
    return canvas.render()


def line_chart(
    title: str,
    series: Sequence[Series],
    x_label: str,
    unit: str,
    rules: Sequence[Line] = (),
    marks: Sequence[Line] = (),
) -> str:
    """Lines over a shared x axis from 0, with horizontal rules and vertical marks."""
    canvas = _Canvas(title)
    xs = [x for s in series for x, _ in s.points] + [m.at for m in marks]
    ys = [y for s in series for _, y in s.points] + [r.at for r in rules]
    right, x_step = nice_scale(max([*xs, 1.0]), 8)
    top, step = nice_scale(max([*ys, 1.0]) * 1.08)
    _, y0, height = _y_axis(canvas, top, step, unit)
    width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT

    def px(x: float) -> float:
        return MARGIN_LEFT + width * x / right

    def py(y: float) -> float:
        return y0 - height * max(0.0, y) / top

    for i in range(round(right / x_step) + 1):
        x = x_step * i
        canvas.text(px(x), y0 + 16, fmt(x), size=11, color="#555")
    canvas.text(MARGIN_LEFT + width / 2, y0 + 34, x_label, size=11, color="#555")
    for rule in rules:
        canvas.line(px(0), py(rule.at), px(right), py(rule.at), rule.color, dashed=rule.dashed)
        _rule_label(canvas, rule, px(0), px(right), py(rule.at))
    for mark in marks:
        canvas.line(px(mark.at), py(top), px(mark.at), y0, mark.color, dashed=mark.dashed)
        canvas.text(
            px(mark.at) + 4, MARGIN_TOP + 12, mark.label, size=11, anchor="start", color=mark.color
        )
    legend_x = MARGIN_LEFT + 8
    for s in series:
        if not s.points:
            continue
        coords: list[str] = []
        previous: tuple[float, float] | None = None
        for x, y in s.points:
            if s.step and previous is not None:
                coords.append(f"{px(x):.1f},{py(previous[1]):.1f}")
            coords.append(f"{px(x):.1f},{py(y):.1f}")
            previous = (x, y)
        dash = " stroke-dasharray='6 4'" if s.step else ""
        canvas.add(
            f"<polyline points='{' '.join(coords)}' fill='none' stroke='{s.color}' "
            f"stroke-width='2'{dash}/>"
        )
        canvas.add(
            f"<rect x='{legend_x:.1f}' y='{y0 + 47:.1f}' width='12' height='4' fill='{s.color}'/>"
        )
        canvas.text(legend_x + 16, y0 + 53, s.name, size=11, anchor="start")
        legend_x += 24 + 7 * len(s.name)
    return canvas.render()
