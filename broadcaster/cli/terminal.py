"""The terminal side of `broadcaster send`: confirmation, live progress, the Ctrl-C menu.

Progress goes to stderr, so stdout keeps only the final report (or the `--json` object) for
scripts: a live panel (rich) when stderr is a terminal, one plain line every half second
otherwise, or nothing.

Signals, from the confirmation on:
- Ctrl-C at the confirmation question: not confirmed, nothing stored or sent (exit 2);
- Ctrl-C while sending pauses the broadcast at once (the engine stops submitting within a quarter
  of a second), then asks: resume, cancel, or leave it paused for `broadcaster resume|cancel ID`;
  Ctrl-C or end of input at that question leaves it paused;
- SIGTERM and SIGHUP (the terminal closed, the ssh session dropped) pause it and leave it paused,
  asking no one.
Either way the broadcast ends in a state the operator is told, never sending unattended.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from broadcaster.commands.sending import Decision
from broadcaster.engine.engine import Engine
from broadcaster.engine.runner import RunStats
from broadcaster.errors import InputError
from broadcaster.planning import Plan
from broadcaster.smpp.pool import SmscHealth

ProgressMode = Literal["auto", "rich", "plain", "none"]
REFRESH_S = 0.25
PLAIN_EVERY_S = 0.5
RATE_WINDOW_S = 3.0

Phase = Literal["confirm", "starting", "running", "pausing", "asking", "done"]
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
        f"parts: submitted {f.submitted:,}   accepted {f.accepted:,}   failed {f.failed:,}   "
        f"throttled {f.throttled:,}\n"
        f"rate {f.rate:,.0f} parts/s   elapsed {f.elapsed:.1f} s   ETA {eta_text(f.eta_s)}"
    )
    smscs = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("SMSC", "state", "binds", "parts/s", "in flight", "throttled", "last error"):
        smscs.add_column(column, justify="left" if column in ("SMSC", "last error") else "right")
    for h in health:
        colour = {"up": "green", "degraded": "yellow"}.get(h.state, "red")
        errors = h.problems + [b.last_error for b in h.binds if b.last_error]
        smscs.add_row(
            h.name,
            Text(h.state, style=colour),
            f"{h.binds_up}/{len(h.binds)}",
            f"{h.accepted_per_s:,.0f}",
            f"{h.inflight:,}",
            f"{h.throttled:,}",
            (errors[0][:60] if errors else ""),
        )
    hint = Text("Ctrl-C: pause, then resume or cancel", style="dim")
    return Group(head, bar, counts, smscs, hint)


# -- the watcher --------------------------------------------------------------------------------

CONFIRM_TRIES = 3
"""Typed confirmations before `send` gives up (a slip of the finger is not a refusal)."""


class SendConsole:
    """Implements `commands.sending.Watcher` for a person at a terminal (or a script)."""

    def __init__(
        self,
        *,
        kind: str,
        template: str,
        mode: ProgressMode = "auto",
        ask_first: bool = True,
        expect_recipients: int | None = None,
    ) -> None:
        self.kind = kind
        self.template = template
        self.ask_first = ask_first
        self.expect_recipients = expect_recipients
        """What a script that sends live (--yes) says it expects: the plan must match."""
        self.err = Console(stderr=True, highlight=False, soft_wrap=True)
        if mode == "auto":
            mode = "rich" if self.err.is_terminal else "plain"
        self.mode = mode
        self.broadcast_id = 0
        self.total_parts = 0
        self.engine: Engine | None = None
        self.phase: Phase = "confirm"
        self._pause: Callable[[], Awaitable[str]] | None = None
        self._pause_wanted = False  # a signal before the broadcast was running
        self._ask_after_pause = True  # False after SIGTERM / SIGHUP: nobody to ask
        self._pausing: asyncio.Task[None] | None = None
        self._stats: RunStats | None = None
        self._base = {"accepted": 0, "failed": 0, "throttled": 0}
        self._meter = RateMeter()
        self._rate = 0.0
        self._started = time.monotonic()
        self._refresher: asyncio.Task[None] | None = None
        self._live: Live | None = None
        self._answer: asyncio.Future[str | None] | None = None
        self._last_health: tuple[SmscHealth, ...] = ()

    # -- Watcher -------------------------------------------------------------------------------

    async def confirm(self, recipients: int, preview: dict[str, Any]) -> bool:
        """Show the preview; unless told not to ask, have the number of recipients typed
        (Hawaii 2018: no one-key confirmation), with a few tries for a slip of the finger.
        A live send from a script must name the recipients it expects. Ctrl-C or end of
        input: not confirmed."""
        self._install_signals()
        banner, *rest = preview_text(preview, self.kind).splitlines()
        self._say(kind_banner(self.kind) if self.err.is_terminal else banner)
        self._say("\n".join(rest), markup=False)
        if not self.ask_first:
            self._check_expected(recipients)
            self._say("confirmation skipped (--yes)")
            self.phase = "starting"
            return True
        if not sys.stdin.isatty():
            raise InputError(
                "confirmation needs a terminal: from a script pass --yes (and, for a live send, "
                "--expect-recipients N)"
            )
        confirmed = await self._typed(recipients)
        self.phase = "starting"
        return confirmed

    def _check_expected(self, recipients: int) -> None:
        """--yes on a live send: only with --expect-recipients, equal to what the plan reaches."""
        expected = self.expect_recipients
        if self.kind == "live" and expected is None:
            raise InputError(
                f"a live send is confirmed at the terminal, or by a script that says what it "
                f"expects: add --expect-recipients {recipients} (the plan reaches "
                f"{recipients:,} recipients); nothing was sent"
            )
        if expected is not None and expected != recipients:
            raise InputError(
                f"the plan reaches {recipients:,} recipients, not the {expected:,} expected "
                "(--expect-recipients): nothing was sent; preview again and check the target"
            )

    async def _typed(self, recipients: int) -> bool:
        who = "PEOPLE (live, the public)" if self.kind == "live" else "test-group phones (drill)"
        prompt = f"Type {recipients} to send to {recipients:,} {who}: "
        for tries_left in range(CONFIRM_TRIES - 1, -1, -1):
            answer = await self._read_line(prompt)
            if answer is None:
                return False
            if answer.strip().replace(",", "").replace(" ", "") == str(recipients):
                return True
            if tries_left:
                self._say(
                    f"that is not {recipients}: nothing was sent ({tries_left} "
                    f"{'try' if tries_left == 1 else 'tries'} left; Ctrl-C sends nothing)"
                )
        return False

    def started(self, broadcast_id: int, plan: Plan, pause: Callable[[], Awaitable[str]]) -> None:
        self.broadcast_id = broadcast_id
        self.total_parts = plan.parts
        self._pause = pause
        self._started = time.monotonic()
        self.phase = "running"
        if self._pause_wanted:
            self._start_pausing()

    def attached(self, engine: Engine) -> None:
        self.engine = engine
        self._meter = RateMeter()
        if self.mode != "none":
            self._refresher = asyncio.create_task(self._refresh())

    def progress(self, stats: RunStats) -> None:
        self._stats = stats

    async def halted(self, stats: RunStats) -> Decision | None:
        """Paused. By us: ask (or, after SIGTERM/SIGHUP, leave it). By someone else: say so."""
        self._stop_display()
        self._fold(stats)
        if self._pausing is None:
            self._say(
                f"broadcast {self.broadcast_id} was paused from elsewhere: "
                f"`broadcaster resume {self.broadcast_id}` continues it"
            )
            return None
        self._pausing = None
        decision = await self._menu()
        if decision == "resume":
            self._say(f"resuming broadcast {self.broadcast_id}")
            self.phase = "running"
        elif decision == "cancel":
            self._say(f"broadcast {self.broadcast_id} cancelled: nothing more is sent")
        else:
            self._say(
                f"broadcast {self.broadcast_id} left PAUSED: `broadcaster resume "
                f"{self.broadcast_id}` or `broadcaster cancel {self.broadcast_id}`"
            )
        return decision

    def finished(self) -> None:
        """The run is over: last frame; from now on signals are ignored (the report follows,
        and the event loop's end takes the handlers away)."""
        self.phase = "done"
        self._stop_display()

    # -- display -------------------------------------------------------------------------------

    def figures(self) -> Figures:
        """The current counts (no side effects: sampling happens in `_sample`)."""
        s = self._stats
        pool = self.engine.pool if self.engine else None
        accepted = self._base["accepted"] + (s.accepted if s else 0)
        failed = self._base["failed"] + (s.failed if s else 0)
        inflight = sum(h.inflight for h in self._last_health) if self._refresher else 0
        state = "pausing" if self._pausing is not None else s.state if s else "binding"
        return Figures(
            state=state,
            total=self.total_parts,
            submitted=accepted + failed + inflight,
            accepted=accepted,
            failed=failed,
            throttled=self._base["throttled"] + (pool.stats.throttled if pool else 0),
            rate=self._rate,
            elapsed=time.monotonic() - self._started,
        )

    def _sample(self) -> None:
        """Rate over the recent window, and the pool's health while the run is under way (the
        binds close at its end: the last frame keeps what was seen, not a misleading "down")."""
        pool = self.engine.pool if self.engine else None
        s = self._stats
        if pool is not None and s is not None and s.state == "running":
            self._last_health = pool.health()
        done = self._base["accepted"] + self._base["failed"] + (s.outcomes if s else 0)
        self._rate = self._meter.add(time.monotonic(), done)

    async def _refresh(self) -> None:
        if self.mode == "rich":
            self._live = Live(console=self.err, auto_refresh=False, transient=False)
            self._guard(self._live.start)
        last_plain = 0.0
        while True:
            self._sample()
            if self._live is not None or time.monotonic() - last_plain >= PLAIN_EVERY_S:
                last_plain = time.monotonic()
                self._draw()
            await asyncio.sleep(REFRESH_S)

    def _draw(self) -> None:
        f = self.figures()
        if self._live is not None:
            live = self._live
            frame = panel(self.broadcast_id, self.kind, self.template, f, self._last_health)
            self._guard(lambda: live.update(frame, refresh=True))
        elif self.mode != "none":
            self._guard(lambda: print(plain_line(f), file=sys.stderr, flush=True))

    def _stop_display(self) -> None:
        """Stop refreshing, leaving the last frame (the run's final counts) on screen."""
        if self._refresher is None:
            return
        self._refresher.cancel()
        self._refresher = None
        self._draw()
        if self._live is not None:
            self._guard(self._live.stop)
            self._live = None

    def _guard(self, write: Callable[[], object]) -> None:
        """Write to the terminal; if it is gone (SIGHUP, a closed ssh session), stop showing
        anything rather than failing the broadcast."""
        try:
            write()
        except OSError:
            self.mode = "none"
            self._live = None

    def _say(self, message: object, markup: bool = True) -> None:
        self._guard(lambda: self.err.print(message, markup=markup))

    def _fold(self, stats: RunStats) -> None:
        """Keep a finished run's counts: the next run (after a resume) starts from zero."""
        pool = self.engine.pool if self.engine else None
        self._base["accepted"] += stats.accepted
        self._base["failed"] += stats.failed
        self._base["throttled"] += pool.stats.throttled if pool is not None else 0
        self._stats = None
        self.engine = None

    # -- signals ---------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig, ask in ((signal.SIGINT, True), (signal.SIGTERM, False), (signal.SIGHUP, False)):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._signalled, ask)

    def _signalled(self, ask: bool) -> None:
        """Ctrl-C (ask=True), SIGTERM or SIGHUP (ask=False), in whatever phase we are."""
        if not ask:
            self._ask_after_pause = False
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)  # at a question: no (confirm) / leave it (menu)
        elif self.phase in ("confirm", "starting"):
            self._pause_wanted = True  # paused as soon as it is stored
        elif self.phase == "running":
            self._start_pausing()
        elif self.phase == "pausing":
            self._say(
                f"already pausing broadcast {self.broadcast_id}: waiting for the engine to "
                "stop submitting, then it asks what next",
                markup=False,
            )

    def _start_pausing(self) -> None:
        if self._pausing is None:
            self.phase = "pausing"
            self._pausing = asyncio.create_task(self._pause_now())

    async def _pause_now(self) -> None:
        assert self._pause is not None
        try:
            await self._pause()
        except InputError:
            self._pausing = None  # it had just finished: nothing to pause, the report follows
            self.phase = "running"
            return
        except Exception as exc:  # the database did not answer...: say so, allow a retry
            self._pausing = None
            self.phase = "running"
            self._say(f"could not pause: {exc}; press Ctrl-C again to retry", markup=False)
            return
        if self.mode == "plain":
            self._say(f"interrupted: pausing broadcast {self.broadcast_id}")

    async def _menu(self) -> Decision:
        """resume | cancel | leave. No one to ask (SIGTERM, SIGHUP, no terminal), a second
        Ctrl-C or end of input: leave it paused, the one state that is safe to walk away from."""
        f = self.figures()
        self._say(
            Text.assemble(
                kind_banner(self.kind),
                f"  broadcast {self.broadcast_id} is PAUSED: {f.done:,} of {f.total:,} parts "
                "sent; nothing more is being submitted.",
            )
        )
        if not self._ask_after_pause or not sys.stdin.isatty():
            return "leave"
        self.phase = "asking"
        options: dict[str, Decision] = {"r": "resume", "c": "cancel", "l": "leave"}
        while True:
            line = await self._read_line("[r]esume or [c]ancel, or [l]eave it paused and exit? ")
            if line is None:
                return "leave"
            decision = options.get(line.strip().lower()[:1])
            if decision is not None:
                return decision

    async def _read_line(self, prompt: str) -> str | None:
        """A line from the terminal without blocking the event loop (the engine keeps its
        leases and connections meanwhile); None at end of input or on a signal."""
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

        self._guard(lambda: self.err.print(prompt, end="", markup=False))
        loop.add_reader(fd, readable)
        try:
            return await answer
        finally:
            loop.remove_reader(fd)
            self._answer = None
            if answer.result() is None:
                self._say("")  # end the prompt's line


