"""The load test suite: every scenario in turn, one JSON of figures, one report with charts.

    python -m loadtest                       # full run (make loadtest): 5 to 7 minutes
    python -m loadtest --quick --out /tmp/lt # tiny counts: a smoke test of the whole chain
    python -m loadtest pool paced            # some scenarios only (names: --list)

Each scenario is one of the scripts beside this file, run in a process of its own (`python -m
loadtest.<script>`), bounded in count by its arguments and in time by a timeout; each starts
what it needs (a scratch database, seeded; the mock SMSC in its own process; broadcaster
processes) and prints its figures as one JSON object on its last line. This runner keeps them,
checks them against the targets (issue 10), samples the machine's load meanwhile (the machine
may be shared), profiles the end-to-end broadcaster process with pyinstrument (`--profile`,
default in full mode), and writes `latest.json`, `latest.md`, SVG charts and the profile into
`--out` (default `loadtest/results/`). Exit status 1 if a scenario failed or timed out (a
missed target is reported, not an error).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broadcaster.settings import PROJECT_ROOT
from loadtest.common import description
from loadtest.machine import LoadSampler, loadavg, machine_info
from loadtest.profile import summarise_profile
from loadtest.report import write_report

RESULTS = PROJECT_ROOT / "loadtest" / "results"
GRACE = 15.0
"""Seconds a timed-out scenario gets after SIGINT to clean up (drop its database) before
SIGKILL."""
TAIL = 25
"""Lines of each scenario's output kept in the JSON."""


@dataclass(frozen=True)
class Target:
    """One figure of a scenario against its target: `key` in the scenario's JSON."""

    key: str
    label: str
    op: str
    """'>=', '>', '<', '<=' or '=='."""
    threshold: float
    unit: str = ""
    source: str = "issue 10"

    def met(self, value: float) -> bool:
        match self.op:
            case ">=":
                return value >= self.threshold
            case ">":
                return value > self.threshold
            case "<":
                return value < self.threshold
            case "<=":
                return value <= self.threshold
            case "==":
                return value == self.threshold
        raise ValueError(f"unknown operator {self.op!r}")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    module: str
    full: tuple[str, ...]
    quick: tuple[str, ...]
    timeout: float
    """Seconds, full mode (quick mode: QUICK_TIMEOUT)."""
    targets: tuple[Target, ...]


