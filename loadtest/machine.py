"""What the load test ran on, and how busy the machine was meanwhile (Linux /proc).

`machine_info()` describes the host and the code; `LoadSampler` is a thread that, every
`interval` seconds, reads the machine's CPU time (/proc/stat) and every process's (/proc/PID/stat)
and splits the busy cores (user + system + interrupts; `steal`, time the hypervisor gave to
other guests, is counted apart) between:

- `ours`: this process and its descendants (scenarios, mock SMSCs, broadcasters), exact: their
  own CPU time plus that of the descendants they already reaped (cutime/cstime);
- `ours_pg`: PostgreSQL backends serving our scratch databases (`bc_loadtest_*`: the backend's
  process title names its database), sampled: a backend's last second before it exits is missed;
- `pg_other`: the rest of PostgreSQL (every postgres process plus what the postmaster reaped:
  other people's test databases, the server's own work), minus `ours_pg`;
- `other`: the machine's busy time minus all of the above, with the busiest commands sampled
  per name (who else was busy).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from broadcaster.settings import PROJECT_ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
OUR_DATABASES = b"bc_loadtest_"
CATEGORIES = ("ours", "ours_pg", "pg_other", "other")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _first_line_with(path: str, prefix: str) -> str:
    for line in _read(path).splitlines():
        if line.startswith(prefix):
            return line.partition(":")[2].strip()
    return ""


def _git(*args: str) -> str:
    try:
        proc = subprocess.run(
            ["git", *args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # read only: no index refresh
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


async def _postgres_version() -> str:
    server = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        conn = await asyncpg.connect(server, timeout=2.0)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return "embedded (no server answered at DATABASE_URL or 127.0.0.1:5432)"
    try:
        version: str = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    where = "DATABASE_URL" if os.environ.get("DATABASE_URL") else "127.0.0.1:5432"
    return f"{version} ({where})"


def machine_info() -> dict[str, Any]:
    mem_kb = _first_line_with("/proc/meminfo", "MemTotal").split()
    changed = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _first_line_with("/proc/cpuinfo", "model name") or platform.processor(),
        "cpus": os.cpu_count() or 0,
        "memory_gib": round(int(mem_kb[0]) / 2**20, 1) if mem_kb else None,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "postgresql": asyncio.run(_postgres_version()),
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "uncommitted_files": len(changed.splitlines()) if changed else 0,
    }


def loadavg() -> tuple[float, float, float]:
    fields = _read("/proc/loadavg").split()
    if len(fields) < 3:
        return (0.0, 0.0, 0.0)
    return (float(fields[0]), float(fields[1]), float(fields[2]))


def _machine_ticks() -> tuple[int, int, int]:
    """(busy, steal, total) jiffies over every CPU since boot."""
    for line in _read("/proc/stat").splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:9]] + [0] * 8
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            busy = user + nice + system + irq + softirq
            return busy, steal, busy + idle + iowait + steal
    return 0, 0, 0


@dataclass
class _Proc:
    ppid: int
    comm: str
    ticks: int
    """utime + stime."""
    reaped: int
    """cutime + cstime: the CPU time of the children it waited for."""
    started: int
    """Start time, jiffies after boot."""


def _processes() -> dict[int, _Proc]:
    out: dict[int, _Proc] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _read(f"/proc/{entry.name}/stat")
        if not stat:
            continue
        head, _, rest = stat.rpartition(")")
        fields = rest.split()
        if len(fields) < 20:
            continue
        out[int(entry.name)] = _Proc(
            ppid=int(fields[1]),
            comm=head.partition("(")[2],
            ticks=int(fields[11]) + int(fields[12]),
            reaped=int(fields[13]) + int(fields[14]),
            started=int(fields[19]),
        )
    return out


def _is_postgres(proc: _Proc) -> bool:
    return proc.comm.startswith("postgres")


def _tree(procs: dict[int, _Proc], root: int) -> set[int]:
    """`root` and its live descendants."""
    children: dict[int, list[int]] = {}
    for pid, proc in procs.items():
        children.setdefault(proc.ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.add(pid)
        todo.extend(children.get(pid, ()))
    return out


def _totals(procs: dict[int, _Proc], me: int) -> tuple[int, int, set[int]]:
    """(jiffies of our tree, jiffies of PostgreSQL, pids of our tree), reaped children included."""
    ours = _tree(procs, me)
    ours_ticks = sum(procs[p].ticks + procs[p].reaped for p in ours if p in procs)
    pg_ticks = 0
    for proc in procs.values():
        if _is_postgres(proc):
            pg_ticks += proc.ticks
            parent = procs.get(proc.ppid)
            if parent is None or not _is_postgres(parent):
                pg_ticks += proc.reaped  # the postmaster: backends that exited
    return ours_ticks, pg_ticks, ours


def _is_ours_pg(pid: int) -> bool:
    try:
        return OUR_DATABASES in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@dataclass
class Sample:
    t: float
    """Seconds since the sampler started (end of the interval)."""
    seconds: float
    busy: float
    """Machine busy cores, averaged over the interval."""
    steal: float
    """Cores' worth of time the hypervisor gave to other guests."""
    cores: dict[str, float]
    """Busy cores per category (CATEGORIES)."""
    load1: float