def preview_text(preview: dict[str, Any], kind: str = "live") -> str:
    """The preview for people: a banner line, each group's text, totals, ETA, warnings."""
    words, _style = KIND_BANNER.get(kind, KIND_BANNER["live"])
    lines = [f"== {words} =="]
    for g in preview["groups"]:
        lines.append(
            f"[{g['departement']}/{g['language']}] {g['recipients']:,} recipients, "
            f"{g['encoding']}, {g['characters']} chars, {g['parts_per_message']} part(s)"
        )
        lines.append(f"    {g['text']}")
    eta = preview["eta_seconds"]
    lines.append(
        f"total: {preview['recipients']:,} recipients, {preview['parts']:,} parts, "
        + (
            f"ETA {eta:,.0f} s at the configured SMSCs' contracted rate"
            if eta is not None
            else "no ETA (no SMSC with a TPS limit is configured: set tps= per SMSC)"
        )
    )
    lines += _presence_lines(preview.get("presence"))
    lines += [f"warning: {w}" for w in preview["warnings"]]
    return "\n".join(lines)


def _presence_lines(presence: dict[str, Any] | None) -> list[str]:
    """The geographic part of a preview: cells, present and stale numbers, overspill, visitors."""
    if not presence:
        return []
    lines = [
        f"where: mode {presence['mode']}, {presence['cells']:,} cell(s) selected; "
        f"{presence['present']:,} number(s) seen there within {presence['window_hours']:g} h "
        f"({presence['visitors']:,} visitors), {presence['stale']:,} stale (seen earlier, not "
        "reached)"
    ]
    lines += [
        f"    {s['shape']}: {s['cells']:,} cell(s), overspill {s['overspill']:.0%} "
        "(share of their coverage outside the shape)"
        for s in presence["shapes"]
    ]
    if presence["visitors_by_country"]:
        lines.append(
            "    visitors: "
            + ", ".join(
                f"{v['numbers']:,} {v['country']}/{v['language']}"
                for v in presence["visitors_by_country"]
            )
        )
    return lines