QUICK_TIMEOUT = 120.0
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "pool",
        "Pool only: our SMPP pool vs aiosmpplib's ESME",
        "loadtest.pool_vs_aiosmpplib",
        ("--parts", "300000", "--aiosmpplib-parts", "20000", "--repeat", "3"),
        ("--parts", "5000", "--aiosmpplib-parts", "500"),
        240,
        (Target("ratio", "pool parts/s ÷ aiosmpplib ESME parts/s", ">=", 10, "x"),),
    ),
    Scenario(
        "e2e",
        "End to end: PostgreSQL → engine → mock SMSC, 100k and 1M recipients",
        "loadtest.e2e",
        ("--recipients", "1000000"),
        ("--recipients", "20000"),
        480,
        (
            Target("msgs_per_s", "messages/s at 1M recipients", ">=", 50_000, "msg/s"),
            Target("first_submit_ms", "time to first submit_sm, 1M", "<", 250, "ms"),
            Target("baseline_first_submit_ms", "time to first submit_sm, 100k", "<", 250, "ms"),
            Target("rss_growth_mb", "peak RSS growth 100k → 1M", "<=", 30, "MB", "issue 6"),
        ),
    ),
    Scenario(
        "mock_receipts",
        "Mock SMSC alone with every part receipted: transceiver binds, every receipt answered",
        "loadtest.mock_receipts",
        ("--parts", "1000000", "--baseline"),
        ("--parts", "20000", "--baseline"),
        180,
        (
            Target(
                "parts_per_s", "parts/s with receipts (wall)", ">=", 200_000, "parts/s", "issue 22"
            ),
            Target(
                "parts_per_mock_cpu_s",
                "parts per second of mock CPU, with receipts",
                ">=",
                200_000,
                "parts/s",
                "issue 22",
            ),
        ),
    ),
    Scenario(
        "e2e_receipts",
        "End to end with every part receipted, against no receipts; status read every 0.5 s",
        "loadtest.e2e_receipts",
        ("--recipients", "1000000"),
        ("--recipients", "20000"),
        900,
        (
            Target(
                "msgs_per_s",
                "messages/s at 1M recipients, receipts flowing",
                ">=",
                50_000,
                "msg/s",
                "issue 22",
            ),
            Target("status_p99_ms_during", "status p99 during the run", "<", 100, "ms", "issue 22"),
            Target("status_p99_ms_after", "status p99 after the run", "<", 100, "ms", "issue 22"),
        ),
    ),
    Scenario(
        "receipt_intake",
        "Receipt intake: send's CPU per delivery receipt, read to staged, against the old path",
        "loadtest.receipt_intake",
        ("--receipts", "50000", "--repeat", "3"),
        ("--receipts", "5000", "--repeat", "1"),
        120,
        (
            Target(
                "ratio",
                "send CPU per receipt: old ÷ new intake (decode to COPY)",
                ">=",
                2,
                "x",
                "issue 22",
            ),
        ),
    ),
    Scenario(
        "paced",
        "Paced: contracted TPS enforced by the mock SMSC",
        "loadtest.paced",
        ("--binds", "4", "--tps", "500", "--seconds", "20"),
        ("--binds", "2", "--tps", "200", "--seconds", "1"),
        180,
        (
            Target("achieved_ratio", "achieved ÷ contracted parts/s", ">=", 0.97),
            Target("throttles", "throttles (ESME_RTHROTTLED + ESME_RMSGQFUL)", "==", 0),
        ),
    ),
    Scenario(
        "degraded",
        "Degraded: one SMSC throttling above 60% of contract, another down mid-run",
        "loadtest.degraded",
        ("--binds", "2", "--tps", "1000", "--throttle-above", "0.6", "--down-after", "8"),
        ("--binds", "1", "--tps", "500", "--down-after", "0.5", "--parts", "1000"),
        240,
        (Target("efficiency", "ideal ÷ actual completion time", ">=", 0.85),),
    ),
    Scenario(
        "faults",
        "Faults: 2% throttles, a disconnect every 1,000 submits, vs a no-fault baseline",
        "loadtest.faults",
        ("--parts", "100000", "--repeat", "3"),
        ("--parts", "2000", "--repeat", "1"),
        300,
        (
            Target("throttle_ratio", "2% throttles: parts/s ÷ no fault", ">=", 0.8, "", "issue 20"),
            Target(
                "disconnect_ratio",
                "a disconnect every 1,000 submits: parts/s ÷ no fault",
                ">=",
                0.7,
                "",
                "issue 20",
            ),
        ),
    ),
    Scenario(
        "scaleout",
        "Scale-out: 1 vs 2 worker processes on one broadcast, TPS-limited SMSC",
        "loadtest.scaleout",
        ("--recipients", "300000", "--tps", "5000"),
        ("--recipients", "2000", "--tps", "1000"),
        360,
        (Target("speedup", "2 workers ÷ 1 worker (time)", ">=", 1.5, "x"),),
    ),
    Scenario(
        "crash",
        "Crash: a worker killed -9 three times, restarted with `worker --until-idle` each time",
        "loadtest.crash",
        ("--recipients", "200000", "--kills", "3"),
        ("--recipients", "5000", "--kills", "2", "--lease-seconds", "2"),
        300,
        (
            Target("missing", "recipients missing (mock SMSC record)", "==", 0, "", "issue 20"),
            Target("completed", "broadcast completed, no SQL on leases", "==", 1, "", "issue 20"),
            Target(
                "duplicates_over_bound",
                "duplicates beyond the parts unrecorded at the kills",
                "==",
                0,
                "",
                "issue 20",
            ),
        ),
    ),
    Scenario(
        "db_outage",
        "Database outage: PostgreSQL stopped 10 s mid-send, started again, no restart by hand",
        "loadtest.db_outage",
        ("--recipients", "200000", "--outage", "10"),
        ("--recipients", "5000", "--outage", "1"),
        300,
        (
            Target("missing", "recipients missing (mock SMSC record)", "==", 0, "", "issue 20"),
            Target("completed", "broadcast completed by the same worker", "==", 1, "", "issue 20"),
            Target(
                "duplicates_over_window",
                "duplicates beyond the in-flight window",
                "==",
                0,
                "",
                "issue 20",
            ),
        ),
    ),
)
GEO = Scenario(
    "geo",
    "Geography: polygon → cells, preview, present streaming, location ingest (2M subscribers, "
    "300k cells; `python -m loadtest.geo --subscribers 10000000` for the 10M figure)",
    "loadtest.geo",
    ("--subscribers", "2000000", "--sites", "100000", "--updates", "1000000"),
    ("--subscribers", "20000", "--sites", "2000", "--updates", "20000"),
    600,
    (
        Target("shape_cells_ms", "département-sized polygon → cells", "<", 50, "ms", "issue 23"),
        Target("preview_ms", "preview of that polygon", "<", 300, "ms", "issue 23"),
        Target("stream_rows_per_s", "streaming a polygon target", ">=", 1_000_000, "rows/s",
               "issue 23"),
        Target("ingest_per_s", "location updates ingested", ">=", 200_000, "updates/s",
               "issue 23"),
        Target("shared_ok", "two workers share a polygon target, each number once", "==", 1,
               "", "issue 23"),
    ),
)  # fmt: skip
MAP = Scenario(
    "map_reach",
    "Console map: the reach of a département-sized polygon and a 10 km circle over HTTP, against "
    "the API's dry run in the same run (1M subscribers, 300k cells)",
    "loadtest.map_reach",
    ("--subscribers", "1000000", "--sites", "100000"),
    ("--subscribers", "20000", "--sites", "2000"),
    600,
    (
        Target("polygon_reach_ms", "map reach of a département-sized polygon", "<", 300, "ms",
               "issue 24"),
        Target("polygon_reach_bytes", "its answer on the wire (gzipped)", "<", 200_000, "B",
               "issue 24"),
    ),
)  # fmt: skip
SCENARIOS = (*SCENARIOS, GEO, MAP)
BY_NAME = {s.name: s for s in SCENARIOS}


