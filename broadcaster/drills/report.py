"""The drill report (pure): what came back from the SMSCs, against the drill's thresholds.

`build_report(info, rows, thresholds)` turns the outcome of every part (submit response, first
final receipt) into counts, timings and a verdict; the rows come from the `drill_report_rows`
query, this module does no I/O. Everything is counted in parts (PDUs), as SMSCs count them: a
drill text is one part, so for a drill a part is a recipient.

- accepted: the SMSC answered submit_sm with status 0; failed parts are counted by status;
- delivered: a DELIVRD receipt came back; other receipts (UNDELIV, EXPIRED...) by stat;
- time to accept: submit_sm -> submit_sm_resp; time to delivery: submit_sm -> DELIVRD receipt
  received (p50, p95, max);
- the verdict: the drill completed, reached someone, every SMSC configured when it started
  carried parts (an SMSC refusing binds must not hide behind the others), and — overall, per SMSC
  and per area — at least `min_delivered_ratio` of its parts were delivered within
  `delivery_within_s`, with the SMSCs' p95 time to accept at most `max_accept_p95_s`.

Only final receipts are rows (the query leaves out ENROUTE and other intermediate stats).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from broadcaster.errors import InputError

DELIVERED = "DELIVRD"
MAX_TIMELINE_POINTS = 200
NO_RECEIPT = "no receipt"


@dataclass(frozen=True)
class Thresholds:
    """What a drill must achieve to pass; each schedule may set its own."""

    min_delivered_ratio: float = 0.99
    delivery_within_s: float = 300.0
    max_accept_p95_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.min_delivered_ratio <= 1:
            raise InputError(
                f"min delivered ratio must be within 0..1 (e.g. 0.99), "
                f"not {self.min_delivered_ratio}"
            )
        if not 0 < self.delivery_within_s <= 86_400:
            raise InputError(
                f"delivery window must be 1 s to 1 day, not {self.delivery_within_s} s"
            )
        if not 0 < self.max_accept_p95_s <= 3_600:
            raise InputError(
                f"max p95 time to accept must be up to 1 hour, not {self.max_accept_p95_s} s"
            )

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> Thresholds:
        """From the API / database form (`delivery_within_seconds`...); missing keys: defaults."""
        data = dict(data or {})
        names = {
            "min_delivered_ratio": "min_delivered_ratio",
            "delivery_within_seconds": "delivery_within_s",
            "max_accept_p95_seconds": "max_accept_p95_s",
        }
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise InputError(f"unknown thresholds {unknown}; known: {', '.join(names)}")
        values: dict[str, float] = {}
        for key, attr in names.items():
            if key in data:
                value = data[key]
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise InputError(f"threshold {key} must be a number, not {value!r}")
                values[attr] = float(value)
        return cls(**values)

    def to_json(self) -> dict[str, float]:
        return {
            "min_delivered_ratio": self.min_delivered_ratio,
            "delivery_within_seconds": self.delivery_within_s,
            "max_accept_p95_seconds": self.max_accept_p95_s,
        }


@dataclass(frozen=True)
class PartRow:
    """One part's outcome: the submit response, and the receipt that came back (if any)."""

    msisdn: int
    part: int
    departement: str
    smsc: str
    status: int
    submitted_at: datetime
    answered_at: datetime
    receipt_stat: str | None = None
    receipt_at: datetime | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 0

    @property
    def delivered(self) -> bool:
        return self.accepted and self.receipt_stat == DELIVERED


@dataclass(frozen=True)
class DrillInfo:
    """The drill broadcast itself, as stored."""

    drill_id: int
    state: str
    template: str
    planned_parts: int
    recipients: int
    started_at: datetime | None = None
    finished_at: datetime | None = None
    schedule: str | None = None
    areas: tuple[str, ...] = ()
    refusal: str | None = None
    """Why the engine refused the drill, if it did."""
    smscs: tuple[str, ...] = ()
    """The SMSCs configured when the drill started: each gets a row, and must carry parts
    (empty: not recorded, only the SMSCs that carried parts are known)."""


