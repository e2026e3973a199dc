"""The human report of a load test run: `latest.md` and its SVG charts, from `latest.json`.

    python -m loadtest.report [DIR]     # re-render DIR/latest.md from DIR/latest.json

Everything measured comes from the JSON document `loadtest.run` writes; the prose here says how
each scenario measures, and what the profile led to (the tuning section).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from loadtest import charts
from loadtest.charts import Bar, Line, Series

OPS = {">=": "≥", ">": ">", "<": "<", "<=": "≤", "==": "="}
CHART_FILES = (
    "pool.svg",
    "e2e.svg",
    "mock_receipts.svg",
    "e2e_receipts.svg",
    "receipt_intake.svg",
    "paced.svg",
    "degraded.svg",
    "faults.svg",
    "scaleout.svg",
    "crash.svg",
    "db_outage.svg",
    "geo.svg",
    "map_reach.svg",
    "load.svg",
)


def num(value: Any, digits: int = 1) -> str:
    """1,234,567 / 12.3 / 0.9862 / — for None."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer():
            return f"{value:,.0f}"
        if abs(value) < 1:
            return f"{value:.4g}"
        return f"{value:,.{digits}f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {num(v)}" for k, v in value.items()) or "—"
    if isinstance(value, list):
        return ", ".join(num(v) for v in value) or "—"
    return str(value)


def _table(rows: Sequence[tuple[str, Any]], head: tuple[str, str] = ("figure", "value")) -> str:
    lines = [f"| {head[0]} | {head[1]} |", "|---|---:|"]
    lines += [f"| {label} | {num(value)} |" for label, value in rows]
    return "\n".join(lines)


PERCENT_KEYS = ("achieved_ratio", "efficiency", "throttle_ratio", "disconnect_ratio")
"""Target figures shown as percentages."""


def _target_value(row: dict[str, Any]) -> str:
    value = row["value"]
    if value is None:
        return "—"
    unit = row["unit"]
    if row["key"] in PERCENT_KEYS:
        return f"{value:.1%}"
    return f"{num(value)} {unit}".strip()


def _target_threshold(row: dict[str, Any]) -> str:
    threshold = row["threshold"]
    if row["key"] in PERCENT_KEYS:
        text = f"{threshold:.0%}"
    else:
        text = f"{num(threshold)} {row['unit']}".strip()
    return f"{OPS[row['op']]} {text}"


# -- charts -------------------------------------------------------------------------------------


def chart_pool(f: dict[str, Any]) -> str:
    ours, theirs = f["ours_parts_per_s"], f["aiosmpplib_parts_per_s"]
    return charts.bar_chart(
        f"Pool only: parts/s, ours vs aiosmpplib's ESME ({num(f['ratio'])}x)",
        [
            Bar(
                "our SmppPool", ours, charts.OURS, f"{ours:,} ({f['cpu_us_per_part']} µs CPU/part)"
            ),
            Bar(
                "aiosmpplib ESME",
                theirs,
                charts.THEIRS,
                f"{theirs:,} ({f['aiosmpplib_cpu_us_per_part']} µs CPU/part)",
            ),
        ],
        "parts/s",
        [Line(10 * theirs, "target: 10 × aiosmpplib")],
    )


def chart_e2e(f: dict[str, Any]) -> str:
    runs = f.get("runs", {})
    bars = [
        Bar(
            f"{run['recipients']:,} recipients",
            run["msgs_per_s"],
            charts.OURS,
            f"{run['msgs_per_s']:,.0f} msg/s, first submit {run['first_submit_ms']} ms",
        )
        for label in ("baseline", "full")
        if (run := runs.get(label))
    ]
    return charts.bar_chart(
        "End to end: messages/s (broadcaster process)",
        bars,
        "messages/s",
        [Line(50_000, "target at 1M: 50,000 msg/s")],
    )


def chart_mock_receipts(f: dict[str, Any]) -> str:
    bars = [
        Bar("no receipts (fast path)", f["baseline_parts_per_s"], charts.THEIRS,
            f"{f['baseline_parts_per_s']:,} parts/s"),
        Bar("every part receipted", f["parts_per_s"], charts.OURS,
            f"{f['parts_per_s']:,} parts/s ({f['parts_per_mock_cpu_s']:,} per CPU-second)"),
    ] if f.get("baseline_parts_per_s") else []  # fmt: skip
    return charts.bar_chart(
        "Mock SMSC alone: parts/s with and without receipts",
        bars,
        "parts/s",
        [Line(200_000, "target: 200,000 parts/s")],
    )


def chart_receipt_intake(f: dict[str, Any]) -> str:
    bars = [
        Bar("old path", f["old_us_per_receipt"], charts.THEIRS,
            f"{num(f['old_us_per_receipt'], 2)} µs (COPY {num(f['old_copy_us'], 2)})"),
        Bar("new path", f["new_us_per_receipt"], charts.OURS,
            f"{num(f['new_us_per_receipt'], 2)} µs (COPY {num(f['new_copy_us'], 2)}):"
            f" {num(f['ratio'], 2)}x less"),
    ]  # fmt: skip
    return charts.bar_chart(
        f"Receipt intake, {f['receipts']:,} receipts: send's CPU per receipt",
        bars,
        "µs per receipt",
        [Line(f["old_us_per_receipt"] / 2, "target: half the old path")],
    )


