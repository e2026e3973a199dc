"""The after-action report's content, as a JSON-ready dict (UTC times; `*_local` fields in the
report's zone, see domain/localtime.py)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broadcaster.domain.localtime import local
from broadcaster.domain.states import FINAL
from broadcaster.smpp.constants import status_name

NO_ANSWER = -1


def reason(status: int) -> str:
    """What a failed part's status means to a person: the SMPP name, or that none came."""
    return "no answer (timeout or lost connection)" if status == NO_ANSWER else status_name(status)


def reason_of_code(code: str) -> str:
    """`reason` of a status as `status` writes it: "0x0000000B" (0xFFFFFFFF: no answer)."""
    value = int(code, 16)
    return reason(value - (1 << 32) if value >= 1 << 31 else value)


@dataclass(frozen=True)
class Inputs:
    """What `build` needs: the broadcast, its groups and audit trail, the store's report rows."""

    broadcast: Mapping[str, Any]
    """progress() of the broadcast (counts from the roll-ups)."""
    record: Mapping[str, Any]
    """The broadcast row (created_at... as datetimes, language_map)."""
    groups: Sequence[Mapping[str, Any]]
    trail: Sequence[Mapping[str, Any]]
    rows: Any
    """store.reports.ReportRows."""
    zone: str
    follow_ups: Sequence[Mapping[str, Any]] = ()
    """The broadcasts that follow this one (updates, all-clears), oldest first."""


def _row(label: str, name: str) -> dict[str, Any]:
    return {
        "key": label,
        "name": name,
        "recipients": 0,
        "recorded": 0,
        "reached": 0,
        "not_reached": 0,
        "parts_accepted": 0,
        "parts_delivered": 0,
        "delivered": 0,
        "undelivered": 0,
        "parts_undelivered": 0,
        "parts_awaiting_receipt": 0,
        "undelivered_by_stat": {},
        "parts_failed": 0,
        "failed_by_reason": {},
        "recorded_twice": 0,
    }


def _add(counts: dict[str, int], key: str, n: int) -> None:
    counts[key] = counts.get(key, 0) + n


def _tally(targets: Sequence[dict[str, Any]], total: str, by: str, key: str, n: int) -> None:
    """Count `n` parts in each target's `total`, and under `key` in its `by`."""
    for target in targets:
        target[total] += n
        _add(target[by], key, n)


def _group_lang(record: Mapping[str, Any], groups: Sequence[Mapping[str, Any]]) -> Any:
    lang_map = record["language_map"]
    if isinstance(lang_map, str):
        lang_map = json.loads(lang_map)
    by_no = {g["group_no"]: g["lang"] for g in groups}

    def text_language(dep: str, sub_lang: str) -> str:
        group = (lang_map or {}).get(dep, {}).get(sub_lang)
        return str(by_no.get(group, sub_lang))

    return text_language


def _tables(inputs: Inputs) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per area, per language) rows: planned recipients from the groups, outcomes from rows."""
    rows = inputs.rows
    text_language = _group_lang(inputs.record, inputs.groups)
    areas: dict[str, dict[str, Any]] = {}
    langs: dict[str, dict[str, Any]] = {}

    def area(dep: str) -> dict[str, Any]:
        return areas.setdefault(dep, _row(dep, rows.areas.get(dep, dep)))

    def lang(code: str) -> dict[str, Any]:
        return langs.setdefault(code, _row(code, code))

    for g in inputs.groups:
        area(g["departement"])["recipients"] += g["recipients"]
        lang(g["lang"])["recipients"] += g["recipients"]

    def language(row: Mapping[str, Any]) -> str:
        """The language of the text the row's recipients got: their group's, or for outcomes
        recorded without it, the one their language maps to."""
        return str(row["text_lang"] or text_language(row["departement"], row["lang"]))

    def rows_of(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The area's row and the language's that `row` counts in."""
        return area(row["departement"]), lang(language(row))

    for r in rows.by_area_lang:
        for target in rows_of(r):
            for key in (
                "recorded",
                "reached",
                "parts_accepted",
                "parts_delivered",
                "delivered",
                "undelivered",
                "recorded_twice",
            ):
                target[key] += int(r[key])
    for f in rows.failures:
        why = reason(int(f["status"]))
        _tally(rows_of(f), "parts_failed", "failed_by_reason", why, int(f["n"]))
    for u in rows.undelivered:
        _tally(rows_of(u), "parts_undelivered", "undelivered_by_stat", str(u["stat"]), int(u["n"]))
    every_chunk_sent = inputs.broadcast.get("chunks_done") == inputs.broadcast.get("chunks_total")
    return _sorted_rows(areas, every_chunk_sent), _sorted_rows(langs, every_chunk_sent)


