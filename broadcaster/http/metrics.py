"""Prometheus metrics: the SMPP pool's counters and bind health, broadcast progress, HTTP traffic.

Each app has its own registry (no global state: tests build many apps). Pool figures are read
from the in-process worker's pool at scrape time; broadcast figures from the database, with
queries that never scan the outcomes (chunk progress, counts by state), so a scrape stays cheap
while a national broadcast runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from broadcaster.smpp.pool import SmppPool
from broadcaster.store import drills as store_drills
from broadcaster.store import metrics as store
from broadcaster.store.database import Conn

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

POOL_COUNTERS = (
    ("submitted", "parts_submitted", "Message parts handed to the SMPP pool"),
    ("accepted", "parts_accepted", "Parts the SMSC accepted (submit_sm_resp status 0)"),
    ("failed", "parts_failed", "Parts refused by the SMSC or unanswered after every retry"),
    ("throttled", "parts_throttled", "ESME_RTHROTTLED / ESME_RMSGQFUL replies (sent again)"),
    ("requeued_inflight", "parts_requeued", "Parts in flight on a lost bind, sent again"),
    (
        "possible_duplicates",
        "parts_possibly_sent_twice",
        "Copies beyond one the SMSC may have received (parts resent after a lost bind or a "
        "response timeout)",
    ),
    ("not_sent", "parts_not_sent", "Parts not sent again after their broadcast halted"),
    ("timeouts", "parts_timeouts", "Parts without a response within the response timeout"),
    ("reconnects", "bind_reconnects", "Bound sessions lost and reconnected"),
    ("receipts", "receipts", "Delivery receipts received"),
    (
        "empty_message_ids",
        "smsc_empty_message_ids",
        "Parts the SMSC accepted without a usable message_id (their receipts cannot be matched)",
    ),
    ("alert_notifications", "smpp_alert_notifications", "alert_notification PDUs received"),
    (
        "split_messages",
        "split_messages",
        "Long messages whose parts went through two SMSCs (their own one stayed down): they "
        "may arrive incomplete",
    ),
)


@dataclass
class DbSnapshot:
    by_state: list[dict[str, Any]] = field(default_factory=list)
    active: list[dict[str, Any]] = field(default_factory=list)
    drill_runs: list[dict[str, Any]] = field(default_factory=list)
    drill_latest: list[dict[str, Any]] = field(default_factory=list)
    sightings_pending: int = 0


class _Collector(Collector):
    def __init__(self, pool: Callable[[], SmppPool | None], snapshot: Callable[[], DbSnapshot]):
        self._pool = pool
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        yield from self._pool_metrics(self._pool())
        yield from self._db_metrics(self._snapshot())
        yield from _drill_metrics(self._snapshot())
        pending = GaugeMetricFamily(
            "broadcaster_location_sightings_pending",
            "Location updates appended and not yet compacted (as of the last ingest or "
            "compaction): selection reads them too, slower the more there are; growing means "
            "compaction lags",
        )
        pending.add_metric([], float(self._snapshot().sightings_pending))
        yield pending

    def _pool_metrics(self, pool: SmppPool | None) -> Iterable[Metric]:
        if pool is None:
            return
        stats = pool.stats
        for attr, name, doc in POOL_COUNTERS:
            counter = CounterMetricFamily(f"broadcaster_{name}", doc)
            counter.add_metric([], float(getattr(stats, attr, 0)))
            yield counter
        by_status = CounterMetricFamily(
            "broadcaster_parts_failed_by_status",
            "Failed parts by SMPP command_status (-1: no response)",
            labels=["status"],
        )
        for status, n in sorted(stats.failed_by_status.items()):
            label = "none" if status < 0 else f"0x{status & 0xFFFFFFFF:08X}"
            by_status.add_metric([label], float(n))
        yield by_status
        retried = CounterMetricFamily(
            "broadcaster_parts_retried_by_status",
            "Parts sent again after a transient SMPP error, by command_status",
            labels=["status"],
        )
        for status, n in sorted(stats.retried_by_status.items()):
            retried.add_metric([f"0x{status & 0xFFFFFFFF:08X}"], float(n))
        yield retried
        backlog = GaugeMetricFamily("broadcaster_pool_backlog", "Parts queued, not yet written")
        backlog.add_metric([], float(pool.backlog))
        yield backlog
        labels = ["smsc", "bind"]
        up = GaugeMetricFamily("broadcaster_bind_up", "1 when the bind is bound", labels=labels)
        state = GaugeMetricFamily(
            "broadcaster_bind_state",
            "The bind's state (1 for the current one)",
            labels=[*labels, "state"],
        )
        used = GaugeMetricFamily("broadcaster_bind_window_used", "Parts in flight", labels=labels)
        size = GaugeMetricFamily("broadcaster_bind_window_size", "Window size", labels=labels)
        rate = GaugeMetricFamily(
            "broadcaster_bind_rate", "Current pacing rate, parts/s (0: not paced)", labels=labels
        )
        accepted_rate = GaugeMetricFamily(
            "broadcaster_bind_accepted_per_second", "Parts accepted per second", labels=labels
        )
        binds_up = GaugeMetricFamily("broadcaster_smsc_binds_up", "Binds up", labels=["smsc"])
        for smsc in pool.health():
            binds_up.add_metric([smsc.name], float(smsc.binds_up))
            for bind in smsc.binds:
                key = [smsc.name, bind.name]
                up.add_metric(key, 1.0 if bind.state == "bound" else 0.0)
                state.add_metric([*key, bind.state], 1.0)
                used.add_metric(key, float(bind.inflight))
                size.add_metric(key, float(bind.window))
                rate.add_metric(key, float(bind.rate))
                accepted_rate.add_metric(key, float(bind.accepted_per_s))
        yield from (up, state, used, size, rate, accepted_rate, binds_up)

    def _db_metrics(self, snapshot: DbSnapshot) -> Iterable[Metric]:
        count = GaugeMetricFamily(
            "broadcaster_broadcasts", "Broadcasts by kind and state", labels=["kind", "state"]
        )
        for row in snapshot.by_state:
            count.add_metric([row["kind"], row["state"]], float(row["n"]))
        yield count
        labels = ["broadcast_id", "kind", "state"]
        families = {
            "recipients": GaugeMetricFamily(
                "broadcaster_broadcast_recipients", "Recipients planned", labels=labels
            ),
            "parts": GaugeMetricFamily(
                "broadcaster_broadcast_parts", "Parts planned", labels=labels
            ),
            "chunks_total": GaugeMetricFamily(
                "broadcaster_broadcast_chunks", "Work chunks", labels=labels
            ),
            "chunks_done": GaugeMetricFamily(
                "broadcaster_broadcast_chunks_done", "Work chunks finished", labels=labels
            ),
            "parts_accepted": GaugeMetricFamily(
                "broadcaster_broadcast_parts_accepted", "Parts the SMSC accepted", labels=labels
            ),
            "parts_failed": GaugeMetricFamily(
                "broadcaster_broadcast_parts_failed", "Parts refused or unanswered", labels=labels
            ),
            "parts_delivered": GaugeMetricFamily(
                "broadcaster_broadcast_parts_delivered",
                "Parts with a DELIVRD receipt",
                labels=labels,
            ),
        }
        for row in snapshot.active:
            key = [str(row["id"]), row["kind"], row["state"]]
            for column, family in families.items():
                family.add_metric(key, float(row[column]))
        yield from families.values()


def _drill_metrics(snapshot: DbSnapshot) -> Iterable[Metric]:
    """Drill runs and alarms by schedule, and whether each schedule's latest drill failed."""
    runs = GaugeMetricFamily(
        "broadcaster_drill_runs",
        "Drill runs by schedule and outcome (started, missed, not_started)",
        labels=["schedule", "outcome"],
    )
    alarms = GaugeMetricFamily(
        "broadcaster_drill_alarms",
        "Drill alarms raised, by schedule and reason (thresholds, missed, not_started)",
        labels=["schedule", "reason"],
    )
    by_run: dict[tuple[str, str], float] = {}
    by_alarm: dict[tuple[str, str], float] = {}
    for row in snapshot.drill_runs:
        key = (row["schedule"], row["outcome"])
        by_run[key] = by_run.get(key, 0.0) + row["n"]
        if row["alarm"]:
            key = (row["schedule"], row["alarm"])
            by_alarm[key] = by_alarm.get(key, 0.0) + row["n"]
    for labels, n in sorted(by_run.items()):
        runs.add_metric(list(labels), n)
    for labels, n in sorted(by_alarm.items()):
        alarms.add_metric(list(labels), n)
    failing = GaugeMetricFamily(
        "broadcaster_drill_failing",
        "1 when the latest reported drill of the schedule failed its thresholds",
        labels=["schedule"],
    )
    for row in snapshot.drill_latest:
        failing.add_metric([row["schedule_name"]], 1.0 if row["verdict"] == "fail" else 0.0)
    yield from (runs, alarms, failing)