@dataclass(frozen=True)
class Timings:
    count: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None

    @classmethod
    def of(cls, values: Iterable[float]) -> Timings:
        ordered = sorted(values)
        if not ordered:
            return cls(0, None, None, None)
        return cls(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.95), ordered[-1])

    def text(self, separator: str = "/") -> str:
        """`p50/p95/max` in seconds, or `-` when there is none."""
        if self.p50_s is None or self.p95_s is None or self.max_s is None:
            return "-"
        return separator.join(f"{v:.2f}" for v in (self.p50_s, self.p95_s, self.max_s))

    def to_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "p50_s": _round(self.p50_s),
            "p95_s": _round(self.p95_s),
            "max_s": _round(self.max_s),
        }


@dataclass(frozen=True)
class Breakdown:
    """The figures of the whole drill, one SMSC or one area."""

    name: str
    expected: int
    """Parts that should have been delivered: planned (whole drill) or submitted (SMSC, area)."""
    submitted: int
    accepted: int
    failed_by_status: dict[str, int]
    delivered: int
    delivered_in_time: int
    undelivered_by_stat: dict[str, int]
    """Accepted parts not delivered, by receipt stat ('no receipt' when none came back)."""
    time_to_accept: Timings
    time_to_delivery: Timings

    @property
    def delivered_ratio(self) -> float:
        """Parts delivered within the window, over those expected."""
        return self.delivered_in_time / self.expected if self.expected else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "expected": self.expected,
            "submitted": self.submitted,
            "accepted": self.accepted,
            "failed": sum(self.failed_by_status.values()),
            "failed_by_status": dict(self.failed_by_status),
            "delivered": self.delivered,
            "delivered_in_time": self.delivered_in_time,
            "delivered_ratio": round(self.delivered_ratio, 4),
            "undelivered_by_stat": dict(self.undelivered_by_stat),
            "time_to_accept": self.time_to_accept.to_json(),
            "time_to_delivery": self.time_to_delivery.to_json(),
        }


