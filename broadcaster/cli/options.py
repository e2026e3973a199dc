"""Shared CLI plumbing: options mirrored by environment variables, JSON or human output.

Every flag declared through `flag`, `switch` or `multi` takes its default from the
`BROADCASTER_*` variable named in its help, so scripts and services configure the CLI without
arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import errno
import getpass
import json
import os
import re
import socket
import stat
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from broadcaster.commands.context import Context
from broadcaster.domain.caller import Caller
from broadcaster.errors import ConfigError, InputError, StoreError
from broadcaster.settings import TRUE_WORDS, Settings

if TYPE_CHECKING:
    from broadcaster.store.database import Conn

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]
Commands = Any
"""The object `ArgumentParser.add_subparsers()` returns (private type in argparse)."""


class Parser(argparse.ArgumentParser):
    """The CLI's argument parser, stricter than argparse's for an operator at 3 a.m.: a flag is
    taken only as spelled (argparse took `--ye` for `--yes`, `--expect` for
    `--expect-recipients`, `--dril` for `--drill`: a confirmation typed short, a live send); a
    mistake names the flags not recognised, with the nearest one (argparse said only that
    `--template` was missing when `--temlate` was typed); with `--json`, a mistake is also the
    one JSON object on stdout every refusal is."""

    argv: Sequence[str] = ()
    """The command line being parsed (`main` sets it): what `error` reads the unknown flags
    and `--json` from..."""
    root: argparse.ArgumentParser | None = None
    """...and the parser of `broadcaster` itself, whose commands it walks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        hints = self._unrecognised()
        if hints and "unrecognized arguments" not in message:
            message = f"{message}; not recognised: {hints}"
        elif hints:
            message = f"not recognised: {hints}"
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        if "--json" in Parser.argv or os.environ.get("BROADCASTER_JSON", "").lower() in TRUE_WORDS:
            error = {"error": message, "kind": "UsageError", "exit_code": EXIT_USAGE}
            print(json.dumps(error), flush=True)
        sys.exit(EXIT_USAGE)

    def _unrecognised(self) -> str:
        """The flags of the command line that its command does not know, each with the
        nearest one it does ("--temlate (did you mean --template?)"); empty if none."""
        known = self._known_flags()
        seen: set[str] = set()
        said: list[str] = []
        for word in Parser.argv:
            if word == "--":  # what follows is positional
                break
            name = word.split("=", 1)[0]
            if not name.startswith("--") or name in known or name in seen:
                continue
            seen.add(name)
            near = [k for k in known if k.startswith(name)] or difflib.get_close_matches(
                name, known, n=1
            )  # what it abbreviates (argparse took that), else the nearest spelling
            said.append(f"{name} (did you mean {' or '.join(near)}?)" if near else name)
        return ", ".join(said)

    def _known_flags(self) -> list[str]:
        """The flags of `broadcaster` and of the command (and action) the command line
        names: "unrecognized arguments" comes from the top parser, which knows only its own."""
        parser: argparse.ArgumentParser = Parser.root or self
        known = [o for action in parser._actions for o in action.option_strings]
        for token in Parser.argv:
            commands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            if token.startswith("-") or not commands or token not in commands[0].choices:
                continue
            parser = commands[0].choices[token]
            known += [o for action in parser._actions for o in action.option_strings]
        return known


EXIT_USAGE = 2
"""A command line not understood: bad input, nothing done (the exit code of argparse)."""