def chart_e2e_receipts(f: dict[str, Any]) -> str:
    bars = [
        Bar("no receipts", f["baseline_msgs_per_s"], charts.THEIRS,
            f"{f['baseline_msgs_per_s']:,.0f} msg/s"),
        Bar("every part receipted", f["msgs_per_s"], charts.OURS,
            f"{f['msgs_per_s']:,.0f} msg/s ({num(f['receipts_ratio'], 2)}x)"),
    ]  # fmt: skip
    return charts.bar_chart(
        f"End to end, {f['recipients']:,} recipients: messages/s",
        bars,
        "messages/s",
        [Line(50_000, "target at 1M: 50,000 msg/s")],
    )


def chart_paced(f: dict[str, Any]) -> str:
    contract = f["contracted_parts_per_s"]
    return charts.line_chart(
        f"Paced: accepted parts/s ({f['binds']} binds × {num(f['tps_per_bind'])} parts/s)",
        [Series("accepted by the SMSC, per second", [(t + 0.5, r) for t, r in f["series"]])],
        "seconds after the first submit_sm",
        "parts/s",
        [
            Line(contract, f"contract {contract:,.0f}/s", charts.GREY),
            Line(0.97 * contract, "target: 97% of the contract", charts.TARGET, left=True),
        ],
    )


def chart_degraded(f: dict[str, Any]) -> str:
    names = sorted(f["series"])
    labels = {names[0]: "site A (throttles above 60%)"} if names else {}
    if len(names) > 1:
        labels[names[1]] = "site B (killed mid-run)"
    series = [
        Series(labels.get(name, name), [(t + 0.5, r) for t, r in f["series"][name]], color)
        for name, color in zip(names, (charts.OURS, charts.THEIRS), strict=False)
    ]
    both = f["capacity_a_parts_per_s"] + f["capacity_b_parts_per_s"]
    alone = f["capacity_a_parts_per_s"]
    down = f.get("b_down_at_s")
    end = f["seconds"]
    capacity = [(0.0, both), (down, alone), (end, alone)] if down is not None else [(0.0, both)]
    series.append(Series("real capacity (A + B, then A)", capacity, charts.GREY, step=True))
    marks = [Line(down, "B down", charts.TARGET)] if down is not None else []
    return charts.line_chart(
        f"Degraded: accepted parts/s per site (efficiency {f['efficiency']:.1%})",
        series,
        "seconds after the first submit_sm",
        "parts/s",
        marks=marks,
    )


def chart_faults(f: dict[str, Any]) -> str:
    base = f["baseline_parts_per_s"]
    throttle, disconnect = f["throttle_parts_per_s"], f["disconnect_parts_per_s"]
    every = f"{f['disconnect_after']:,}"
    return charts.bar_chart(
        f"Faults: parts/s, medians of {f['repeat']} runs each, vs a no-fault baseline",
        [
            Bar("no fault", base, charts.GREY, f"{base:,.0f}"),
            Bar(
                f"{f['throttle_share']:.0%} throttled",
                throttle,
                charts.OURS,
                f"{throttle:,.0f} ({f['throttle_ratio']:.0%})",
            ),
            Bar(
                f"disconnect / {every} submits",
                disconnect,
                charts.OURS,
                f"{disconnect:,.0f} ({f['disconnect_ratio']:.0%})",
            ),
        ],
        "parts/s",
        [Line(0.8 * base, "target, throttles: 80%"), Line(0.7 * base, "target, disconnects: 70%")],
    )


def chart_scaleout(f: dict[str, Any]) -> str:
    one = f.get("one_worker_msgs_per_s") or f["recipients"] / f["one_worker_s"]
    two = f.get("two_workers_msgs_per_s") or f["recipients"] / f["two_workers_s"]
    return charts.bar_chart(
        f"Scale-out: messages/s, 1 vs 2 workers ({num(f['speedup'])}x)",
        [
            Bar("1 worker (2 binds)", one, charts.OURS, f"{one:,.0f} msg/s, {f['one_worker_s']} s"),
            Bar(
                "2 workers (4 binds)", two, charts.GOOD, f"{two:,.0f} msg/s, {f['two_workers_s']} s"
            ),
        ],
        "messages/s",
        [Line(1.5 * one, "target: 1.5 × one worker")],
    )


def chart_crash(f: dict[str, Any]) -> str:
    return charts.bar_chart(
        f"Crash: {f['kills']} kills -9, restarted with worker --until-idle "
        f"({f['missing']} missing)",
        [
            Bar("sent twice (mock SMSC)", f["duplicates"], charts.OURS),
            Bar("bound: accepted, unrecorded at the kills", f["duplicate_bound"], charts.GREY),
        ],
        "parts / recipients",
    )


def chart_db_outage(f: dict[str, Any]) -> str:
    resume = f.get("resume_after_return_ms")
    return charts.bar_chart(
        f"Database outage of {num(f['outage_s'])} s: next submit "
        f"{num(resume)} ms after its return ({f['missing']} missing)",
        [
            Bar("sent twice (mock SMSC)", f["duplicates"], charts.OURS),
            Bar("submitted after the stop", f["submitted_after_stop"], charts.GREY),
            Bar("in-flight window (binds × window)", f["in_flight_window"], charts.TARGET),
        ],
        "parts / recipients",
    )


def chart_geo(f: dict[str, Any]) -> str:
    """Each geography figure as a share of its target: 100% or more meets it."""
    shares = [
        ("shape → cells", 50 / max(f["shape_cells_ms"], 1e-9), f"{num(f['shape_cells_ms'])} ms"),
        ("preview", 300 / max(f["preview_ms"], 1e-9), f"{num(f['preview_ms'])} ms"),
        ("stream", f["stream_rows_per_s"] / 1_000_000, f"{f['stream_rows_per_s']:,}/s"),
        ("ingest", f["ingest_per_s"] / 200_000, f"{f['ingest_per_s']:,}/s"),
    ]
    return charts.bar_chart(
        f"Geography ({f['subscribers']:,} subscribers, {f['cells']:,} cells): share of target",
        [
            Bar(label, 100 * share, charts.GOOD if share >= 1 else charts.THEIRS, note)
            for label, share, note in shares
        ],
        "% of target",
        [Line(100, "target")],
    )


