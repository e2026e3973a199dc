"""The drill report as a plain-text table, for the terminal (pure)."""

from __future__ import annotations

from broadcaster.drills.report import Breakdown, DrillReport


def render_report_text(report: DrillReport) -> str:
    """A verdict line, the per-SMSC and per-area table, then each failed check."""
    info = report.info
    t = report.thresholds
    head = (
        f"drill {info.drill_id}"
        + (f" ({info.schedule})" if info.schedule else "")
        + f": {report.verdict.upper()}; broadcast {info.state}, {info.planned_parts:,} part(s) "
        f"planned; threshold {t.min_delivered_ratio:.1%} delivered within "
        f"{t.delivery_within_s:g} s, p95 accept <= {t.max_accept_p95_s:g} s"
    )
    columns = (
        f"  {'scope':<18} {'sent':>6} {'accepted':>8} {'failed':>6} {'delivered':>9} "
        f"{'in time':>8} {'ratio':>7}  {'accept p50/p95/max s':<22} delivery p50/p95/max s"
    )
    lines = [head, "", columns]
    lines.append(_row("all", report.total))
    lines += [_row(f"smsc {b.name}", b) for b in report.by_smsc]
    lines += [_row(f"area {b.name}", b) for b in report.by_area]
    problems = {**report.total.failed_by_status, **report.total.undelivered_by_stat}
    if problems:
        lines.append("")
        lines += [f"  not delivered: {k}: {v:,}" for k, v in problems.items()]
    failures = report.failures
    lines.append("")
    if report.pending and report.open_until is not None:
        lines.append(
            f"  PENDING: its delivery window is open until {report.open_until:%Y-%m-%d %H:%M:%S} "
            "UTC; receipts may still come in time: read the report again after it"
        )
        lines += [f"  not yet {c.message}" for c in failures]
    elif failures:
        lines += [f"  FAILED {c.message}" for c in failures]
    else:
        lines.append(f"  all {len(report.checks)} checks passed")
    return "\n".join(lines)


def _row(scope: str, b: Breakdown) -> str:
    failed = sum(b.failed_by_status.values())
    return (
        f"  {scope[:18]:<18} {b.submitted:>6,} {b.accepted:>8,} {failed:>6,} {b.delivered:>9,} "
        f"{b.delivered_in_time:>8,} {b.delivered_ratio:>7.1%}  {b.time_to_accept.text():<22} "
        f"{b.time_to_delivery.text()}"
    )