def _sorted_rows(table: dict[str, dict[str, Any]], every_chunk_sent: bool) -> list[dict[str, Any]]:
    """The table's rows by key, each with its recipients not reached: those sent to and not
    reached, and those planned and never sent to (planned less recorded: numbers that joined
    the index after planning and were sent to are not taken for recipients never sent). Once
    every chunk was sent, those planned and not sent to had left the index or the area before
    their chunk was read (an import moved them): counted apart (`left_before_sent`), not as
    not reached, which the list of those not reached could not name and the exit code ignored."""
    for entry in table.values():
        unsent = max(entry["recipients"] - entry["recorded"], 0)
        left = unsent if every_chunk_sent else 0
        entry["left_before_sent"] = left
        entry["not_sent"] = unsent - left  # chunks never sent: cancelled, expired, paused
        entry["not_reached"] = entry["recorded"] - entry["reached"] + unsent - left
        entry["parts_awaiting_receipt"] = _awaiting(entry)
    return [table[k] for k in sorted(table)]


def _awaiting(entry: Mapping[str, Any]) -> int:
    """Parts accepted with no final word yet from a receipt (neither delivered nor not): with
    them, a row's parts accepted add up."""
    return max(
        int(entry["parts_accepted"] - entry["parts_delivered"] - entry["parts_undelivered"]), 0
    )


def _per_smsc(broadcast: Mapping[str, Any], rows: Any) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(
        lambda: {
            "parts_accepted": 0,
            "parts_failed": 0,
            "parts_delivered": 0,
            "parts_undelivered": 0,
            "failed_by_reason": {},
            "undelivered_by_stat": {},
        }
    )
    for smsc, counts in broadcast.get("by_smsc", {}).items():
        out[smsc]["parts_accepted"] = counts["accepted"]
        out[smsc]["parts_failed"] = counts["failed"]
        out[smsc]["failed_by_reason"] = {
            reason_of_code(k): v for k, v in counts["failed_by_status"].items()
        }
    for smsc, n in rows.delivered_by_smsc.items():
        out[smsc]["parts_delivered"] = n
    for u in rows.undelivered:
        stat, n = str(u["stat"]), int(u["n"])
        _tally((out[u["smsc"]],), "parts_undelivered", "undelivered_by_stat", stat, n)
    return [
        {"smsc": k, **v, "parts_awaiting_receipt": _awaiting(v)} for k, v in sorted(out.items())
    ]


def _event(event: str, at: datetime | None, zone: str, **extra: Any) -> dict[str, Any]:
    return {
        "event": event,
        "at": at.isoformat() if at else None,
        "at_local": local(at, zone),
        **extra,
    }