@dataclass(frozen=True)
class Check:
    """One threshold, for one scope ('all', 'smsc NAME', 'area CODE'), passed or not."""

    name: str
    scope: str
    passed: bool
    message: str
    may_yet_pass: bool = False
    """Failed for now, but the parts still awaiting their receipt could lift it over its
    threshold (a delivery check only): what a report read inside the window waits for."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope,
            "passed": self.passed,
            "message": self.message,
        }


@dataclass(frozen=True)
class DrillReport:
    info: DrillInfo
    thresholds: Thresholds
    total: Breakdown
    by_smsc: tuple[Breakdown, ...]
    by_area: tuple[Breakdown, ...]
    checks: tuple[Check, ...]
    timeline: dict[str, tuple[tuple[float, int], ...]] = field(default_factory=dict)
    """Per SMSC: (seconds since the drill started, parts delivered so far), in time order."""
    open_until: datetime | None = None
    """The end of the delivery window, when the report was read before it (`judged_at`)."""

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def pending(self) -> bool:
        """Read before its delivery window ended, failing only on deliveries that the parts
        still awaiting their receipt could make up (a FAIL 30 s into a 300 s window was only
        early; parts refused, or receipted UNDELIV, can make up nothing: that fails now)."""
        failures = self.failures
        return (
            self.open_until is not None
            and bool(failures)
            and all(c.name == "delivered_within" and c.may_yet_pass for c in failures)
        )

    @property
    def verdict(self) -> str:
        if self.passed:
            return "pass"
        return "pending" if self.pending else "fail"

    def judged_at(self, now: datetime) -> DrillReport:
        """This report as read at `now`: pending while its delivery window is open."""
        started = self.info.started_at
        if started is None:
            return self
        end = started + timedelta(seconds=self.thresholds.delivery_within_s)
        return replace(self, open_until=end if now < end else None)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_json(self) -> dict[str, Any]:
        info = self.info
        return {
            "drill_id": info.drill_id,
            "schedule": info.schedule,
            "verdict": self.verdict,
            "open_until": _iso(self.open_until),
            "state": info.state,
            "template": info.template,
            "areas": list(info.areas),
            "planned_parts": info.planned_parts,
            "recipients": info.recipients,
            "started_at": _iso(info.started_at),
            "finished_at": _iso(info.finished_at),
            "refusal": info.refusal,
            "smscs": list(info.smscs),
            "thresholds": self.thresholds.to_json(),
            "total": self.total.to_json(),
            "by_smsc": [b.to_json() for b in self.by_smsc],
            "by_area": [b.to_json() for b in self.by_area],
            "checks": [c.to_json() for c in self.checks],
            "failures": [c.message for c in self.failures],
            "timeline": {
                smsc: [[t, n] for t, n in points] for smsc, points in self.timeline.items()
            },
        }


def build_report(info: DrillInfo, rows: Iterable[PartRow], thresholds: Thresholds) -> DrillReport:
    """The report of one drill from its part outcomes (duplicates of a part count once)."""
    parts = _best_per_part(rows)
    expected = max(info.planned_parts, len(parts))
    total = _breakdown("all", parts, expected, thresholds)
    per_smsc: dict[str, list[PartRow]] = {name: [] for name in info.smscs}
    for name, group in _group(parts, lambda r: r.smsc).items():
        per_smsc[name] = group
    by_smsc = tuple(
        _breakdown(name, group, len(group), thresholds) for name, group in sorted(per_smsc.items())
    )
    by_area = tuple(
        _breakdown(name, group, len(group), thresholds)
        for name, group in sorted(_group(parts, lambda r: r.departement).items())
    )
    origin = info.started_at or min((r.submitted_at for r in parts), default=None)
    return DrillReport(
        info=info,
        thresholds=thresholds,
        total=total,
        by_smsc=by_smsc,
        by_area=by_area,
        checks=tuple(_checks(info, total, by_smsc, by_area, thresholds)),
        timeline=_timeline(parts, origin, info.smscs),
    )


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted values, interpolated linearly (as PostgreSQL percentile_cont)."""
    if not ordered:
        raise ValueError("percentile of no values")
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- internals -------------------------------------------------------------------------------


def _rank(row: PartRow) -> tuple[bool, bool, float]:
    return (row.delivered, row.accepted, -row.submitted_at.timestamp())


def _best_per_part(rows: Iterable[PartRow]) -> list[PartRow]:
    """One row per (recipient, part): delivered beats accepted beats failed; earliest wins."""
    best: dict[tuple[int, int], PartRow] = {}
    for row in rows:
        key = (row.msisdn, row.part)
        kept = best.get(key)
        if kept is None or _rank(row) > _rank(kept):
            best[key] = row
    return list(best.values())


def _group(parts: Iterable[PartRow], key: Any) -> dict[str, list[PartRow]]:
    groups: dict[str, list[PartRow]] = defaultdict(list)
    for row in parts:
        groups[key(row)].append(row)
    return groups


def _status_label(status: int) -> str:
    return "none" if status < 0 else f"0x{status & 0xFFFFFFFF:08X}"


def _breakdown(
    name: str, parts: Sequence[PartRow], expected: int, thresholds: Thresholds
) -> Breakdown:
    failed: dict[str, int] = defaultdict(int)
    undelivered: dict[str, int] = defaultdict(int)
    accept_s: list[float] = []
    delivery_s: list[float] = []
    in_time = 0
    for row in parts:
        if not row.accepted:
            failed[_status_label(row.status)] += 1
            continue
        accept_s.append((row.answered_at - row.submitted_at).total_seconds())
        if row.delivered and row.receipt_at is not None:
            seconds = (row.receipt_at - row.submitted_at).total_seconds()
            delivery_s.append(seconds)
            in_time += seconds <= thresholds.delivery_within_s
        else:
            undelivered[row.receipt_stat or NO_RECEIPT] += 1
    return Breakdown(
        name=name,
        expected=expected,
        submitted=len(parts),
        accepted=len(accept_s),
        failed_by_status=dict(sorted(failed.items())),
        delivered=len(delivery_s),
        delivered_in_time=in_time,
        undelivered_by_stat=dict(sorted(undelivered.items())),
        time_to_accept=Timings.of(accept_s),
        time_to_delivery=Timings.of(delivery_s),
    )