def chart_map_reach(f: dict[str, Any]) -> str:
    """The console map's reach of each shape against the API's dry run of the same shape."""
    bars = []
    for shape in ("polygon", "circle"):
        bars.append(Bar(f"{shape}: dry run", f[f"{shape}_dry_run_ms"], charts.THEIRS, "API"))
        bars.append(
            Bar(
                f"{shape}: map reach",
                f[f"{shape}_reach_ms"],
                charts.GOOD if f[f"{shape}_reach_ms"] < 300 else charts.OURS,
                f"{f[f'{shape}_cells_drawn']:,} of {f[f'{shape}_cells']:,} cells drawn",
            )
        )
    return charts.bar_chart(
        f"Console map ({f['subscribers']:,} subscribers): reach of a shape, median ms",
        bars,
        "ms",
        [Line(300, "target (polygon)")],
    )


def chart_load(doc: dict[str, Any]) -> str:
    timeline = doc["load"].get("timeline", [])
    cpus = doc["machine"].get("cpus") or 2
    series = [
        Series("machine busy", [(p["t"], p["busy"]) for p in timeline], charts.GREY),
        Series("load test", [(p["t"], p["ours"] + p["ours_pg"]) for p in timeline], charts.OURS),
        Series(
            "everything else",
            [(p["t"], p["pg_other"] + p["other"]) for p in timeline],
            charts.TARGET,
        ),
    ]
    marks = [
        Line(r["t_start"], name, charts.GOOD)
        for name, r in doc["scenarios"].items()
        if "t_start" in r
    ]
    return charts.line_chart(
        "Machine load during the run (busy cores)",
        series,
        "seconds since the start of the run",
        "cores",
        [Line(float(cpus), f"{cpus} cores", charts.GREY, dashed=True)],
        marks,
    )


CHARTS: dict[str, Callable[[dict[str, Any]], str]] = {
    "pool": chart_pool,
    "e2e": chart_e2e,
    "mock_receipts": chart_mock_receipts,
    "e2e_receipts": chart_e2e_receipts,
    "receipt_intake": chart_receipt_intake,
    "paced": chart_paced,
    "degraded": chart_degraded,
    "faults": chart_faults,
    "scaleout": chart_scaleout,
    "crash": chart_crash,
    "db_outage": chart_db_outage,
    "geo": chart_geo,
    "map_reach": chart_map_reach,
}

# -- prose --------------------------------------------------------------------------------------

