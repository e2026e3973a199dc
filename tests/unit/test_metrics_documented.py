"""Every metric `/metrics` exposes is described in docs/metrics.md, and nothing more."""

from __future__ import annotations

import re
from pathlib import Path

from metric_names import exported_metric_names

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


def test_every_exported_metric_is_documented_and_only_those() -> None:
    documented = set(re.findall(r"^\| `(broadcaster_[a-z_]+)` \|", DOC.read_text(), re.MULTILINE))
    exported = exported_metric_names()
    assert exported - documented == set(), "exported but not in docs/metrics.md"
    assert documented - exported == set(), "in docs/metrics.md but no longer exported"