def _prefixed_copy(stream: Any, name: str, keep: list[str]) -> None:
    for line in stream:
        line = line.rstrip("\n")
        keep.append(line)
        print(f"[{name}] {line}", flush=True)


def run_scenario(
    scenario: Scenario, args: Sequence[str], timeout: float, sampler: LoadSampler
) -> dict[str, Any]:
    """Run one scenario script in its own process group; its figures and how it went."""
    command = [sys.executable, "-m", scenario.module, *args]
    print(f"== {scenario.name}: {' '.join(command[1:])} (timeout {timeout:g} s)", flush=True)
    started_at = sampler.now()
    started = time.monotonic()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines: list[str] = []
    status = "ok"
    error = ""
    with tempfile.TemporaryFile("w+") as stderr:
        proc = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own process group: a timeout stops all of it
        )
        assert proc.stdout is not None
        reader = threading.Thread(
            target=_prefixed_copy, args=(proc.stdout, scenario.name, lines), daemon=True
        )
        reader.start()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            status = "timeout"
            error = f"no result within {timeout:g} s"
            _stop_group(proc)
        reader.join(timeout=10)
        proc.stdout.close()
        stderr.seek(0)
        errors = stderr.read()
    seconds = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures: dict[str, Any] = {}
    if status == "ok":
        try:
            figures = json.loads(lines[-1]) if lines else {}
            if not isinstance(figures, dict):
                raise ValueError("the last line is not a JSON object")
        except (json.JSONDecodeError, ValueError) as exc:
            status = "failed"
            error = f"exit status {proc.returncode}; no figures on the last line ({exc})"
            figures = {}
        if proc.returncode != 0 and status == "ok":
            status = "failed"
            error = f"exit status {proc.returncode}"
    if status != "ok":
        error += "\n" + "\n".join(errors.strip().splitlines()[-30:])
        print(f"== {scenario.name}: {status}: {error}", flush=True)
    else:
        print(f"== {scenario.name}: done in {seconds:.1f} s", flush=True)
    return {
        "title": scenario.title,
        "status": status,
        "error": error.strip() or None,
        "command": "python -m "
        + " ".join(
            [scenario.module, *(a if not a.endswith(".pyisession") else "FILE" for a in args)]
        ),
        "seconds": round(seconds, 1),
        "t_start": round(started_at, 1),
        "t_end": round(sampler.now(), 1),
        "cpu_seconds": round(
            (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime),
            1,
        ),
        "load": sampler.summary(started_at, sampler.now()),
        "figures": figures,
        "output": lines[:-1][-TAIL:] if status == "ok" else lines[-TAIL:],
    }


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """SIGINT the scenario's process group (its scratch database is dropped), then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(GRACE)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def check_targets(scenario: Scenario, result: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for target in scenario.targets:
        value = result["figures"].get(target.key)
        met = isinstance(value, int | float) and target.met(float(value))
        rows.append(
            {
                "scenario": scenario.name,
                "key": target.key,
                "label": target.label,
                "op": target.op,
                "threshold": target.threshold,
                "unit": target.unit,
                "source": target.source,
                "value": value,
                "met": met,
            }
        )
    return rows


def _pyinstrument_available() -> bool:
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest",
        description=description(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios: " + ", ".join(f"{s.name} ({s.title})" for s in SCENARIOS),
    )
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help="default: all")
    parser.add_argument("--quick", action="store_true", help="tiny counts (a smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument("--profile", action="store_true", default=None, help="default: full")
    profile.add_argument("--no-profile", action="store_false", dest="profile")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args(argv)
    if args.list:
        for s in SCENARIOS:
            print(f"{s.name:10} {s.title}\n{'':10} python -m {s.module} {' '.join(s.full)}")
        return 0
    unknown = [n for n in args.scenarios if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {list(BY_NAME)}")
    chosen = [s for s in SCENARIOS if not args.scenarios or s.name in args.scenarios]
    want_profile = (not args.quick) if args.profile is None else bool(args.profile)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    started = datetime.now(UTC)
    began = time.monotonic()
    info = machine_info()
    load_start = loadavg()
    sampler = LoadSampler(interval=1.0)
    sampler.start()
    results: dict[str, Any] = {}
    targets: list[dict[str, Any]] = []
    profile_summary: dict[str, Any] | None = None
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bc_loadtest_") as scratch:
        session = Path(scratch) / "e2e.pyisession"
        try:
            for scenario in chosen:
                extra: list[str] = []
                if scenario.name == "e2e" and want_profile:
                    if _pyinstrument_available():
                        extra = ["--profile", str(session)]
                    else:
                        notes.append(
                            "no profile: pyinstrument is not installed "
                            "(pip install -e '.[loadtest]')"
                        )
                base = scenario.quick if args.quick else scenario.full
                timeout = QUICK_TIMEOUT if args.quick else scenario.timeout
                result = run_scenario(scenario, [*base, *extra], timeout, sampler)
                results[scenario.name] = result
                targets += check_targets(scenario, result)
        finally:
            sampler.stop()
        if session.exists():
            recipients = results.get("e2e", {}).get("figures", {}).get("recipients", 0)
            profile_summary = summarise_profile(session, out, int(recipients or 0))
    finished = datetime.now(UTC)
    document: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": finished.isoformat(timespec="seconds"),
        "seconds": round(time.monotonic() - began, 1),
        "mode": "quick" if args.quick else "full",
        "command": "python -m loadtest " + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": info,
        "load": {
            "loadavg_start": load_start,
            "loadavg_end": loadavg(),
            **sampler.summary(),
            "other_by_command": dict(
                sorted(sampler.other_by_command.items(), key=lambda kv: -kv[1])[:8]
            ),
            "timeline": [
                {"t": s.t, "busy": s.busy, **s.cores, "load1": s.load1} for s in sampler.samples
            ],
        },
        "scenarios": results,
        "targets": targets,
        "targets_met": sum(1 for t in targets if t["met"]),
        "targets_total": len(targets),
        "profile": profile_summary,
        "notes": notes,
    }
    (out / "latest.json").write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")
    write_report(document, out)
    failed = [name for name, r in results.items() if r["status"] != "ok"]
    print(
        f"== {document['targets_met']}/{document['targets_total']} targets met; "
        f"{len(failed)} scenario(s) failed {failed or ''}; report: {out / 'latest.md'}",
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