HOW = {
    "pool": """\
Our `SmppPool` and aiosmpplib's `ESME` push single-part GSM 03.38 messages into the
same mock SMSC (its own process, no TPS limit, recording off) and wait for every
`submit_sm_resp`; CPU is `time.process_time()` of the client process, so the mock's is not
counted. Ours submits with back-pressure as the engine does (2 binds, window 256);
aiosmpplib's is fed through its broker, with an O(1) correlator (its default one is O(n) per
call, which would only make it slower). The two alternate for several rounds and the figures are
medians; aiosmpplib gets fewer parts (it is rates that are compared).""",
    "e2e": """\
A scratch database is seeded with 1M synthetic subscribers; the mock SMSC runs in its own
process without a TPS limit; `broadcaster send` runs in its own process, first to ~100k
recipients (a prefix of départements), then to all 1M. Figures are the broadcaster's own report:
messages/s = recipients recorded ÷ seconds from the start of the run (binds included) to the
last outcome written; time to first submit from the runner's start; peak RSS and CPU of that
process. Every outcome is written to PostgreSQL with COPY, as in production.""",
    "mock_receipts": """\
The mock SMSC (its own process, `--receipts --receipt-delay-ms 200`, recording off) against a
client that does no per-part Python work on the way out: submit_sm asking for a receipt,
encoded once, sent in blocks over 2 transceiver binds (window 20,000), and on the way back the
headers walked, each receipt's deliver_sm answered with a deliver_sm_resp. Parts/s = parts ÷
(first submit to last receipt, one receipt delay included); the mock's counts prove every part
accepted, every receipt sent and acknowledged, nothing malformed. First the same without
receipts (the fast path) for the ratio. On a shared machine the wall rate is also the
scheduler's: parts per second of mock CPU is what one core of its own would take.""",
    "e2e_receipts": """\
One scratch database seeded with N synthetic subscribers; `broadcaster send` (its own process)
to all of them twice, each time against a mock SMSC process of its own: without receipts (the
baseline), then with every part receipted 200 ms later (`--receipts --receipt-delay-ms 200`,
transceiver binds: the receipts are matched and the roll-ups moved while sending goes on).
During the receipts run and 5 s after it, a probe reads the broadcast's status (`progress`:
what `broadcaster status`, the console, the API and /metrics read) every 0.5 s and times it.
CPU per message: the send process, the mock and the scratch database's PostgreSQL backends
(sampled from /proc). Database size per million recipients counts both runs' outcomes.""",
    "receipt_intake": """\
The CPU the sending process spends on each delivery receipt, from the octets read to the rows
COPYed, with no SMSC and no socket: N receipt deliver_sm written by the mock SMSC's own templates
(its default configuration: appendix B text and the two TLVs) are fed in reads of 64 KiB to a
real `SmppSession` and `SmppPool`, whose receipts go to a real `ReceiptRecorder` (id form
settled); every 15,000 receipts its rows are COPYed into the staging table of a scratch
database, as `store.receipts.record` does before matching (the matching statement is the
server's work, not counted). The old path is the same pipeline with the functions before issue
22's short cut, kept in the script: the strict decode of every deliver_sm, a frozen dataclass
per receipt, a datetime per receipt, aware datetimes and a text[] in the COPY. CPU is the
process's own (`time.process_time`), best of the runs, old and new alternating; the rows both
stage are checked to be the same receipts.""",
    "paced": """\
The mock SMSC enforces a contract per bind (`--tps`, a token bucket 0.1 s deep, and the
window): any part beyond it is answered ESME_RTHROTTLED (or ESME_RMSGQFUL). One
`broadcaster worker` process, configured with the same contract, runs a broadcast that takes
about 20 s at that rate. The achieved rate is the SMSC's view: parts it accepted over the span
from the first to the last `submit_sm` it received. The pacer aims at 98.5% of the contract
(margin for timer jitter), so 98.5% is the ceiling by design.""",
    "degraded": """\
Two mock SMSCs (sites), each in its own process, both contracted at 1,000 parts/s per bind
× 2 binds. Site A really accepts only 60% of that (ESME_RTHROTTLED beyond); site B is
healthy until it is killed with SIGKILL (no unbind) 8 s after it accepted its first part. The
real capacity is 1,200 + 2,000 parts/s while both are up, 1,200 after; the ideal completion
time sends every part at that capacity from the first submit. Efficiency = ideal ÷ actual
(first submit to last answer, from the database).""",
    "faults": """\
One scratch database; the same broadcast (a new one each run, 100k parts) is sent by one
`broadcaster worker` process to a mock SMSC in its own process, with no TPS limit, in three
runs: no fault; 2% of the parts answered ESME_RTHROTTLED at random; every connection closed
by the SMSC after 1,000 submit_sm. All three use the mock's per-PDU path (the baseline with a
0% error rate). A warm-up run comes first; then the three in turn, 3 times, and each figure is
the median of its runs (the machine is shared). Throughput = accepted parts ÷ (first submit to
last answer), from the database; ratio = fault ÷ baseline. Before issue 20 these cost 98% and
99% of the throughput (the pacer cut the rate on every throttle; every lost connection grew the
reconnect backoff).""",
    "scaleout": """\
One broadcast (all of a 300k-subscriber scratch database) is run by 1, then by 2
`broadcaster worker` processes sharing it through the chunk leases in PostgreSQL. The mock SMSC
limits each bind to 5,000 parts/s and each worker opens 2 binds, so the SMSC side is the limit
and a second worker brings twice the binds. Speed-up = time with 1 worker ÷ time with 2;
`sent twice` counts (msisdn, part) with more than one outcome (must be 0).""",
    "crash": """\
`broadcaster worker --until-idle` (its own process; the mock SMSC in the test's process,
recording every text) is killed with SIGKILL at random points, three times; after each kill it is
started again exactly as an operator would, and nothing touches the leases in the database: the
new worker waits for the dead one's leases to expire (`--lease-seconds`, 10 s here) and takes
its chunks up. Judged by the mock's record: nobody missing, and recipients sent twice no more
than the parts the SMSC had accepted and the dead worker had not recorded.""",
    "db_outage": """\
A throwaway PostgreSQL cluster of the scenario's own (the shared server is never touched) holds
200k subscribers; one `broadcaster worker --until-idle` process sends to all of them through
the mock SMSC (in the scenario's process, recording every text; 2 binds, window 256). Once a
quarter of the parts are accepted the cluster is stopped with `pg_ctl stop -m immediate`, kept
down 10 s and started again; nobody restarts the worker. It must stop submitting while it
cannot record outcomes (parts in flight are answered and kept in memory), keep its binds and
resume by itself. Judged by the mock's record: nobody missing, duplicates within the in-flight
window; the time from the database's return to the next submit is measured by polling the
mock every 2 ms. The cluster keeps acknowledged commits (`synchronous_commit=on`, as a real
server): with the throwaway default, commits of the last ~0.6 s before the stop were lost and
their parts sent again.""",
    "geo": """\
A scratch database gets N synthetic subscribers, 300k synthetic cells (by population, denser in
cities) and the last-seen locations of 60% of the subscribers plus visitors (up to 8 h old).
The polygon is Gironde's vendored outline. Shape → cells is the PostGIS query alone (median of
5); the preview is the whole plan (median of 3); the stream is the store's COPY of every chunk
of that broadcast (with each chunk's claim and commit, too); two workers then share a second
such broadcast through the leases; finally 1M location updates go through `locations.ingest`
(checked and appended to the sightings with COPY, against a plain COPY of the same CSV), the
polygon is previewed with them pending, they are compacted into the last-seen table (the
set-based upsert) and it is previewed again (the same numbers).""",
    "map_reach": """\
The console's map asks `/console/geo/reach` for the reach of what is drawn, as the shape
changes. A scratch database gets N synthetic subscribers and 300k synthetic cells; the polygon is
Gironde's vendored outline, the circle 10 km around Paris. Each shape is asked of the API's dry run
(`POST /v1/broadcasts`, the same count) and of the map's endpoint, alternately, 5 times each; the
medians, and the map's answer on the wire (gzipped, at most 1,000 cells drawn). The two counts
must agree.""",
}


