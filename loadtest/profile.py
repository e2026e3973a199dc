"""The hot path's profile: a pyinstrument session of the end-to-end broadcaster process.

`loadtest.e2e --profile FILE` runs one more `broadcaster send` of the full target under
pyinstrument (sampling every millisecond, wall clock); `summarise_profile` renders that session
as `profile.txt` beside the report (the call tree, then the functions by time of their own), and
returns what the report shows: those functions, and the inclusive time of the stages of the hot
path. (pyinstrument's HTML view of it weighs megabytes: render it when needed from a session
kept with `python -m loadtest.e2e --profile FILE`, `pyinstrument --load FILE -r html`.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyinstrument.frame import Frame
from pyinstrument.renderers import ConsoleRenderer
from pyinstrument.session import Session

TOP = 20
STAGES: tuple[tuple[str, str, str], ...] = (
    ("stream + submit: COPY rows out of PostgreSQL, one submit() per part", "_submit", "runner"),
    ("send: pool pump, splice-encode, socket write", "_pump_all", "pool"),
    ("receive: frame submit_sm_resp, record each outcome", "data_received", "session"),
    ("…of which the engine's per-part outcome callback", "on_outcome", "runner"),
    ("outcomes written with COPY (both call sites)", "copy_records_to_table", "asyncpg"),
    ("idle: waiting in epoll", "epoll.poll", "<built-in>"),
)
"""(label, function name, a substring of its file): inclusive time of each hot-path stage."""


def _self_times(root: Frame) -> dict[tuple[str, str, int], float]:
    """Seconds of each function's own samples (pyinstrument keeps them in `[self]` leaves)."""
    out: dict[tuple[str, str, int], float] = {}

    def walk(frame: Frame) -> None:
        key = (frame.function or "?", frame.file_path_short or "?", frame.line_no or 0)
        if not frame.children:
            out[key] = out.get(key, 0.0) + frame.time
        for child in frame.children:
            if child.is_synthetic_leaf:
                out[key] = out.get(key, 0.0) + child.time
            else:
                walk(child)

    walk(root)
    return out


def _inclusive(root: Frame, function: str, file_part: str) -> float:
    """Time under every outermost frame of `function` (in a file containing `file_part`)."""
    total = 0.0
    stack = [root]
    while stack:
        frame = stack.pop()
        if frame.function == function and file_part in (frame.file_path_short or ""):
            total += frame.time
            continue
        stack.extend(frame.children)
    return total


def summarise_profile(session_file: Path, out: Path, recipients: int) -> dict[str, Any]:
    session = Session.load(session_file)
    root = session.root_frame()
    if root is None:
        return {"error": "the profile is empty"}
    tree = ConsoleRenderer(
        unicode=True, color=False, processor_options={"filter_threshold": 0.002}
    ).render(session)
    wall = root.time or 1.0
    per_message = 1e6 / recipients if recipients else 0.0
    top = sorted(_self_times(root).items(), key=lambda kv: -kv[1])[:TOP]
    flat = [f"Functions by time of their own (top {TOP}), {recipients:,} recipients:", ""]
    flat += [
        f"{seconds:8.3f} s {100 * seconds / wall:5.1f}% {seconds * per_message:6.2f} µs/msg  "
        f"{function}  {file}:{line}"
        for (function, file, line), seconds in top
    ]
    (out / "profile.txt").write_text(tree + "\n" + "\n".join(flat) + "\n", encoding="utf-8")
    return {
        "text": "profile.txt",
        "wall_seconds": round(session.duration, 2),
        "cpu_seconds": round(session.cpu_time, 2),
        "samples": session.sample_count,
        "recipients": recipients,
        "top_self": [
            {
                "function": function,
                "file": f"{file}:{line}" if line else file,
                "seconds": round(seconds, 3),
                "percent": round(100 * seconds / wall, 1),
                "us_per_msg": round(seconds * per_message, 2),
            }
            for (function, file, line), seconds in top
        ],
        "stages": [
            {
                "stage": label,
                "function": function,
                "seconds": round(seconds, 3),
                "percent": round(100 * seconds / wall, 1),
                "us_per_msg": round(seconds * per_message, 2),
            }
            for label, function, file_part in STAGES
            for seconds in [_inclusive(root, function, file_part)]
        ],
    }
