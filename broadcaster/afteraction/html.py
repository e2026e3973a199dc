"""The after-action report as one self-contained HTML page: inline CSS, inline SVG (the delivery
curve and a per-area chart), no script, no external asset, as the drill report (drills/html.py);
it can be mailed, archived or served as is."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import escape
from typing import Any

from broadcaster.afteraction.text import COLUMNS, follow_up_lines, not_reached_detail
from broadcaster.domain.localtime import local_short
from broadcaster.drills.html import CSS

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 16, 40
LINES = (("accepted", "#1f77b4", "parts accepted"), ("delivered", "#2ca02c", "parts delivered"))


def _curve_svg(report: dict[str, Any]) -> str:
    curve = report["curve"]
    if not curve["start"] or not curve["accepted"]:
        return '<p class="muted">No part was sent.</p>'
    start = datetime.fromisoformat(curve["start"])
    count = len(curve["accepted"])
    top = max(report["totals"]["parts_accepted"], max(curve["accepted"]), 1)
    w, h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xy(i: int, n: int) -> str:
        return f"{LEFT + w * (i + 1) / count:.1f},{TOP + h * (1 - n / top):.1f}"

    out = [f'<svg width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="delivery curve">']
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{w}" height="{h}" fill="none" stroke="#ccc"/>')
    for frac in (0, 0.5, 1):
        y = TOP + h * (1 - frac)
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{top * frac:,.0f}</text>'
        )
    for i in (0, count // 2, count - 1):
        at = start + timedelta(seconds=curve["step_s"] * (i + 1))
        x = LEFT + w * (i + 1) / count
        label = escape(local_short(at, report["time_zone"]))
        out.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{label}</text>'
        )
    for n, (key, colour, name) in enumerate(LINES):
        points = " ".join(xy(i, v) for i, v in enumerate(curve[key]))
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        y = TOP + 14 + 18 * n
        out.append(
            f'<rect x="{WIDTH - RIGHT + 12}" y="{y - 9}" width="12" height="3" fill="{colour}"/>'
        )
        out.append(f'<text x="{WIDTH - RIGHT + 30}" y="{y - 4}">{escape(name)}</text>')
    zone = escape(report["time_zone"])
    out.append(f'<text x="{LEFT}" y="{HEIGHT - 6}" class="muted">time ({zone})</text>')
    out.append("</svg>")
    return "".join(out)


def _areas_svg(report: dict[str, Any]) -> str:
    areas = report["per_area"]
    if not areas:
        return ""
    bar, gap, label_w = 18, 8, 220
    height = TOP + len(areas) * (bar + gap) + 20
    top = max(max(a["recipients"] for a in areas), 1)
    w = WIDTH - label_w - 40
    out = [f'<svg width="{WIDTH}" height="{height}" role="img" aria-label="per-area chart">']
    for i, a in enumerate(areas):
        y = TOP + i * (bar + gap)
        reached = w * a["reached"] / top
        missed = w * a["not_reached"] / top
        out.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">'
            f"{escape(a['name'])} ({escape(a['key'])})</text>"
        )
        out.append(
            f'<rect x="{label_w}" y="{y}" width="{reached:.1f}" height="{bar}" fill="#2e7d32"/>'
        )
        out.append(
            f'<rect x="{label_w + reached:.1f}" y="{y}" width="{missed:.1f}" height="{bar}" '
            'fill="#c62828"/>'
        )
        pct = a["reached"] / a["recipients"] if a["recipients"] else 0
        out.append(f'<text x="{label_w + reached + missed + 6:.1f}" y="{y + 13}">{pct:.1%}</text>')
    out.append(
        f'<text x="{label_w}" y="{height - 4}" class="muted">green: reached (every part '
        "accepted); red: not reached</text></svg>"
    )
    return "".join(out)


def _most_first(counts: dict[str, int]) -> str:
    """`UNDELIV: 3; EXPIRED: 1`: the most first, the same order on every row."""
    return "; ".join(f"{k}: {n:,}" for k, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])))


def _table(rows: list[dict[str, Any]], label: str) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for _k, name in COLUMNS)
    body = []
    for r in rows:
        name = f"{r['name']} ({r['key']})" if r["name"] != r["key"] else r["key"]
        reasons = _most_first(r["failed_by_reason"])
        stats = _most_first(r["undelivered_by_stat"])
        cls = ' class="bad"' if r["not_reached"] else ""
        body.append(
            f"<tr{cls}><td>{escape(name)}</td>"
            + "".join(f'<td class="n">{r.get(k, 0):,}</td>' for k, _n in COLUMNS)
            + f"<td>{escape(stats) or '-'}</td><td>{escape(reasons) or '-'}</td></tr>"
        )
    return (
        f"<table><tr><th>{escape(label)}</th>{head}<th>not delivered, by receipt</th>"
        "<th>failed by reason</th></tr>" + "".join(body) + "</table>"
    )


def render_html(report: dict[str, Any]) -> str:
    """The whole page for one broadcast's after-action report."""
    t = report["totals"]
    kind = "LIVE" if report["kind"] == "live" else "DRILL (exercise)"
    title = f"Broadcast {report['broadcast_id']} [{kind}]: after-action report"
    areas = ", ".join(f"{a['name']} ({a['code']})" for a in report["areas"])
    texts = "".join(
        f"<tr><td>{escape(g['departement'])}</td><td>{escape(g['lang'])}</td>"
        f'<td>{escape(g["encoding"])}</td><td class="n">{g["parts"]}</td>'
        f'<td class="n">{g["recipients"]:,}</td><td dir="auto">{escape(g["body"])}</td></tr>'
        for g in report["texts"]
    )
    timeline = "".join(
        f"<tr><td>{escape(e['event'])}</td><td>{escape(e['at_local'])}</td>"
        f"<td>{escape(e.get('by') or '')}</td></tr>"
        for e in report["timeline"]
    )
    smscs = "".join(
        f'<tr><td>{escape(s["smsc"])}</td><td class="n">{s["parts_accepted"]:,}</td>'
        f'<td class="n">{s["parts_delivered"]:,}</td>'
        f'<td class="n">{s["parts_undelivered"]:,}</td>'
        f'<td class="n">{s["parts_awaiting_receipt"]:,}</td>'
        f'<td class="n">{s["parts_failed"]:,}</td>'
        f"<td>{escape(_most_first(s['undelivered_by_stat']))}</td>"
        f"<td>{escape('; '.join(f'{k}: {v:,}' for k, v in s['failed_by_reason'].items())) or '-'}"
        "</td></tr>"
        for s in report["per_smsc"]
    )
    return "".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="muted">{escape(report["template"])}: {escape(report["state"])}; areas '
            f"{escape(areas)}; times in {escape(report['time_zone'])}</p>",
            *(f'<p class="muted">{escape(line)}</p>' for line in follow_up_lines(report)),
            f"<p><b>{t['recipients']:,}</b> recipients: <b>{t['reached']:,}</b> reached "
            f"(every part accepted by the SMSC), of whom <b>{t['delivered']:,}</b> delivered "
            f"(every part receipted DELIVRD) and <b>{t['undelivered']:,}</b> not delivered (a "
            f"receipt says so); <b>{t['not_reached']:,}</b> not reached"
            f"{escape(not_reached_detail(t))}.</p>",
            f"<p>{t['parts_accepted']:,} parts accepted: {t['parts_delivered']:,} delivered, "
            f"{t['parts_undelivered']:,} not delivered (receipts), "
            f"{t['parts_awaiting_receipt']:,} awaiting a receipt; {t['parts_failed']:,} failed "
            f"(refused or unanswered); {t['possibly_sent_twice']:,} possibly sent twice.</p>",
            "<h2>Texts as sent</h2><table><tr><th>area</th><th>language</th><th>encoding</th>"
            f"<th>parts</th><th>recipients</th><th>text</th></tr>{texts}</table>",
            "<h2>Timeline</h2><table><tr><th>event</th><th>when</th><th>by</th></tr>"
            f"{timeline}</table>",
            "<h2>Delivery curve</h2>",
            _curve_svg(report),
            "<h2>Per area</h2>",
            _areas_svg(report),
            _table(report["per_area"], "area"),
            "<h2>Per SMSC</h2><table><tr><th>SMSC</th><th>parts accepted</th>"
            "<th>parts delivered</th><th>not delivered</th><th>awaiting receipt</th>"
            "<th>parts failed</th><th>not delivered, by receipt</th><th>failed by reason</th>"
            "</tr>"
            f"{smscs}</table>",
            "<h2>Per language</h2>",
            _table(report["per_language"], "language"),
            "</body></html>",
        ]
    )