def figures_rows(name: str, f: dict[str, Any]) -> list[tuple[str, Any]]:
    if name == "pool":
        return [
            ("our pool: parts/s", f.get("ours_parts_per_s")),
            ("aiosmpplib ESME: parts/s", f.get("aiosmpplib_parts_per_s")),
            ("ratio (ours ÷ aiosmpplib)", f.get("ratio")),
            ("our CPU per part, µs", f.get("cpu_us_per_part")),
            ("aiosmpplib CPU per part, µs", f.get("aiosmpplib_cpu_us_per_part")),
            ("CPU ratio (aiosmpplib ÷ ours)", f.get("cpu_ratio")),
            (
                "parts per round: ours / aiosmpplib",
                f"{f.get('ours_parts'):,} / {f.get('aiosmpplib_parts'):,}",
            ),
            ("rounds", len(f.get("rounds", []))),
        ]
    if name == "paced":
        return [
            ("binds × contracted parts/s", f"{f['binds']} × {num(f['tps_per_bind'])}"),
            ("contracted parts/s", f["contracted_parts_per_s"]),
            ("achieved parts/s (SMSC side)", f["achieved_parts_per_s"]),
            ("achieved ÷ contracted", f"{f['achieved_ratio']:.2%}"),
            ("lowest bind ÷ its contract", f"{f['min_bind_ratio']:.2%}"),
            ("per bind, parts/s", f["bind_parts_per_s"]),
            ("throttles (ESME_RTHROTTLED + ESME_RMSGQFUL)", f["throttles"]),
            ("responses by status", f["statuses"]),
            ("parts accepted / planned", f"{f['accepted_parts']:,} / {f['parts']:,}"),
            ("first submit → last answer, s (ideal)", f"{f['seconds']} ({f['ideal_seconds']})"),
            ("parts recorded twice", f["duplicate_rows"]),
        ]
    if name == "degraded":
        return [
            (
                "site A: contracted / really accepted parts/s",
                f"{num(f['tps_per_bind'] * f['binds_per_site'])} / "
                f"{num(f['capacity_a_parts_per_s'])}",
            ),
            ("site B: contracted parts/s (until killed)", f["capacity_b_parts_per_s"]),
            ("site B killed at, s after the first submit", f["b_down_at_s"]),
            ("parts accepted / planned", f"{f['accepted_parts']:,} / {f['parts']:,}"),
            ("accepted per site", f["accepted_by_smsc"]),
            ("completion time, s", f["seconds"]),
            ("ideal completion time, s", f["ideal_seconds"]),
            ("efficiency (ideal ÷ actual)", f"{f['efficiency']:.1%}"),
            ("site A's accepted parts/s once alone", f["a_parts_per_s_after_down"]),
            ("throttle replies from site A", f["a_throttled"]),
            ("parts recorded twice / missing", f"{f['duplicate_rows']} / {f['missing_parts']}"),
        ]
    if name == "faults":
        runs = f.get("runs", {})
        return [
            ("parts per run / runs of each", f"{f['parts']:,} / {f['repeat']}"),
            ("no fault: parts/s (median)", f["baseline_parts_per_s"]),
            (
                f"{f['throttle_share']:.0%} throttled: parts/s (÷ baseline)",
                f"{num(f['throttle_parts_per_s'])} ({f['throttle_ratio']:.1%})",
            ),
            (
                f"a disconnect every {f['disconnect_after']:,} submits: parts/s (÷ baseline)",
                f"{num(f['disconnect_parts_per_s'])} ({f['disconnect_ratio']:.1%})",
            ),
            ("throttles per run", [r["throttles"] for r in runs.get("throttle", [])]),
            ("disconnects per run", [r["disconnects"] for r in runs.get("disconnect", [])]),
            ("parts recorded twice / missing", f"{f['duplicate_rows']} / {f['missing_parts']}"),
        ]
    if name == "scaleout":
        return [
            ("recipients", f["recipients"]),
            ("SMSC limit per bind, parts/s", f.get("tps_per_bind")),
            (
                "1 worker: seconds / msg/s",
                f"{f['one_worker_s']} / {num(f.get('one_worker_msgs_per_s'))}",
            ),
            (
                "2 workers: seconds / msg/s",
                f"{f['two_workers_s']} / {num(f.get('two_workers_msgs_per_s'))}",
            ),
            ("speed-up", f["speedup"]),
            ("accepted: 1 worker / 2 workers", f"{f['accepted_one']:,} / {f['accepted_two']:,}"),
            ("parts sent twice", f["sent_twice"]),
        ]
    if name == "e2e_receipts":
        return _e2e_receipts_rows(f)
    if name == "receipt_intake":
        return [
            ("receipts, octets per read, receipts per COPY",
             f"{f['receipts']:,}, {f['read_size']:,}, {f['copy_batch']:,}"),
            ("old path: µs per receipt (intake + COPY)",
             f"{num(f['old_us_per_receipt'], 2)} ({num(f['old_intake_us'], 2)} + "
             f"{num(f['old_copy_us'], 2)})"),
            ("new path: µs per receipt (intake + COPY)",
             f"{num(f['new_us_per_receipt'], 2)} ({num(f['new_intake_us'], 2)} + "
             f"{num(f['new_copy_us'], 2)})"),
            ("ratio old ÷ new (intake alone)",
             f"{num(f['ratio'], 2)} ({num(f['intake_ratio'], 2)})"),
            ("the same rows staged", f["same_rows"]),
        ]  # fmt: skip
    if name == "mock_receipts":
        return [
            ("parts", f["parts"]),
            ("parts/s with receipts (wall)", f["parts_per_s"]),
            ("parts/s, submissions alone", f["submit_parts_per_s"]),
            ("parts per second of mock CPU", f["parts_per_mock_cpu_s"]),
            ("mock / client CPU share", f"{f['mock_cpu']} / {f['client_cpu']}"),
            ("without receipts: parts/s, per mock CPU-second",
             f"{f.get('baseline_parts_per_s')} / {f.get('baseline_parts_per_mock_cpu_s')}"),
            ("ratio with ÷ without (wall)", f.get("ratio")),
        ]  # fmt: skip
    if name == "crash":
        return [
            ("recipients", f["recipients"]),
            ("final state", f["state"]),
            ("recipients with exactly one accepted outcome", f["exactly_once_in_db"]),
            ("missing (mock SMSC record)", f["missing"]),
            ("sent twice (mock) / bound", f"{f['duplicates']:,} / {f['duplicate_bound']:,}"),
            ("kills -9, lease seconds", f"{f['kills']}, {num(f['lease_seconds'])}"),
            ("last worker: exit code, seconds", f"{f['last_worker_exit']}, {f['last_worker_s']}"),
        ]
    if name == "db_outage":
        return [
            ("recipients / parts", f"{f['recipients']:,} / {f['parts']:,}"),
            ("final state", f["state"]),
            ("missing (mock SMSC record)", f["missing"]),
            ("sent twice (mock)", f["duplicates"]),
            ("in-flight window (binds × window)", f["in_flight_window"]),
            ("database down, s", f["outage_s"]),
            ("parts accepted before the stop", f["parts_at_stop"]),
            ("parts submitted after the stop began", f["submitted_after_stop"]),
            ("next submit after the database returned, ms", f["resume_after_return_ms"]),
            ("worker survived / restarts by hand", f"{f['worker_survived']} / 0"),
            ("total time, s", f["seconds"]),
        ]
    return [(k, v) for k, v in f.items() if not isinstance(v, dict | list)]


