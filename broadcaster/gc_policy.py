"""How the garbage collector runs in a broadcaster process (issue 22).

A process sending a broadcast makes millions of short-lived containers a minute (parts, their
outcomes, receipts and their rows) and keeps some for a while (parts in flight, the ids of
parts accepted, receipts until their flush). With CPython's default thresholds (700, 10, 10) a
collection of the young ran every 700 net allocations and a full one every half second or so,
each walking everything alive, the modules' objects too: 2.3 to 3.4 s of the sending
process's CPU at 1M recipients with every part receipted, 12 to 18% of it
(`loadtest.e2e_receipts`, measured with `gc.callbacks`); now about 0.4 s.

At start, before its event loop runs, the process moves what it has made so far (the modules
imported until then, their classes and functions: never garbage) out of the collector's sight
(`gc.freeze`), and collects the young every `YOUNG` net allocations: most containers are freed
by their reference count well before that, so few survive to be walked again.

The price is memory. Reference cycles (an exception and its traceback, a task and its future)
are collected later: up to about `YOUNG` x 10 objects may wait for a collection of the middle
generation, and a process that goes idle keeps what it had until it allocates again. Code that
makes cycles on every request must break them itself (cap.py takes its XML parser apart: a
malformed body left every element it had read). `BROADCASTER_GC_TUNED=false` keeps CPython's
defaults.
"""

from __future__ import annotations

import gc

YOUNG = 50_000
"""Net container allocations between two collections of the youngest generation (CPython: 700).
In `send` at full rate: about one a second, of a few milliseconds (under 50 ms at worst, wall
time on a loaded machine)."""
OLDER = (10, 10)
"""Collections of a generation between two of the next: CPython's (on 3.11 to 3.13; 3.14's
incremental collector reads them otherwise)."""


def settle() -> None:
    """Freeze what the process made while starting, and collect the young less often. Once, in
    a process of its own (a test calling the CLI in process keeps the defaults)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, *OLDER)