class Metrics:
    """The app's registry: HTTP counters it updates, pool and DB figures read at scrape time."""

    def __init__(self, pool: Callable[[], SmppPool | None]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "broadcaster_http_requests",
            "HTTP requests by operation and status",
            ["operation", "status"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "broadcaster_http_rate_limited",
            "Requests refused by the per-token rate limit",
            registry=self.registry,
        )
        self.db_errors = Counter(
            "broadcaster_metrics_db_errors",
            "Scrapes whose broadcast figures could not be read (stale figures were served)",
            registry=self.registry,
        )
        self.database_up = Gauge(
            "broadcaster_database_up",
            "1 when the latest scrape read the database, 0 when it could not (alert on it)",
            registry=self.registry,
        )
        self._snapshot = DbSnapshot()
        self.registry.register(_Collector(pool, lambda: self._snapshot))

    async def refresh(self, conn: Conn) -> None:
        self._snapshot = DbSnapshot(
            by_state=await store.broadcasts_by_state(conn),
            active=await store.active_progress(conn),
            drill_runs=await store_drills.metrics_runs(conn),
            drill_latest=await store_drills.metrics_latest(conn),
            sightings_pending=await store.sightings_pending(conn),
        )
        self.database_up.set(1)

    def database_unreachable(self) -> None:
        """A scrape could not read the database: stale figures are served, and said so."""
        self.db_errors.inc()
        self.database_up.set(0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
