"""The terminal side of `broadcaster send`: confirmation, live progress, the Ctrl-C menu.

Progress goes to stderr, so stdout keeps only the final report (or the `--json` object) for
scripts: a live panel (rich) when stderr is a terminal, one plain line every half second
otherwise, or nothing.

Ctrl-C (or SIGTERM) pauses the broadcast at once — the engine stops submitting within a quarter
of a second — then asks: resume, cancel, or (with a durable database) leave it paused for
`broadcaster resume|cancel ID`. With no terminal to ask, it stays paused; on a throwaway
database, which is about to vanish, it is cancelled. Either way the broadcast ends in a state
the operator is told, never running unattended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from broadcaster.engine.runner import RunStats
from broadcaster.engine.states import Action
from broadcaster.engine.worker import Worker
from broadcaster.errors import InputError
from broadcaster.planning import Plan
from broadcaster.smpp.pool import SmscHealth
from broadcaster.store import broadcasts as store

ProgressMode = Literal["auto", "rich", "plain", "none"]
REFRESH_S = 0.25
PLAIN_EVERY_S = 0.5
RATE_WINDOW_S = 3.0

KIND_BANNER = {
    "live": ("LIVE ALERT — goes to the public", "bold white on red"),
    "drill": ("DRILL — EXERCISE, test group only", "bold black on yellow"),
}


def kind_banner(kind: str) -> Text:
    """The words (and colour, on a terminal) that tell a live send from a drill."""
    words, style = KIND_BANNER.get(kind, KIND_BANNER["live"])
    return Text(f" {words} ", style=style)


# -- figures (pure) ---------------------------------------------------------------------------


class RateMeter:
    """Parts answered per second over the last few seconds (a whole-run average would hide a
    stall and overstate the ETA after one)."""

    def __init__(self, window: float = RATE_WINDOW_S) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def add(self, now: float, done: int) -> float:
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[1][0] >= self.window:
            self._samples.popleft()
        first_t, first_done = self._samples[0]
        return (done - first_done) / (now - first_t) if now > first_t else 0.0


@dataclass(frozen=True)
class Figures:
    """One frame of progress, in parts (an SMS of three parts counts three). `submitted` is
    what went on the wire: answered or in flight (not what waits in the queue)."""

    state: str
    total: int
    submitted: int
    accepted: int
    failed: int
    throttled: int
    rate: float
    elapsed: float

    @property
    def done(self) -> int:
        return self.accepted + self.failed

    @property
    def eta_s(self) -> float | None:
        left = self.total - self.done
        if left <= 0:
            return 0.0
        return left / self.rate if self.rate > 0 else None


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def plain_line(f: Figures) -> str:
    return (
        f"progress: {f.submitted:,} parts submitted, {f.accepted:,} accepted, "
        f"{f.failed:,} failed, {f.throttled:,} throttled, {f.rate:,.0f} parts/s, "
        f"ETA {eta_text(f.eta_s)}, {f.elapsed:.1f} s [{f.state}]"
    )


def panel(
    broadcast_id: int, kind: str, template: str, f: Figures, health: tuple[SmscHealth, ...]
) -> RenderableType:
    """The live display: who is being warned, how far, how fast, and each SMSC's health."""
    head = Text.assemble(
        kind_banner(kind), f"  broadcast {broadcast_id} · {template} · ", (f.state, "bold")
    )
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(f.total, 1), completed=f.done, width=50),
        f"{f.done:,}/{f.total:,} parts",
        f"{100 * f.done / max(f.total, 1):.0f}%",
    )
    counts = Text(
        f"submitted {f.submitted:,}   accepted {f.accepted:,}   failed {f.failed:,}   "
        f"throttled {f.throttled:,}\n"
        f"rate {f.rate:,.0f} parts/s   elapsed {f.elapsed:.1f} s   ETA {eta_text(f.eta_s)}"
    )
    smscs = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("SMSC", "state", "binds", "parts/s", "in flight", "throttled", "last error"):
        smscs.add_column(column, justify="left" if column in ("SMSC", "last error") else "right")
    for h in health:
        colour = {"up": "green", "degraded": "yellow"}.get(h.state, "red")
        errors = [b.last_error for b in h.binds if b.last_error]
        smscs.add_row(
            h.name,
            Text(h.state, style=colour),
            f"{h.binds_up}/{len(h.binds)}",
            f"{h.accepted_per_s:,.0f}",
            f"{h.inflight:,}",
            f"{h.throttled:,}",
            (errors[0][:40] if errors else ""),
        )
    hint = Text("Ctrl-C: pause, then resume or cancel", style="dim")
    return Group(head, bar, counts, smscs, hint)