def _e2e_receipts_rows(f: dict[str, Any]) -> list[tuple[str, Any]]:
    cpu, base = f.get("cpu_us_per_msg") or {}, f.get("baseline_cpu_us_per_msg") or {}
    return [
        ("recipients", f["recipients"]),
        ("messages/s with receipts", num(f["msgs_per_s"], 0)),
        ("messages/s without (same invocation)", num(f["baseline_msgs_per_s"], 0)),
        ("ratio", f["receipts_ratio"]),
        ("receipts recorded (parts with a receipt, roll-ups)", f["receipts_recorded"]),
        ("status p50 / p99 during, ms",
         f"{f['status_p50_ms_during']} / {f['status_p99_ms_during']}"),
        ("status p50 / p99 after, ms",
         f"{f['status_p50_ms_after']} / {f['status_p99_ms_after']}"),
        ("CPU µs/msg with receipts: send / mock / PostgreSQL",
         " / ".join(str(cpu.get(k)) for k in ("send", "mock", "postgres"))),
        ("CPU µs/msg without: send / mock / PostgreSQL",
         " / ".join(str(base.get(k)) for k in ("send", "mock", "postgres"))),
        ("peak RSS with / without receipts, MB",
         f"{f['peak_rss_mb']} / {f['baseline_peak_rss_mb']}"),
        ("database MB per million recipients", f["db_mb_per_million"]),
    ]  # fmt: skip


def e2e_table(f: dict[str, Any]) -> str:
    runs = f.get("runs", {})
    order = [label for label in ("baseline", "full", "profiled") if label in runs]
    names = {
        label: f"{runs[label]['recipients']:,} recipients"
        + (" under pyinstrument" if label == "profiled" else "")
        for label in order
    }
    rows = [
        ("recipients", "recipients"),
        ("messages/s", "msgs_per_s"),
        ("time to first submit_sm, ms", "first_submit_ms"),
        ("peak RSS of the process, MB", "peak_rss_mb"),
        ("CPU per message, µs", "cpu_us_per_msg"),
        ("run time (report), s", "seconds"),
        ("process wall time, s", "process_wall_s"),
        ("final state", "state"),
    ]
    lines = [
        "| figure | " + " | ".join(names[o] for o in order) + " |",
        "|---|" + "---:|" * len(order),
    ]
    for label, key in rows:
        lines.append(f"| {label} | " + " | ".join(num(runs[o].get(key)) for o in order) + " |")
    lines.append("")
    lines.append(
        f"Peak RSS growth from the smaller to the larger run: {num(f.get('rss_growth_mb'))} MB; "
        f"larger run: {num(f.get('accepted'))} recipients accepted, {num(f.get('duplicates'))} "
        "duplicates."
    )
    return "\n".join(lines)


def others_load(load: dict[str, Any]) -> str:
    cores = load.get("cores") or {}
    if not cores:
        return "—"
    return f"{cores['pg_other'] + cores['other']:.2f}"


def others_peak(load: dict[str, Any]) -> str:
    timeline = load.get("timeline") or []
    if not timeline:
        return "—"
    return f"{max(p['pg_other'] + p['other'] for p in timeline):.2f}"


def load_sentence(load: dict[str, Any], cpus: int) -> str:
    cores = load.get("cores") or {}
    if not cores or load.get("busy_cores") is None:
        return "no load samples"
    steal = load.get("steal_cores") or 0.0
    return (
        f"machine busy {load['busy_cores']:.2f} of {cpus} cores on average: load test "
        f"{cores['ours']:.2f} + its PostgreSQL backends {cores['ours_pg']:.2f}; rest of "
        f"PostgreSQL {cores['pg_other']:.2f}, other processes {cores['other']:.2f}"
        + (f"; hypervisor steal {steal:.2f}" if steal >= 0.01 else "")
    )


