"""The human forms of a drill report: a self-contained HTML page with an SVG chart, and a table."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser

from broadcaster.drills.html import render_report_html
from broadcaster.drills.report import DrillInfo, DrillReport, PartRow, Thresholds, build_report
from broadcaster.drills.text import render_report_text

T0 = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)


def _report(lost_smsc: str | None = None, name: str = "sfr<b>") -> DrillReport:
    rows = []
    for i in range(40):
        smsc = "orange" if i % 2 else name
        sent = T0 + timedelta(seconds=i * 0.1)
        lost = smsc == lost_smsc
        rows.append(
            PartRow(
                msisdn=33600000000 + i,
                part=1,
                departement="75" if i < 20 else "13",
                smsc=smsc,
                status=0,
                submitted_at=sent,
                answered_at=sent + timedelta(milliseconds=5),
                receipt_stat=None if lost else "DELIVRD",
                receipt_at=None if lost else sent + timedelta(seconds=1 + i),
            )
        )
    info = DrillInfo(7, "completed", "drill", 40, 40, T0, T0 + timedelta(seconds=5), "monthly")
    return build_report(info, rows, Thresholds())


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs


def test_the_page_is_self_contained_with_one_line_per_smsc() -> None:
    page = render_report_html(_report())
    parsed = _Collector()
    parsed.feed(page)
    assert page.startswith("<!DOCTYPE html>")
    assert "script" not in parsed.tags
    assert parsed.tags.count("polyline") == 2
    assert "svg" in parsed.tags
    external = [v for k, v in parsed.attrs if k in ("src", "href") and v]
    assert external == []
    assert "PASS" in page


def test_names_are_escaped() -> None:
    page = render_report_html(_report())
    assert "sfr<b>" not in page
    assert "sfr&lt;b&gt;" in page


def test_a_failing_smsc_is_shown_flat_and_marked() -> None:
    report = _report(lost_smsc="orange")
    page = render_report_html(report)
    assert "FAIL" in page
    assert "orange (0/20)" in page
    assert re.search(r'<tr class="bad"><td>orange</td>', page)


def test_the_table_names_the_verdict_and_each_failure() -> None:
    text = render_report_text(_report(lost_smsc="orange"))
    assert text.splitlines()[0].startswith("drill 7 (monthly): FAIL")
    assert "smsc orange" in text
    assert "FAILED smsc orange: 0.0% of 20 part(s) delivered within 300 s" in text
    assert "no receipt: 20" in text
    passing = render_report_text(_report())
    assert "checks passed" in passing