@dataclass
class LoadSampler:
    """Samples the machine's load in a thread until `stop()`; see the module docstring."""

    interval: float = 1.0
    samples: list[Sample] = field(default_factory=list)
    other_by_command: dict[str, float] = field(default_factory=dict)
    """CPU seconds of `other` processes, by command name."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="load-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def now(self) -> float:
        return time.monotonic() - self._started

    def _run(self) -> None:
        me = os.getpid()
        boot_ticks = self._uptime_ticks()
        cpus = os.cpu_count() or 1
        busy0, steal0, total0 = _machine_ticks()
        procs0 = _processes()
        ours0, pg0, _ = _totals(procs0, me)
        at0 = time.monotonic()
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):  # a vanished process, a short read
                busy1, steal1, total1 = _machine_ticks()
                procs1 = _processes()
                ours1, pg1, tree = _totals(procs1, me)
                at1 = time.monotonic()
                elapsed = at1 - at0
                share = cpus / max(1, total1 - total0)  # jiffies -> cores
                ours_pg = 0.0
                for pid, proc in procs1.items():
                    if pid in tree:
                        continue
                    before = procs0.get(pid)
                    if before is not None and before.started == proc.started:
                        delta = proc.ticks - before.ticks
                    elif proc.started >= boot_ticks(at0):
                        delta = proc.ticks  # born during the interval
                    else:
                        continue
                    if delta <= 0:
                        continue
                    if _is_postgres(proc):
                        if _is_ours_pg(pid):
                            ours_pg += delta
                    else:
                        seconds = delta / CLOCK_TICKS
                        by_command = self.other_by_command
                        by_command[proc.comm] = by_command.get(proc.comm, 0.0) + seconds
                busy = (busy1 - busy0) * share
                ours = (ours1 - ours0) * share
                pg = (pg1 - pg0) * share
                cores = {
                    "ours": ours,
                    "ours_pg": min(ours_pg * share, pg),
                    "pg_other": max(0.0, pg - ours_pg * share),
                    "other": max(0.0, busy - ours - pg),
                }
                self.samples.append(
                    Sample(
                        t=round(self.now(), 2),
                        seconds=round(elapsed, 3),
                        busy=round(busy, 3),
                        steal=round((steal1 - steal0) * share, 3),
                        cores={k: round(v, 3) for k, v in cores.items()},
                        load1=loadavg()[0],
                    )
                )
                busy0, steal0, total0, procs0, at0 = busy1, steal1, total1, procs1, at1
                ours0, pg0 = ours1, pg1

    @staticmethod
    def _uptime_ticks() -> Callable[[float], int]:
        """A function: monotonic time -> jiffies after boot (to tell new processes)."""
        uptime = float(_read("/proc/uptime").split()[0] or 0.0)
        offset = uptime - time.monotonic()

        def ticks(at: float) -> int:
            return int((at + offset) * CLOCK_TICKS)

        return ticks

    def summary(self, start: float = 0.0, end: float | None = None) -> dict[str, Any]:
        """Average busy cores (machine and per category) over samples in [start, end]."""
        chosen = [
            s
            for s in self.samples
            if s.t - s.seconds >= start - 0.5 and (end is None or s.t <= end + 0.5)
        ]
        span = sum(s.seconds for s in chosen)
        if not chosen or span <= 0:
            return {"seconds": 0.0, "busy_cores": None, "cores": {}, "load1_max": None}
        return {
            "seconds": round(span, 1),
            "busy_cores": round(sum(s.busy * s.seconds for s in chosen) / span, 2),
            "steal_cores": round(sum(s.steal * s.seconds for s in chosen) / span, 2),
            "cores": {
                k: round(sum(s.cores[k] * s.seconds for s in chosen) / span, 2) for k in CATEGORIES
            },
            "load1_max": max(s.load1 for s in chosen),
        }