def _timeline(inputs: Inputs) -> list[dict[str, Any]]:
    record, rows, zone = inputs.record, inputs.rows, inputs.zone
    approved = next((e for e in inputs.trail if e.get("action") == "approve"), None)
    approved_at = approved.get("at") if approved else None
    if isinstance(approved_at, str):
        approved_at = datetime.fromisoformat(approved_at)
    if approved is None and record["approved_by"] is None and record["started_at"] is not None:
        # Never awaited a second person (a CLI send, an API one below the threshold, a drill):
        # approved as it was created, by its creator ("approved -" read as never approved).
        approval = _event(
            "approved when created (no second person required)",
            record["created_at"],
            zone,
            by=record["created_by"],
        )
    else:
        approval = _event("approved", approved_at, zone, by=record["approved_by"])
    events = [
        _event("created", record["created_at"], zone, by=record["created_by"]),
        approval,
        _event("started", record["started_at"], zone),
        _event("first part", rows.first_part, zone),
    ]
    over = record["state"] in FINAL
    for what, marks in (("accepted", rows.accepted_at), ("delivered", rows.delivered_at)):
        for mark, at in marks.items():
            event = _event(f"{mark:.0%} of parts {what}", at, zone)
            if at is None:  # "-" read as not yet, or as never: said which
                event["at_local"] = (
                    "not so far (receipts may still come)"
                    if what == "delivered"
                    else "never (the broadcast is over)"
                    if over
                    else "not yet"
                )
            events.append(event)
    # Who stopped it, for a broadcast cancelled (the audit trail's last cancel, as recorded).
    cancels = [e for e in inputs.trail if e.get("action") == "cancel"]
    by = cancels[-1].get("actor") if record["state"] == "cancelled" and cancels else None
    events.append(_event(f"finished ({record['state']})", record["finished_at"], zone, by=by))
    return events


def _cumulative(steps: Mapping[int, int], count: int) -> list[int]:
    out, total = [], 0
    for i in range(count):
        total += steps.get(i, 0)
        out.append(total)
    return out


def _curve(rows: Any) -> dict[str, Any]:
    if rows.curve_start is None:
        return {"start": None, "step_s": 0, "accepted": [], "delivered": []}
    count = max([*rows.accepted_curve, *rows.delivered_curve, 0]) + 1
    return {
        "start": rows.curve_start.isoformat(),
        "end": (rows.curve_start + timedelta(seconds=rows.curve_step_s * count)).isoformat(),
        "step_s": rows.curve_step_s,
        "accepted": _cumulative(rows.accepted_curve, count),
        "delivered": _cumulative(rows.delivered_curve, count),
    }


def build(inputs: Inputs) -> dict[str, Any]:
    """The report: areas by name, texts as sent, timeline, per area / SMSC / language, curve."""
    b = inputs.broadcast
    per_area, per_language = _tables(inputs)
    totals = {
        key: sum(a[key] for a in per_area)
        for key in (
            "recipients",
            "recorded",
            "reached",
            "not_reached",
            "not_sent",
            "left_before_sent",
            "parts_accepted",
            "parts_delivered",
            "delivered",
            "undelivered",
            "parts_undelivered",
            "parts_awaiting_receipt",
            "parts_failed",
        )
    }
    failed: dict[str, int] = {}
    undelivered: dict[str, int] = {}
    for a in per_area:
        for why, n in a["failed_by_reason"].items():
            _add(failed, why, n)
        for stat, n in a["undelivered_by_stat"].items():
            _add(undelivered, stat, n)
    totals["failed_by_reason"] = failed
    totals["undelivered_by_stat"] = undelivered
    totals["possibly_sent_twice"] = b["possibly_sent_twice"]
    return {
        "broadcast_id": b["broadcast_id"],
        "kind": b["kind"],
        "state": b["state"],
        "template": b["template"],
        "time_zone": inputs.zone,
        "follows": inputs.record.get("parent_id"),
        "followed_by": [
            {
                "broadcast_id": f["id"],
                "template": f["template"],
                "state": f["state"],
                "recipients": f["recipients"],
            }
            for f in inputs.follow_ups
        ],
        "areas": [{"code": k, "name": v} for k, v in sorted(inputs.rows.areas.items())],
        "texts": [
            {
                "departement": g["departement"],
                "lang": g["lang"],
                "encoding": g["encoding"],
                "parts": g["parts"],
                "recipients": g["recipients"],
                "body": g["body"],
            }
            for g in inputs.groups
        ],
        "timeline": _timeline(inputs),
        "totals": totals,
        "per_area": per_area,
        "per_smsc": _per_smsc(b, inputs.rows),
        "per_language": per_language,
        "curve": _curve(inputs.rows),
    }
