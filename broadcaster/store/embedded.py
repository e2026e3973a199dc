"""A throwaway PostgreSQL cluster owned by this process, for demos and tests without a server.

`initdb` + `pg_ctl` on a unix socket in a private directory under /tmp, durability switched off
(fine for a demo or a test, never for a real deployment), everything deleted on `stop()`.
Sync on purpose: it runs before the event loop starts, or through `asyncio.to_thread`.

Gotchas it handles (measured on Debian with PostgreSQL 15): initdb, pg_ctl and postgres refuse to
run as root, so as root they run as `postgres` (or `nobody`) and the directory belongs to that
user; a unix socket path must stay under ~107 bytes, hence a short directory directly in /tmp;
/dev/shm may be tiny in containers, hence `dynamic_shared_memory_type=mmap`.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import importlib.util
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog

from broadcaster.errors import StoreError

log = structlog.get_logger(__name__)

SUPERUSER = "postgres"
PORT = 5432
"""Only names the socket file (`.s.PGSQL.5432`): the directory is private, so no clash."""

SEARCH_DIRS = (
    "/usr/lib/postgresql/*/bin",  # Debian, Ubuntu
    "/usr/pgsql-*/bin",  # PGDG packages on RHEL and friends
    "/usr/local/pgsql/bin",  # built from source
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)
"""Where distributions install the server binaries (not on PATH there), newest version first."""

DEFAULT_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "",
    "port": str(PORT),
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "dynamic_shared_memory_type": "mmap",
    "shared_buffers": "128MB",
    "max_connections": "100",
    "log_min_messages": "warning",
}

INSTALL_HINT = (
    "install PostgreSQL (e.g. `apt-get install postgresql`, or `pip install pgserver` for "
    "bundled binaries) or set DATABASE_URL to an existing server"
)


@dataclass(frozen=True)
class Binaries:
    """The two programs needed; pg_ctl finds `postgres` next to itself."""

    initdb: Path
    pg_ctl: Path


def find_binaries(
    search_dirs: Sequence[str] = SEARCH_DIRS, path: str | None = None, bundled: bool = True
) -> Binaries:
    """PATH first (what the user chose), then the usual install directories (newest first),
    then the binaries bundled by the `pgserver` package if it is installed."""
    initdb, pg_ctl = shutil.which("initdb", path=path), shutil.which("pg_ctl", path=path)
    if initdb and pg_ctl:
        return Binaries(Path(initdb), Path(pg_ctl))
    candidates: list[Path] = []
    for pattern in search_dirs:
        candidates.extend(Path(p) for p in glob.glob(pattern))
    candidates.sort(key=_version_key, reverse=True)
    # Last resort: the `pgserver` wheel (PyPI) bundles the server binaries.
    spec = importlib.util.find_spec("pgserver") if bundled else None
    if spec is not None and spec.origin is not None:
        candidates.append(Path(spec.origin).parent / "pginstall" / "bin")
    for bin_dir in candidates:
        initdb_path, pg_ctl_path = bin_dir / "initdb", bin_dir / "pg_ctl"
        if os.access(initdb_path, os.X_OK) and os.access(pg_ctl_path, os.X_OK):
            return Binaries(initdb_path, pg_ctl_path)
    raise StoreError(
        "no DATABASE_URL is set and no PostgreSQL server binaries (initdb, pg_ctl) were found "
        f"on PATH or in {', '.join(search_dirs) or 'the usual directories'}: {INSTALL_HINT}"
    )


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    """`/usr/lib/postgresql/15/bin` -> (15,); `postgresql@9.6` -> (9, 6); none -> ()."""
    for part in reversed(bin_dir.parts):
        found = re.search(r"(\d+(?:\.\d+)*)$", part)
        if found:
            return tuple(int(n) for n in found.group(1).split("."))
    return ()


class EmbeddedPostgres:
    """A private cluster: `start()` returns an asyncpg DSN, `stop()` deletes everything.

    Also a context manager: `with EmbeddedPostgres() as pg: ... pg.dsn`.
    """

    def __init__(
        self,
        binaries: Binaries | None = None,
        settings: Mapping[str, str] | None = None,
        run_as: str | None = None,
        start_timeout_s: int = 30,
    ) -> None:
        self._binaries = binaries
        self.settings = {**DEFAULT_SETTINGS, **(settings or {})}
        self._run_as = run_as
        self._start_timeout_s = start_timeout_s
        self.base_dir: Path | None = None
        self._dsn: str | None = None
        self._runner: _Runner | None = None
        self._pg_ctl: Path | None = None

    @property
    def dsn(self) -> str:
        if self._dsn is None:
            raise StoreError("the embedded PostgreSQL server is not running: call start() first")
        return self._dsn

    @property
    def running(self) -> bool:
        return self._dsn is not None

    @property
    def data_dir(self) -> Path:
        if self.base_dir is None:
            raise StoreError("the embedded PostgreSQL server is not running: call start() first")
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / "server.log"

    def start(self) -> str:
        """initdb, configure and start; returns the DSN once the server accepts connections."""
        if self._dsn is not None:
            return self._dsn
        began = time.monotonic()
        binaries = self._binaries or find_binaries()
        # A short path directly in /tmp: the socket path must stay under ~107 bytes.
        self.base_dir = Path(tempfile.mkdtemp(prefix="bcpg-", dir="/tmp"))
        atexit.register(self.stop)
        try:
            runner = self._runner = _Runner(self._run_as, self.base_dir)
            self._pg_ctl = binaries.pg_ctl
            self._initdb(runner, binaries.initdb)
            self._configure()
            self._pg_ctl_start(runner, binaries.pg_ctl)
        except BaseException:
            self.stop()
            raise
        self._dsn = (
            f"postgresql://{SUPERUSER}@/postgres?host={self.base_dir}&port={self.settings['port']}"
        )
        log.debug(
            "embedded_postgres_ready",
            dsn=self._dsn,
            pg_ctl=str(binaries.pg_ctl),
            user=runner.user_name,
            seconds=round(time.monotonic() - began, 3),
        )
        return self._dsn

    def stop(self) -> None:
        """Stop the server (immediately: nothing here is worth keeping) and delete its files."""
        base_dir, self.base_dir, self._dsn = self.base_dir, None, None
        atexit.unregister(self.stop)
        if base_dir is None:
            return
        try:
            if self._runner and self._pg_ctl and (base_dir / "data" / "postmaster.pid").exists():
                self._pg_ctl_stop(self._runner, self._pg_ctl, base_dir)
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)

    def stop_server(self) -> None:
        """Stop the server as an outage would (`pg_ctl stop -m immediate`: connections cut,
        no clean shutdown), keeping its files: `start_server()` brings the same data back.
        For fault tests."""
        assert self._runner is not None, "start() first"
        assert self._pg_ctl is not None, "start() first"
        self._pg_ctl_stop(self._runner, self._pg_ctl, self.data_dir.parent)

    def start_server(self) -> None:
        """Start the server `stop_server()` stopped, on the same data (crash recovery first)."""
        assert self._runner is not None, "start() first"
        assert self._pg_ctl is not None, "start() first"
        self._pg_ctl_start(self._runner, self._pg_ctl)

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _initdb(self, runner: _Runner, initdb: Path) -> None:
        args = [str(initdb), "-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust"]
        args += ["-E", "UTF8", "--no-sync"]
        result = runner.run([*args, "--locale=C.UTF-8"], timeout=120)
        if result.returncode != 0 and "invalid locale name" in result.stdout:
            # A libc without C.UTF-8 (musl, macOS): the C locale is the portable fallback.
            shutil.rmtree(self.data_dir, ignore_errors=True)
            result = runner.run([*args, "--no-locale"], timeout=120)
        if result.returncode != 0:
            raise StoreError(
                f"initdb failed (exit {result.returncode}) as user {runner.user_name!r}:\n"
                f"{_tail(result.stdout)}\n(or set DATABASE_URL to use an existing server)"
            )

    def _configure(self) -> None:
        assert self.base_dir is not None
        settings = {**self.settings, "unix_socket_directories": str(self.base_dir)}
        lines = [f"{name} = {_quote(value)}" for name, value in settings.items()]
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# broadcaster embedded server\n" + "\n".join(lines) + "\n")

    def _pg_ctl_start(self, runner: _Runner, pg_ctl: Path) -> None:
        args = [str(pg_ctl), "start", "-D", str(self.data_dir), "-l", str(self.log_file)]
        args += ["-w", "-t", str(self._start_timeout_s), "-s"]
        result = runner.run(args, timeout=self._start_timeout_s + 10)
        if result.returncode != 0:
            server_log = ""
            with contextlib.suppress(OSError):
                server_log = self.log_file.read_text(encoding="utf-8", errors="replace")
            raise StoreError(
                f"the embedded PostgreSQL server did not start (pg_ctl exit {result.returncode}):"
                f"\n{_tail(result.stdout)}\n{_tail(server_log)}".rstrip()
                + "\n(or set DATABASE_URL to use an existing server)"
            )

    @staticmethod
    def _pg_ctl_stop(runner: _Runner, pg_ctl: Path, base_dir: Path) -> None:
        args = [str(pg_ctl), "stop", "-D", str(base_dir / "data"), "-m", "immediate", "-w", "-s"]
        try:
            result = runner.run(args, timeout=30)
        except subprocess.TimeoutExpired:
            result = None
        if result is None or result.returncode != 0:
            _kill_postmaster(base_dir / "data" / "postmaster.pid")
            log.warning(
                "embedded_postgres_stop_failed",
                output=_tail(result.stdout) if result else "timeout",
            )


class _Runner:
    """Runs the server programs as an unprivileged user when we are root (they refuse root)."""

    def __init__(self, run_as: str | None, base_dir: Path) -> None:
        self.cwd = base_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        self.env.update(LC_ALL="C.UTF-8", LANG="C.UTF-8")
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self.user = _unprivileged_user(run_as)
            os.chown(base_dir, self.user.pw_uid, self.user.pw_gid)
            self.env.update(HOME=str(base_dir), USER=self.user.pw_name, LOGNAME=self.user.pw_name)

    @property
    def user_name(self) -> str:
        return self.user.pw_name if self.user else pwd.getpwuid(os.geteuid()).pw_name

    def run(self, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, Any] = {}
        if self.user is not None and self.user.pw_uid != os.geteuid():
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        try:
            return subprocess.run(
                args,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                timeout=timeout,
                check=False,
                **kwargs,
            )
        except OSError as exc:
            raise StoreError(
                f"cannot run {args[0]} as user {self.user_name!r}: {exc.strerror or exc} "
                "(the server binaries must be readable and executable by that user)"
            ) from exc


def _unprivileged_user(name: str | None) -> pwd.struct_passwd:
    for candidate in [name] if name else ["postgres", "nobody"]:
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(candidate)
    raise StoreError(
        f"running as root, and there is no user {name or 'postgres or nobody'} to run the "
        f"embedded PostgreSQL server as (it refuses root): create one or set DATABASE_URL"
    )


def _kill_postmaster(pid_file: Path) -> None:
    """Last resort when pg_ctl could not stop the server: SIGKILL the postmaster."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text(encoding="ascii").splitlines()[0])
        os.kill(pid, 9)


def _quote(value: str) -> str:
    """A postgresql.conf string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