def _checks(
    info: DrillInfo,
    total: Breakdown,
    by_smsc: Sequence[Breakdown],
    by_area: Sequence[Breakdown],
    t: Thresholds,
) -> list[Check]:
    checks = [
        Check(
            "completed",
            "all",
            info.state == "completed",
            f"the drill broadcast is {info.state}"
            + (f": {info.refusal}" if info.refusal else "")
            + ("" if info.state == "completed" else " (it must complete)"),
        ),
        Check(
            "recipients",
            "all",
            info.planned_parts > 0,
            f"{info.planned_parts} part(s) planned"
            + ("" if info.planned_parts else ": no test-group subscriber in the drill's areas"),
        ),
    ]
    idle = [b for b in by_smsc if b.submitted == 0]
    for figures in idle:  # configured, but not one part went through it: down, refusing binds?
        checks.append(
            Check(
                "carried",
                f"smsc {figures.name}",
                False,
                f"smsc {figures.name} carried no part: it was configured when the drill started "
                "(is it down, or refusing binds?)",
            )
        )
    scoped = [("all", total), *((f"smsc {b.name}", b) for b in by_smsc if b.submitted)]
    scoped += [(f"area {b.name}", b) for b in by_area]
    for scope, figures in scoped:
        ratio = figures.delivered_ratio
        awaited = figures.undelivered_by_stat.get(NO_RECEIPT, 0)
        best = (figures.delivered_in_time + awaited) / figures.expected if figures.expected else 0
        checks.append(
            Check(
                "delivered_within",
                scope,
                figures.expected > 0 and ratio >= t.min_delivered_ratio,
                f"{scope}: {ratio:.1%} of {figures.expected} part(s) delivered within "
                f"{t.delivery_within_s:g} s (threshold {t.min_delivered_ratio:.1%})",
                may_yet_pass=awaited > 0 and best >= t.min_delivered_ratio,
            )
        )
    for scope, figures in [("all", total), *((f"smsc {b.name}", b) for b in by_smsc)]:
        p95 = figures.time_to_accept.p95_s
        if p95 is None:
            continue
        checks.append(
            Check(
                "accept_p95",
                scope,
                p95 <= t.max_accept_p95_s,
                f"{scope}: p95 time to accept {p95:.3f} s (threshold {t.max_accept_p95_s:g} s)",
            )
        )
    return checks


def _timeline(
    parts: Sequence[PartRow], origin: datetime | None, smscs: Sequence[str] = ()
) -> dict[str, tuple[tuple[float, int], ...]]:
    if origin is None:
        return {}
    offsets: dict[str, list[float]] = {name: [] for name in smscs}
    for row in parts:
        if row.delivered and row.receipt_at is not None:
            offsets.setdefault(row.smsc, []).append(
                max(0.0, (row.receipt_at - origin).total_seconds())
            )
        else:
            offsets.setdefault(row.smsc, [])
    out: dict[str, tuple[tuple[float, int], ...]] = {}
    for smsc, times in sorted(offsets.items()):
        times.sort()
        points = [(round(t, 3), n) for n, t in enumerate(times, 1)]
        if len(points) > MAX_TIMELINE_POINTS:
            step = len(points) / (MAX_TIMELINE_POINTS - 1)
            kept = {min(len(points) - 1, round(i * step)) for i in range(MAX_TIMELINE_POINTS)}
            kept.add(len(points) - 1)
            points = [points[i] for i in sorted(kept)]
        out[smsc] = tuple(points)
    return out


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