TUNING = """\
**What was tuned.** A profile of the same scenario taken before tuning showed
`datetime.fromtimestamp` at 4.1% of the broadcaster's samples (0.97 s of 23.7 s for 1M
recipients): `BroadcastRunner.on_outcome` (`broadcaster/engine/runner.py`) converted two
`time.time()` floats into `datetime` objects for every part. Yet every part written in one batch
shares its `submitted_at`, and every part answered in one read shares its `answered_at`. The
runner now keeps the last float and its `datetime` for each column and converts only when the
float changes (a few lines in `on_outcome` and two attributes in `__init__`; the values are
identical, only the conversions are fewer). Measured on this machine with the callback alone
(1M calls, batches of 64 sends / 100 answers, best of 3): **1.70 → 0.87 µs per part**; the
engine's integration tests (`tests/integration/test_engine.py`, 9 tests, among them "nothing is
submitted after the expiry", which reads `submitted_at`) pass.

{after}

**What else the profile shows, and why it was left alone.**
- Per-part Python work dominates, spread over a few functions of about 1–2 µs each
  (`SmppPool.submit`, the runner's `_submit`, the session's `data_received`, the pool's
  `answered`, the runner's `on_outcome`): no single cheap win remains. Outcomes already come
  per read (`SessionOwner.answered`); the next step would be a batch submit
  (`submit_many(templates, destinations)`), a change to the pool's interface, not a small one.
- COPY of the outcomes (`copy_records_to_table`) is the largest single function: asyncpg's
  binary encoding of 9 columns per part. It is the durable record that bounds crash duplicates
  (README); writing it less often would widen that bound.
- `epoll.poll` is the process waiting for the mock SMSC and PostgreSQL, which share the same
  2 cores: on this machine the end-to-end rate is bounded by CPU for all three processes, not
  by the broadcaster alone.
- pyinstrument's hook runs on every Python call, so the profiled process is about twice as slow
  as the measured one (see the e2e table) and functions made of many small calls look
  heavier; the proportions, not the µs, are what to read.

**Pacing under CPU contention (a finding, not tuned).** The paced figure needs the machine to
schedule the broadcaster and the mock SMSC on time. Measured here with the paced scenario alone
(`python -m loadtest.paced`, 4 binds × 500 parts/s, 20 s, 2026-11-29): with no busy-loop
process beside it, 98.5% of the contract and 0 throttles; beside one, 98.5% and 0 throttles;
beside two (both cores saturated), 83.1% and 3 throttles, with dips to 730 parts/s. A full
`make loadtest` at 04:54 UTC that day, while other engineers' browser tests used 1.17 cores
during this scenario, measured 93.9% with 4 throttles; the next one, at 05:11 UTC on a quieter
machine, 98.5% and none. When both cores are saturated the mock SMSC (on its own hardware in
production) reads late and sees parts bunched beyond its 0.1 s bucket, answers a few
ESME_RTHROTTLED, and each throttle starts a cut-and-recover episode of the pacer
(`broadcaster/smpp/pacing.py`); sending time lost in a stall longer than the pacer's 0.1 s
catch-up bucket is not made up either. The "others' load" column of the targets table shows how
busy the machine was during each scenario.
"""


def tuning_after(doc: dict[str, Any]) -> str:
    """What this run's profile says about the tuned function."""
    prof = doc.get("profile")
    if not prof or "top_self" not in prof:
        return "This run has no profile to check it against."
    for row in prof["top_self"]:
        if row["function"] == "datetime.fromtimestamp":
            return (
                f"In this run's profile `datetime.fromtimestamp` takes {row['percent']}% of the "
                "samples."
            )
    return (
        f"In this run's profile `datetime.fromtimestamp` is no longer among the "
        f"{len(prof['top_self'])} functions with the most time of their own."
    )


def profile_section(doc: dict[str, Any]) -> str:
    prof = doc.get("profile")
    if not prof:
        return "No profile in this run (`--no-profile`, quick mode, or pyinstrument missing).\n"
    if "error" in prof:
        return f"The profile could not be read: {prof['error']}.\n"
    lines = [
        f"One more `broadcaster send` of the 1M target ran under pyinstrument (a sample every "
        f"millisecond, wall clock): {prof['wall_seconds']} s, {prof['cpu_seconds']} s CPU, "
        f"{prof['samples']:,} samples. The call tree is in [`{prof['text']}`]({prof['text']}); "
        "µs/msg below divide the profiled time by the recipients (the profiler slows the "
        "process, so they are higher than the measured CPU per message).",
        "",
        "Stages of the hot path (inclusive time):",
        "",
        "| stage | function | s | % of samples | µs/msg |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| {s['stage']} | `{s['function']}` | {s['seconds']:.2f} | {s['percent']} | "
        f"{s['us_per_msg']} |"
        for s in prof["stages"]
    ]
    lines += [
        "",
        "Functions by time of their own:",
        "",
        "| function | where | s | % | µs/msg |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [
        f"| `{t['function']}` | `{t['file']}` | {t['seconds']:.2f} | {t['percent']} | "
        f"{t['us_per_msg']} |"
        for t in prof["top_self"][:15]
    ]
    return "\n".join(lines) + "\n"


