"""The drill report as one self-contained HTML page (pure): inline CSS and an inline SVG chart of
deliveries over time per SMSC; no script, no external asset, so it can be mailed, archived or
served as is (the web console reuses `render_report_html`).
"""

from __future__ import annotations

from html import escape

from broadcaster.drills.report import Breakdown, DrillReport, Timings

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 56, 200, 20, 44
STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 43200, 86400)
"""Candidate seconds between two x-axis ticks."""
MAX_TICKS = 6

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#222;
max-width:64rem}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
.verdict{display:inline-block;padding:.15rem .6rem;border-radius:.3rem;color:#fff;font-weight:700}
.pass{background:#2e7d32}.fail{background:#c62828}.pending{background:#8a6d00}
table{border-collapse:collapse;font-size:.9rem;display:block;max-width:100%;overflow-x:auto}
td,th{border:1px solid #ccc;padding:.25rem .5rem}
th{background:#f3f3f3;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.bad td{background:#fdecea}.muted{color:#666;font-size:.85rem}
svg text{font-size:11px;fill:#333}
"""


def render_report_html(report: DrillReport) -> str:
    """The whole page for one drill report."""
    info = report.info
    title = f"Drill {info.drill_id}" + (f" ({info.schedule})" if info.schedule else "")
    t = report.thresholds
    verdict = report.verdict
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}: {verdict.upper()}</title>",
        f"<style>{CSS}</style></head><body>",
        f'<h1>{escape(title)} <span class="verdict {verdict}">{verdict.upper()}</span></h1>',
        '<p class="muted">'
        + escape(
            f"template {info.template}; areas {', '.join(info.areas) or '-'}; broadcast "
            f"{info.state}; {info.planned_parts:,} part(s) planned to {info.recipients:,} "
            f"test-group recipient(s); started {_when(info.started_at)}, finished "
            f"{_when(info.finished_at)}"
        )
        + "</p>",
        "<p>"
        + escape(
            f"Thresholds: at least {t.min_delivered_ratio:.1%} of parts delivered within "
            f"{t.delivery_within_s:g} s (overall, per SMSC, per area); p95 time to accept at "
            f"most {t.max_accept_p95_s:g} s."
        )
        + "</p>",
        "<h2>Checks</h2>",
        _checks_table(report),
        "<h2>Deliveries over time</h2>",
        render_chart_svg(report),
        "<h2>Per SMSC</h2>",
        _breakdown_table(report, report.by_smsc, "SMSC"),
        "<h2>Per area</h2>",
        _breakdown_table(report, report.by_area, "area"),
        "<h2>Overall</h2>",
        _breakdown_table(report, (report.total,), "scope"),
        _problems(report.total),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def render_chart_svg(report: DrillReport) -> str:
    """Cumulative share of each SMSC's parts delivered, against seconds since the drill began;
    dashed lines mark the delivery window and the required ratio."""
    t = report.thresholds
    submitted = {b.name: b.submitted for b in report.by_smsc}
    series = {name: pts for name, pts in report.timeline.items() if submitted.get(name)}
    last = max((pts[-1][0] for pts in series.values() if pts), default=0.0)
    x_max = max(last, t.delivery_within_s) * 1.05 or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(seconds: float) -> float:
        return LEFT + plot_w * seconds / x_max

    def y(share: float) -> float:
        return TOP + plot_h * (1 - share)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="deliveries over time per SMSC">',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
        'stroke="#bbb"/>',
    ]
    for share in (0.0, 0.25, 0.5, 0.75, 1.0):
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(share):.1f}" y2="{y(share):.1f}" '
            'stroke="#e4e4e4"/>'
            f'<text x="{LEFT - 6}" y="{y(share) + 4:.1f}" text-anchor="end">{share:.0%}</text>'
        )
    step = next((s for s in STEPS if x_max / s <= MAX_TICKS), STEPS[-1])
    for i in range(int(x_max // step) + 1):
        tick = i * step
        out.append(
            f'<text x="{x(tick):.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
            f"{_seconds(tick)}</text>"
        )
    out.append(
        f'<text x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
        "time since the drill started</text>"
    )
    wx, ry = x(t.delivery_within_s), y(t.min_delivered_ratio)
    out.append(
        f'<line x1="{wx:.1f}" x2="{wx:.1f}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#555" '
        'stroke-dasharray="4 3"/>'
        f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{ry:.1f}" y2="{ry:.1f}" stroke="#555" '
        'stroke-dasharray="4 3"/>'
    )
    for n, (name, points) in enumerate(sorted(series.items())):
        colour = PALETTE[n % len(PALETTE)]
        total = submitted[name]
        coords = [f"{x(0):.1f},{y(0):.1f}"]
        previous = 0
        for seconds, count in points:
            coords.append(f"{x(seconds):.1f},{y(previous / total):.1f}")
            coords.append(f"{x(seconds):.1f},{y(count / total):.1f}")
            previous = count
        coords.append(f"{x(x_max):.1f},{y(previous / total):.1f}")
        out.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2" '
            f'points="{" ".join(coords)}"><title>{escape(name)}</title></polyline>'
        )
        ly = TOP + 14 + 18 * n
        out.append(
            f'<rect x="{LEFT + plot_w + 12}" y="{ly - 9}" width="12" height="12" '
            f'fill="{colour}"/><text x="{LEFT + plot_w + 30}" y="{ly + 1}">'
            f"{escape(_short(name))} ({previous}/{total})</text>"
        )
    if not series:
        out.append(
            f'<text x="{LEFT + plot_w / 2:.1f}" y="{TOP + plot_h / 2:.1f}" '
            'text-anchor="middle">nothing was submitted</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _checks_table(report: DrillReport) -> str:
    rows = [
        f'<tr class="{"" if c.passed else "bad"}"><td>{"pass" if c.passed else "FAIL"}</td>'
        f"<td>{escape(c.scope)}</td><td>{escape(c.message)}</td></tr>"
        for c in report.checks
    ]
    return (
        "<table><tr><th>result</th><th>scope</th><th>check</th></tr>" + "".join(rows) + "</table>"
    )


def _breakdown_table(report: DrillReport, rows: tuple[Breakdown, ...], label: str) -> str:
    ratio = report.thresholds.min_delivered_ratio
    head = (
        f"<tr><th>{label}</th><th>submitted</th><th>accepted</th><th>failed</th>"
        "<th>delivered</th><th>in time</th><th>ratio</th><th>accept p50 / p95 / max</th>"
        "<th>delivery p50 / p95 / max</th></tr>"
    )
    body = "".join(
        f'<tr class="{"bad" if b.delivered_ratio < ratio else ""}"><td>{escape(b.name)}</td>'
        f'<td class="n">{b.submitted:,}</td><td class="n">{b.accepted:,}</td>'
        f'<td class="n">{sum(b.failed_by_status.values()):,}</td>'
        f'<td class="n">{b.delivered:,}</td><td class="n">{b.delivered_in_time:,}</td>'
        f'<td class="n">{b.delivered_ratio:.1%}</td><td class="n">{_timings(b.time_to_accept)}'
        f'</td><td class="n">{_timings(b.time_to_delivery)}</td></tr>'
        for b in rows
    )
    return f"<table>{head}{body}</table>"


def _problems(total: Breakdown) -> str:
    items = {**total.failed_by_status, **total.undelivered_by_stat}
    if not items:
        return ""
    listed = "".join(f"<li>{escape(k)}: {v:,}</li>" for k, v in items.items())
    return f"<h2>Not delivered</h2><ul>{listed}</ul>"


def _timings(t: Timings) -> str:
    return f"{t.text(' / ')} s" if t.count else "-"


def _seconds(value: float) -> str:
    if value < 120:
        return f"{value:.0f} s"
    return f"{value / 60:.0f} min" if value < 7200 else f"{value / 3600:.0f} h"


def _short(name: str, width: int = 18) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _when(value: object) -> str:
    return "-" if value is None else str(value)
