"""The after-action report as text for a terminal (`broadcaster report ID`)."""

from __future__ import annotations

from typing import Any

COLUMNS = (
    ("recipients", "recipients"),
    ("reached", "reached"),
    ("delivered", "delivered"),
    ("not_reached", "not reached"),
    ("parts_accepted", "parts accepted"),
    ("parts_delivered", "parts delivered"),
    ("parts_undelivered", "not delivered"),
    ("parts_awaiting_receipt", "awaiting receipt"),
    ("parts_failed", "parts failed"),
    ("recorded_twice", "recorded twice"),
)
"""The tables' columns: recipients (reached: every part accepted by the SMSC; delivered: every
part receipted DELIVRD), then parts (accepted = delivered + not delivered + awaiting receipt)."""


def _table(title: str, rows: list[dict[str, Any]], label: str) -> list[str]:
    head = f"  {label:<28}" + "".join(f" {name:>16}" for _k, name in COLUMNS)
    lines = [title, head]
    for r in rows:
        name = f"{r['key']} {r['name']}" if r["name"] != r["key"] else r["key"]
        lines.append(f"  {name[:28]:<28}" + "".join(f" {r.get(k, 0):>16,}" for k, _n in COLUMNS))
        for why, n in sorted(r["failed_by_reason"].items(), key=lambda x: -x[1]):
            lines.append(f"      failed {why}: {n:,}")
        for stat, n in sorted(r["undelivered_by_stat"].items(), key=lambda x: -x[1]):
            lines.append(f"      not delivered, receipt {stat}: {n:,}")
    return lines


def _counts(by: dict[str, int]) -> str:
    """`{"UNDELIV": 3, "EXPIRED": 1}` as "UNDELIV 3, EXPIRED 1", most first ("none": empty)."""
    return ", ".join(f"{k} {n:,}" for k, n in sorted(by.items(), key=lambda x: -x[1])) or "none"


def not_reached_detail(totals: dict[str, Any]) -> str:
    """What follows the count of those not reached: how many were never sent, and those
    planned but gone before their turn (counted apart)."""
    never = totals.get("not_sent")
    left = totals.get("left_before_sent")
    return (f" ({never:,} never sent: stopped before their turn)" if never else "") + (
        f"; {left:,} planned were no longer as planned when their turn came (moved away, left "
        "the index, changed language): not sent to"
        if left
        else ""
    )


def follow_up_lines(report: dict[str, Any]) -> list[str]:
    """The broadcast it follows and those that follow it (an update, an all-clear)."""
    lines = []
    if report.get("follows"):
        lines.append(f"follows broadcast {report['follows']}")
    if report.get("followed_by"):
        lines.append(
            "followed by: "
            + ", ".join(
                f"broadcast {f['broadcast_id']} ({f['template']}, {f['state']}, "
                f"{f['recipients']:,} recipients)"
                for f in report["followed_by"]
            )
        )
    return lines


def render_text(report: dict[str, Any]) -> str:
    t = report["totals"]
    lines = [
        f"after-action report of broadcast {report['broadcast_id']} "
        f"[{'LIVE' if report['kind'] == 'live' else 'DRILL (exercise)'}] {report['template']}: "
        f"{report['state']} (times in {report['time_zone']})",
        "areas: " + ", ".join(f"{a['name']} ({a['code']})" for a in report["areas"]),
        *follow_up_lines(report),
        f"recipients {t['recipients']:,}: reached {t['reached']:,} (every part accepted by "
        f"the SMSC), of whom delivered {t['delivered']:,} (every part receipted DELIVRD) and "
        f"not delivered {t['undelivered']:,} (a receipt says so); not reached "
        f"{t['not_reached']:,}{not_reached_detail(t)}",
        f"parts accepted {t['parts_accepted']:,}: delivered {t['parts_delivered']:,}, not "
        f"delivered {t['parts_undelivered']:,} (receipts: {_counts(t['undelivered_by_stat'])}), "
        f"awaiting a receipt {t['parts_awaiting_receipt']:,}; failed {t['parts_failed']:,} "
        f"(refused or unanswered); parts possibly sent twice {t['possibly_sent_twice']:,}",
        "texts as sent:",
    ]
    for g in report["texts"]:
        lines.append(
            f"  [{g['departement']} {g['lang']}, {g['encoding']}, {g['parts']} part(s), "
            f"{g['recipients']:,} recipients] {g['body']}"
        )
    lines.append("timeline:")
    for e in report["timeline"]:
        by = f" by {e['by']}" if e.get("by") else ""
        lines.append(f"  {e['event']:<28} {e['at_local']}{by}")
    lines += _table("per area:", report["per_area"], "area")
    lines.append("per SMSC:")
    for s in report["per_smsc"]:
        lines.append(
            f"  {s['smsc']:<28} accepted {s['parts_accepted']:,}, delivered "
            f"{s['parts_delivered']:,}, not delivered {s['parts_undelivered']:,}, awaiting a "
            f"receipt {s['parts_awaiting_receipt']:,}, failed {s['parts_failed']:,}"
            + "".join(f"; {why} {n:,}" for why, n in s["failed_by_reason"].items())
            + "".join(f"; receipt {stat} {n:,}" for stat, n in s["undelivered_by_stat"].items())
        )
    lines += _table("per language:", report["per_language"], "language")
    return "\n".join(lines)