class _EnvDefault(argparse.Action):
    """An option whose default comes from an environment variable, named in its help."""

    def __init__(self, env: str, required: bool = False, **kwargs: Any) -> None:
        kind = kwargs.get("type") or str
        if env in os.environ:
            raw = os.environ[env]
            if kwargs.get("nargs") == 0:
                kwargs["default"] = raw.lower() in TRUE_WORDS
            elif kwargs.get("action_list"):
                kwargs["default"] = [v for v in raw.split(",") if v]
            else:
                try:
                    kwargs["default"] = kind(raw)
                except (TypeError, ValueError) as exc:
                    raise ConfigError(f"{env}={raw!r} is not valid: {exc}") from exc
                choices = kwargs.get("choices")
                if choices is not None and kwargs["default"] not in choices:
                    raise ConfigError(
                        f"{env}={raw!r} is not valid: choose from {', '.join(map(str, choices))}"
                    )
            required = False
        kwargs.pop("action_list", None)
        kwargs["help"] = f"{kwargs.get('help', '')} [env: {env}]".strip()
        super().__init__(required=required, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if self.nargs == 0:
            setattr(namespace, self.dest, True)
        elif isinstance(self.default, list) and not isinstance(values, list):
            current = getattr(namespace, self.dest)
            if current is self.default:
                current = []
            setattr(namespace, self.dest, [*current, values])
        else:
            setattr(namespace, self.dest, values)


Container = argparse.ArgumentParser | argparse._ArgumentGroup
"""A parser, or one of its (mutually exclusive) groups."""


def flag(parser: Container, *names: str, env: str, **kwargs: Any) -> None:
    parser.add_argument(*names, action=_EnvDefault, env=env, **kwargs)


def switch(parser: Container, name: str, env: str, help: str) -> None:
    parser.add_argument(name, action=_EnvDefault, env=env, nargs=0, default=False, help=help)


def multi(parser: argparse.ArgumentParser, name: str, env: str, help: str, **kw: Any) -> None:
    parser.add_argument(
        name, action=_EnvDefault, env=env, default=[], action_list=True, help=help, **kw
    )


def need_database(settings: Settings) -> str:
    """The configured DATABASE_URL (ConfigError, exit 2, saying what to set, when there is
    none): only `demo` works on a throwaway database."""
    from broadcaster.store.database import configured

    return configured(settings)


def cli_actor() -> str:
    """Who acts, for the audit log: `cli:<login name>`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


def cli_caller(name: str | None = None) -> Caller:
    """The person at this terminal, as the commands see them (audited with their login and
    host): whoever can run the CLI against the database holds every permission (the typed
    confirmations guard the sends)."""
    return Caller(name=name or cli_actor(), role="admin", interface="cli", origin=cli_origin())


def cli_origin() -> str:
    """`login@host`: where a CLI command was typed."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError):
        login = "?"
    return f"{login}@{socket.gethostname()}"


@asynccontextmanager
async def command_context(
    settings: Settings,
    *,
    migrate: bool = True,
    connections: int = 2,
    behind_ok: bool = False,
) -> AsyncIterator[Context]:
    """What the commands work with, on DATABASE_URL (migrated first unless told not to), for
    the length of one CLI command; a command that runs a broadcast here needs `connections=6`
    (the runner streams, flushes, renews leases and watches for a cancel at once)."""
    from broadcaster.smpp.pool import contracted_capacity
    from broadcaster.store.database import create_pool, ensure_migrated

    dsn = need_database(settings)
    if migrate:
        await ensure_migrated(dsn, settings.sql_dir)
    db = await create_pool(dsn, min_size=min(2, connections), max_size=connections)
    try:
        if not migrate:
            async with db.acquire() as conn:
                await refuse_unmigrated(conn, dsn, settings.sql_dir, behind_ok=behind_ok)
        yield Context(
            db=db,
            settings=settings,
            parts_per_second=contracted_capacity(settings.smscs),
            smscs=tuple(s.name for s in settings.smscs),
        )
    finally:
        await db.close()


async def refuse_unmigrated(
    conn: Conn, dsn: str, sql_dir: Path, *, behind_ok: bool = False
) -> None:
    """A command that does not migrate (it only reads, or acts on what is there) refuses a
    database missing some of this version's migrations, saying what to run: on a fresh database
    `list` and `status` ended in asyncpg's UndefinedTableError traceback. With `behind_ok`
    (cancel, pause, resume: stopping a live broadcast must not wait for a deployment's
    `db migrate`), only a database without the schema at all."""
    from broadcaster.store.database import redact
    from broadcaster.store.migrations import applied_versions, pending

    missing = await pending(conn, sql_dir / "migrations")
    if missing and behind_ok and await applied_versions(conn):
        return
    if missing:
        raise StoreError(
            f"the database {redact(dsn)} lacks {len(missing)} of this "
            f"version's migrations (from {missing[0]}): run `broadcaster db migrate` first"
        )


DURATION = re.compile(r"^(?P<value>[0-9]{1,6}(?:\.[0-9]{1,3})?)(?P<unit>[smhd])$")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `1d` -> timedelta (plain decimal numbers only: no `inf`, no
    exponent, at most a million units)."""
    match = DURATION.match(text.strip())
    if match is None or float(match["value"]) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 90s, 15m, 2h or 1d")
    return timedelta(seconds=float(match["value"]) * DURATION_UNITS[match["unit"]])


def output_file(text: str) -> Path:
    """A file this command will write (a report, a reject file): its directory must exist and
    be writable, checked before any work is done, so that an import is not done and then lost
    in a traceback because its reject file could not be written."""
    path = Path(text)
    folder = path.parent
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is a directory")
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"cannot write {text}: no directory {folder}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied")
    return path


MAX_ID = 2**63 - 1
"""The largest id the database stores (bigint)."""


def record_id(text: str) -> int:
    """The id of a stored record (a broadcast, a token, an audit entry): a whole number from 1
    to `MAX_ID`. A larger one reached the database as a traceback (asyncpg's DataError)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ID:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an id (a whole number from 1 to {MAX_ID})"
        )
    return value


@contextlib.contextmanager
def written_whole(path: Path) -> Iterator[_Output]:
    """`path`, written whole or not at all: the text goes to a file beside it that takes its
    place once the block ends without an error (a report refused, or of an unknown id, left an
    existing file emptied). A target that is not a regular file (a pipe, /dev/null, /dev/full,
    a terminal) is written to as it is: moving a file over it replaced the device or the pipe
    with a plain file (as root, /dev/null itself). An InputError (exit 2) when it cannot be
    written, or the disk fills, never a traceback."""
    target = Path(os.path.realpath(path))  # through a symbolic link: the link stays
    try:
        found = target.stat()
    except FileNotFoundError:
        found = None
    if found is not None and not stat.S_ISREG(found.st_mode):
        direct = _open_as_it_is(path, target, stat.S_ISFIFO(found.st_mode))
        with _closing_output(path, direct) as written:
            yield written
        return
    # An existing file keeps its mode; a new one gets what `open` would give it.
    mode = stat.S_IMODE(found.st_mode) if found is not None else 0o666 & ~_umask()
    try:
        out = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed below, or on error)
            "w", encoding="utf-8", dir=target.parent, prefix=f".{target.name}.", delete=False
        )
    except OSError as exc:
        raise _cannot_write(path, exc, "nothing was written") from exc
    try:
        with _closing_output(path, out) as written:
            yield written
        os.chmod(out.name, mode)
        os.replace(out.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(out.name)
        raise


def refuse_one_file_twice(**outputs: Path | None) -> None:
    """Two outputs of one command (`report --html A --not-reached-csv A`) naming one regular
    file: the second overwrote the first (an audited export lost under a report). A device or
    a pipe named twice is written twice, as asked."""
    seen: dict[str, str] = {}
    for flag, path in outputs.items():
        if path is None or (path.exists() and not path.is_file()):
            continue
        real = os.path.realpath(path)
        other = seen.setdefault(real, flag)
        if other != flag:
            raise InputError(
                f"--{other.replace('_', '-')} and --{flag.replace('_', '-')} name the same file "
                f"({path}): one would overwrite the other; nothing was written"
            )


PIPE_READER_WAIT_S = 5.0
"""How long a pipe is given for its reader to open it (a reader started just before)."""


def _open_as_it_is(path: Path, target: Path, pipe: bool) -> IO[str]:
    """A device or a pipe, opened for writing. A pipe is given `PIPE_READER_WAIT_S` for its
    reader, then refused (a blocking open waited for a reader for ever, with the event loop
    stopped, where no SIGTERM could end it); then written to as any pipe."""
    try:
        if not pipe:
            return open(target, "w", encoding="utf-8")  # (closed by the caller)
        fd = _open_pipe(target)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            raise InputError(
                f"cannot write {path}: no process reads this pipe (waited "
                f"{PIPE_READER_WAIT_S:g} s); start its reader first, nothing was written"
            ) from exc
        raise _cannot_write(path, exc, "nothing was written") from exc
    os.set_blocking(fd, True)
    return open(fd, "w", encoding="utf-8")  # (closed by the caller)


def _open_pipe(target: Path) -> int:
    """The pipe opened without waiting, tried again until a reader comes or time is up."""
    deadline = time.monotonic() + PIPE_READER_WAIT_S
    while True:
        try:
            return os.open(target, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


class _Output:
    """What `written_whole` yields: `write`, whose failure (a full disk, a pipe closed) says
    which file could not be written, not the OSError of a write deep in a command (where a
    database's connection error, an OSError too, must not be taken for the file's)."""

    def __init__(self, path: Path, file: IO[str]) -> None:
        self._path = path
        self._file = file

    def write(self, text: str) -> int:
        try:
            return self._file.write(text)
        except OSError as exc:
            raise _cannot_write(self._path, exc) from exc


@contextlib.contextmanager
def _closing_output(path: Path, file: IO[str]) -> Iterator[_Output]:
    """`file` as an `_Output`, closed at the end (the last bytes go out then: /dev/full fails
    there), its failure said as a write's."""
    try:
        yield _Output(path, file)
    except BaseException:
        with contextlib.suppress(OSError):
            file.close()
        raise
    try:
        file.close()
    except OSError as exc:
        raise _cannot_write(path, exc) from exc


def _cannot_write(path: Path, exc: OSError, so: str = "it is not complete") -> InputError:
    return InputError(f"cannot write {path}: {exc.strerror or exc}; {so}")


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def positive_int(text: str) -> int:
    """A count of 1 or more (`--limit`): argparse shows this sentence, not a traceback."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


def add_command(
    commands: Commands,
    name: str,
    help: str,
    handler: Handler,
    epilog: str = "",
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A sub-command whose --help shows its description (default: `help`) and examples."""
    sub: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help,
        description=description or help,
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub.set_defaults(handler=handler)
    # `--json` is also accepted after the command (where scripts naturally put it).
    sub.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print one JSON object on stdout (for scripts) [env: BROADCASTER_JSON]",
    )
    # So is `--database-url`: at 3 a.m. it goes at the end of the line, as often as not.
    sub.add_argument(
        "--database-url",
        default=argparse.SUPPRESS,
        help="PostgreSQL URL of the database, here as before the command [env: DATABASE_URL]",
    )
    return sub


LIVE_WORDS = ("LIVE ALERT — goes to the public", "[LIVE]", " LIVE ")
DRILL_WORDS = ("DRILL — EXERCISE, test group only", "[DRILL (exercise)]", " DRILL ")


def emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    """One JSON object for scripts; for people, the text — with live and drill markers in
    red and yellow on a terminal (the words alone say it everywhere else). A reader that stops
    early (`| head`) is not an error: the command's exit code still says how it went."""
    try:
        _write(args, payload, human)
    except BrokenPipeError:
        # Point stdout at /dev/null so that the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


class Emitted:
    """Whether this run printed its JSON object (a refusal then adds none: one object only)."""

    json = False


def _write(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    if args.json:
        print(json.dumps(payload, default=str), flush=True)
        Emitted.json = True
    elif sys.stdout.isatty():
        from rich.console import Console
        from rich.text import Text

        text = Text(human)
        text.highlight_words(LIVE_WORDS, "bold white on red")
        text.highlight_words(DRILL_WORDS, "bold black on yellow")
        Console(highlight=False, soft_wrap=True).print(text)
    else:
        print(human, flush=True)
