"""The Grafana dashboard is valid JSON, queries only metrics the code exports, and shows every one
of them (a metric added without a panel fails here)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from metric_names import exported_metric_names

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "broadcaster.json"


def _queries(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def test_dashboard_shows_every_exported_metric_and_nothing_else() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "broadcaster"
    used = set(re.findall(r"\bbroadcaster_[a-z_]+", " ".join(_queries(dashboard))))
    exported = exported_metric_names()
    assert used - exported == set(), "the dashboard queries metrics the code does not export"
    assert exported - used == set(), "exported metrics without a panel"


def test_panels_have_unique_ids_and_a_datasource() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert all(panel["datasource"]["uid"] == "${datasource}" for panel in dashboard["panels"])
