"""The metric names `/metrics` exposes, read from a registry built as `serve` builds it, over an
SMPP pool and a database snapshot that give every family at least one sample."""

from __future__ import annotations

import asyncio
import re

from broadcaster.http.metrics import DbSnapshot, Metrics
from broadcaster.settings import SmscConfig
from broadcaster.smpp.pool import SmppPool

_SAMPLE = re.compile(r"^(broadcaster_[a-z_]+)[{ ]", re.MULTILINE)


def exposition() -> str:
    """A full /metrics page (the pool is built, never started: no network)."""

    async def render() -> str:
        pool = SmppPool([SmscConfig()], lambda *args: None)
        pool.stats.failed_by_status[0x58] = 1
        pool.stats.retried_by_status[0x08] = 1
        metrics = Metrics(lambda: pool)
        metrics.requests.labels("getBroadcast", "200").inc()
        metrics.database_up.set(1)
        metrics._snapshot = DbSnapshot(
            by_state=[{"kind": "live", "state": "running", "n": 1}],
            active=[
                {
                    "id": 1,
                    "kind": "live",
                    "state": "running",
                    "recipients": 10,
                    "parts": 10,
                    "chunks_total": 2,
                    "chunks_done": 1,
                    "parts_accepted": 5,
                    "parts_failed": 1,
                    "parts_delivered": 4,
                }
            ],
            drill_runs=[{"schedule": "s", "outcome": "missed", "alarm": "missed", "n": 1}],
            drill_latest=[{"schedule_name": "s", "verdict": "fail"}],
            sightings_pending=1,
        )
        return metrics.render().decode()

    return asyncio.run(render())


def exported_metric_names() -> set[str]:
    """Every sample name (counters with their `_total`), without prometheus_client's `_created`."""
    return {n for n in _SAMPLE.findall(exposition()) if not n.endswith("_created")}