def render_markdown(doc: dict[str, Any], charts_written: set[str]) -> str:
    m = doc["machine"]
    load = doc["load"]
    cpus = int(m.get("cpus") or 2)
    started = doc["started_at"].replace("T", " ").replace("+00:00", " UTC")
    minutes, seconds = divmod(int(doc["seconds"]), 60)
    others = ", ".join(
        f"{k} {v:.1f} s" for k, v in load.get("other_by_command", {}).items() if v >= 0.05
    )
    start1, end1 = load["loadavg_start"][0], load["loadavg_end"][0]
    out = [
        "# Load test report",
        "",
        f"Generated by `{doc['command'].strip()}` (what `make loadtest` runs), {doc['mode']} "
        f"mode: started {started}, took {minutes} min {seconds} s.",
        "",
        f"**Shared machine: the figures are noisy.** Other engineers run their tests on this "
        f"{cpus}-core machine at the same time as load tests. During this run, processes other "
        f"than the load test's used {others_load(load)} cores on average and "
        f"{others_peak(load)} at most in one second; the hypervisor took "
        f"{load.get('steal_cores') or 0:.2f} (steal). A figure near its target may land on "
        "either side on another run: see the others' load of each scenario below, and "
        "[pacing under CPU contention](#tuning).",
        "",
    ]
    if doc["mode"] == "quick":
        out += [
            "**Quick mode**: tiny counts that check the chain works; the figures are not "
            "comparable to the targets (which assume the full sizes).",
            "",
        ]
    out += [
        "| | |",
        "|---|---|",
        f"| machine | `{m['hostname']}`: {m['cpu_model']}, {m['cpus']} cores, "
        f"{m['memory_gib']} GiB RAM, {m['kernel']} |",
        f"| software | Python {m['python']}; PostgreSQL {m['postgresql']}; commit "
        f"`{m['commit']}`"
        + (f" with {m['uncommitted_files']} uncommitted files" if m["uncommitted_files"] else "")
        + " |",
        f"| load average (1 min) | {start1} at the start, {end1} at the end, "
        f"{num(load.get('load1_max'))} at most |",
        f"| CPU over the run | {load_sentence(load, cpus)} |",
        f"| busiest other processes (CPU s) | {others or '—'} |",
        "",
        "## Against the targets",
        "",
        "| scenario | figure | measured | target | met | others' load |",
        "|---|---|---:|---:|:---:|---:|",
    ]
    for row in doc["targets"]:
        result = doc["scenarios"][row["scenario"]]
        title = result["title"].split(":")[0]
        source = f" ({row['source']})" if row["source"] != "issue 10" else ""
        out.append(
            f"| {title} | {row['label']}{source} | {_target_value(row)} | "
            f"{_target_threshold(row)} | {'✅' if row['met'] else '❌'} | "
            f"{others_load(result.get('load', {}))} |"
        )
    out += [
        "",
        f"{doc['targets_met']} of {doc['targets_total']} targets met. Others' load: cores "
        "used during that scenario by processes other than the load test's (its PostgreSQL "
        f"backends excepted), out of {cpus}.",
        "",
    ]
    if doc.get("notes"):
        out += [f"Note: {n}" for n in doc["notes"]] + [""]
    for number, (name, result) in enumerate(doc["scenarios"].items(), 1):
        out += [f"## {number}. {result['title']}", ""]
        out += [HOW.get(name, "").replace("\n", " "), ""]
        out += [f"Command: `{result['command']}` ({result['seconds']} s).", ""]
        if result["status"] != "ok":
            out += [f"**{result['status'].upper()}**:", "", "```", result["error"] or "", "```", ""]
            continue
        if f"{name}.svg" in charts_written:
            out += [f"![{name}]({name}.svg)", ""]
        if name == "e2e":
            out += [e2e_table(result["figures"]), ""]
        else:
            out += [_table(figures_rows(name, result["figures"])), ""]
        out += [f"Load meanwhile: {load_sentence(result['load'], cpus)}.", ""]
    out += [
        "## Machine load",
        "",
        "Busy cores sampled every second from /proc: the whole machine, the load test's "
        "processes and its PostgreSQL backends, and everything else (other engineers' tests, "
        "other databases). Green marks: the start of each scenario.",
        "",
    ]
    if "load.svg" in charts_written:
        out += ["![load](load.svg)", ""]
    out += ["## Profile of the hot path", "", profile_section(doc), "## Tuning", ""]
    out += [TUNING.replace("{after}", tuning_after(doc))]
    out += [
        "## Reproduce",
        "",
        "```",
        "make loadtest                                  # this report (3 to 4 minutes)",
        "python -m loadtest --quick --out /tmp/lt       # every scenario with tiny counts",
        "python -m loadtest paced degraded              # some scenarios (see --list)",
        "python -m loadtest.e2e --recipients 1000000    # any scenario alone; last line: JSON",
        "```",
        "",
        "Raw figures: [`latest.json`](latest.json).",
        "",
    ]
    return "\n".join(out)


def write_report(doc: dict[str, Any], out: Path) -> None:
    """Write latest.md and the charts of `doc` into `out`."""
    written: set[str] = set()
    for name, make in CHARTS.items():
        result = doc["scenarios"].get(name)
        path = out / f"{name}.svg"
        if result is None or result["status"] != "ok":
            continue
        try:
            path.write_text(make(result["figures"]), encoding="utf-8")
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            print(f"chart {name}: not drawn ({exc!r})", file=sys.stderr)
            continue
        written.add(path.name)
    if doc["load"].get("timeline"):
        (out / "load.svg").write_text(chart_load(doc), encoding="utf-8")
        written.add("load.svg")
    (out / "latest.md").write_text(render_markdown(doc, written), encoding="utf-8")


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results"
    write_report(json.loads((folder / "latest.json").read_text()), folder)
    print(folder / "latest.md")