# -- the watcher --------------------------------------------------------------------------------


class SendConsole:
    """Implements `broadcaster.sending.Watcher` for a person at a terminal (or a script)."""

    def __init__(
        self,
        *,
        kind: str,
        template: str,
        mode: ProgressMode = "auto",
        durable: bool,
        confirm: Callable[[int, dict[str, Any]], bool] | None,
    ) -> None:
        self.kind = kind
        self.template = template
        self.durable = durable
        self._confirm = confirm
        self.err = Console(stderr=True, highlight=False)
        if mode == "auto":
            mode = "rich" if self.err.is_terminal else "plain"
        self.mode = mode
        self.broadcast_id = 0
        self.total_parts = 0
        self.db: asyncpg.Pool | None = None
        self.worker: Worker | None = None
        self.outcome: str | None = None
        """What the operator chose after Ctrl-C: resumed, cancelled, left paused."""
        self._stats: RunStats | None = None
        self._base = {"accepted": 0, "failed": 0, "throttled": 0}
        self._meter = RateMeter()
        self._started = time.monotonic()
        self._refresher: asyncio.Task[None] | None = None
        self._live: Live | None = None
        self._pausing: asyncio.Task[None] | None = None
        self._answer: asyncio.Future[str | None] | None = None
        self._last_health: tuple[SmscHealth, ...] = ()

    # -- Watcher -------------------------------------------------------------------------------

    def confirm(self, recipients: int, preview: dict[str, Any]) -> bool:
        return True if self._confirm is None else self._confirm(recipients, preview)

    def started(self, broadcast_id: int, plan: Plan, db: asyncpg.Pool) -> None:
        self.broadcast_id = broadcast_id
        self.total_parts = plan.parts
        self.db = db
        self._started = time.monotonic()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._interrupted)

    def attached(self, worker: Worker) -> None:
        self.worker = worker
        self._meter = RateMeter()
        if self.mode != "none":
            self._refresher = asyncio.create_task(self._refresh())

    def progress(self, stats: RunStats) -> None:
        self._stats = stats

    async def halted(self, stats: RunStats) -> bool:
        """The run stopped paused. Ours (Ctrl-C): ask what next. Someone else's: say so."""
        self._stop_display()
        self._fold(stats)
        if self._pausing is None:
            self.err.print(
                f"broadcast {self.broadcast_id} was paused from elsewhere: "
                f"`broadcaster resume {self.broadcast_id}` continues it"
            )
            return False
        self._pausing = None
        choice = await self._menu()
        if choice == "resume":
            await self._act("resume")
            self.err.print(f"resuming broadcast {self.broadcast_id}")
            self.outcome = "resumed"
            return True
        if choice == "cancel":
            await self._act("cancel")
            self.err.print(f"broadcast {self.broadcast_id} cancelled: nothing more is sent")
            self.outcome = "cancelled"
        else:
            self.err.print(
                f"broadcast {self.broadcast_id} left PAUSED: `broadcaster resume "
                f"{self.broadcast_id}` or `broadcaster cancel {self.broadcast_id}`"
            )
            self.outcome = "left paused"
        return False

    def finished(self) -> None:
        self._stop_display()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)

    # -- display -------------------------------------------------------------------------------

    def figures(self) -> Figures:
        s = self._stats
        pool = self.worker.pool if self.worker else None
        accepted = self._base["accepted"] + (s.accepted if s else 0)
        failed = self._base["failed"] + (s.failed if s else 0)
        inflight = sum(h.inflight for h in self._health()) if self._refresher else 0
        now = time.monotonic()
        return Figures(
            state=("pausing" if self._pausing else s.state if s else "binding"),
            total=self.total_parts,
            submitted=accepted + failed + inflight,
            accepted=accepted,
            failed=failed,
            throttled=self._base["throttled"] + (pool.stats.throttled if pool else 0),
            rate=self._meter.add(now, accepted + failed),
            elapsed=now - self._started,
        )

    def _health(self) -> tuple[SmscHealth, ...]:
        """The pool's health while it runs; after it (the binds are closed at the end of a
        run) the last snapshot taken while running, not a misleading "down"."""
        pool = self.worker.pool if self.worker else None
        running = self._stats is None or self._stats.state == "running"
        if pool is not None and self._refresher is not None and running:
            self._last_health = pool.health()
        return self._last_health

    async def _refresh(self) -> None:
        if self.mode == "rich":
            self._live = Live(console=self.err, auto_refresh=False, transient=False)
            self._live.start()
        last_plain = 0.0
        while True:
            if self._live is not None or time.monotonic() - last_plain >= PLAIN_EVERY_S:
                last_plain = time.monotonic()
                self._draw()
            await asyncio.sleep(REFRESH_S)

    def _draw(self) -> None:
        f = self.figures()
        if self._live is not None:
            self._live.update(
                panel(self.broadcast_id, self.kind, self.template, f, self._last_health),
                refresh=True,
            )
        elif self.mode != "none":
            print(plain_line(f), file=sys.stderr, flush=True)

    def _stop_display(self) -> None:
        """Stop refreshing, leaving the last frame (the run's final counts) on screen."""
        if self._refresher is None:
            return
        self._refresher.cancel()
        self._refresher = None
        if self._live is None and self.mode == "rich":
            self._live = Live(console=self.err, auto_refresh=False, transient=False)
            self._live.start()
        self._draw()
        if self._live is not None:
            self._live.stop()
            self._live = None

    def _fold(self, stats: RunStats) -> None:
        """Keep a finished run's counts: the next run (after a resume) starts from zero."""
        pool = self.worker.pool if self.worker else None
        self._base["accepted"] += stats.accepted
        self._base["failed"] += stats.failed
        self._base["throttled"] += pool.stats.throttled if pool is not None else 0
        self._stats = None
        self.worker = None

    # -- Ctrl-C ----------------------------------------------------------------------------------

    def _interrupted(self) -> None:
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)  # a second Ctrl-C at the question: the safe default
            return
        if self._pausing is not None:
            return
        self._pausing = asyncio.create_task(self._pause())

    async def _pause(self) -> None:
        try:
            await self._act("pause")
        except InputError:
            self._pausing = None  # it had just finished: nothing to pause, the report follows
            return
        if self.mode == "plain":
            print(f"interrupted: pausing broadcast {self.broadcast_id}", file=sys.stderr)

    async def _act(self, action: Action) -> None:
        assert self.db is not None
        async with self.db.acquire() as conn:
            await store.apply_action(conn, self.broadcast_id, action)
            await conn.execute(
                "INSERT INTO audit_log (actor, action, subject) VALUES ($1, $2, $3)",
                "cli:send",
                action,
                f"broadcast:{self.broadcast_id}",
            )

    async def _menu(self) -> str:
        """resume | cancel | leave; without a terminal, or on a second Ctrl-C / end of input,
        the safe default: leave it paused, or cancel it where the database will not outlive
        this command."""
        default = "leave" if self.durable else "cancel"
        f = self.figures()
        self.err.print(
            Text.assemble(
                kind_banner(self.kind),
                f"  broadcast {self.broadcast_id} is PAUSED: {f.done:,} of {f.total:,} parts "
                "sent; nothing more is being submitted.",
            )
        )
        if not sys.stdin.isatty():
            return default
        options = {"r": "resume", "c": "cancel"}
        question = "[r]esume or [c]ancel"
        if self.durable:
            options["l"] = "leave"
            question += ", or [l]eave it paused and exit"
        while True:
            line = await self._read_line(f"{question}? ")
            if line is None:
                return default
            choice = options.get(line.strip().lower()[:1])
            if choice is not None:
                return choice

    async def _read_line(self, prompt: str) -> str | None:
        """A line from the terminal without blocking the event loop (the engine keeps its
        leases and connections meanwhile); None at end of input or on Ctrl-C."""
        loop = asyncio.get_running_loop()
        fd = sys.stdin.fileno()
        answer: asyncio.Future[str | None] = loop.create_future()
        self._answer = answer

        def readable() -> None:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not answer.done():
                answer.set_result(data.decode("utf-8", errors="replace") if data else None)

        self.err.print(prompt, end="", markup=False)
        loop.add_reader(fd, readable)
        try:
            return await answer
        finally:
            loop.remove_reader(fd)
            self._answer = None
