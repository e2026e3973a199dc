"""`broadcaster demo` as a user runs it: embedded PostgreSQL, in-process mock SMSC, one report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path


def test_demo_delivers_each_recipient_exactly_its_text_once(tmp_path: Path) -> None:
    record = tmp_path / "record.jsonl"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.pop("BROADCASTER_SMSC_URL", None)
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "broadcaster", "demo", "--subscribers", "20000"),
            *("--json", "--record", str(record)),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["state"] == "completed"
    assert report["recipients"] > 0
    assert report["accepted"] == report["recipients"]
    assert report["failed"] == 0 and report["duplicates"] == 0
    assert report["verified"] == report["recipients"]
    assert report["mismatched"] == report["missing"] == report["unexpected"] == 0
    for key in ("submitted", "seconds", "msgs_per_s"):
        assert report[key] > 0
    # Independently of the demo's own check: the record holds each destination once, and the
    # number of recipients of each text equals the plan's group sizes.
    lines = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines()]
    destinations = Counter(line["destination"] for line in lines)
    assert len(destinations) == report["recipients"]
    assert max(destinations.values()) == 1
    received_per_text = Counter(line["text"] for line in lines)
    expected_per_text: Counter[str] = Counter()
    for group in report["groups"]:
        expected_per_text[group["text"]] += group["recipients"]
    assert received_per_text == expected_per_text
    # Several languages, including a UCS-2 one, were exercised.
    assert {g["encoding"] for g in report["groups"]} == {"gsm7", "ucs2"}
    assert "embedded_postgres_started" in proc.stderr
    # Then the polygon: the numbers present in it, each got its text once, nobody else.
    polygon = report["polygon"]
    assert polygon["state"] == "completed" and polygon["area"].startswith("polygon:")
    assert polygon["cells_synthesised"] > 0 and polygon["locations_ingested"] > 0
    assert polygon["recipients"] > 0 and polygon["accepted"] == polygon["recipients"]
    assert polygon["verified"] == polygon["recipients"]
    assert polygon["mismatched"] == polygon["missing"] == polygon["unexpected"] == 0
    presence = polygon["preview"]["presence"]
    assert presence["mode"] == "auto" and presence["cells"] > 0
