"""Report files written whole or not at all (`cli.options.written_whole`, `report --html`,
`--not-reached-csv`): an existing file keeps its mode and a symbolic link stays a link; a
report cut short, by an error or by SIGTERM, leaves what was there and no partial file."""

from __future__ import annotations

import errno
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from broadcaster.cli.options import refuse_one_file_twice, written_whole
from broadcaster.errors import EXIT_INTERRUPTED, InputError

LIST = "msisdn,departement,commune,language,why\n+33600000001,75,75101,fr,not sent\n"


def test_an_existing_file_keeps_its_mode_and_a_link_stays_a_link(tmp_path: Path) -> None:
    restricted = tmp_path / "missed.csv"
    restricted.write_text("before\n", encoding="utf-8")
    restricted.chmod(0o600)
    link = tmp_path / "latest.csv"
    link.symlink_to(restricted.name)
    with written_whole(link) as out:
        out.write(LIST)
    assert link.is_symlink() and link.resolve() == restricted
    assert restricted.read_text(encoding="utf-8") == LIST
    assert restricted.stat().st_mode & 0o777 == 0o600  # a list of phone numbers stays private
    fresh = tmp_path / "new.html"
    with written_whole(fresh) as out:
        out.write("<html></html>")
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask  # as `open` makes a new file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.csv", "missed.csv", "new.html"]


def test_an_error_midway_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    kept = tmp_path / "missed.csv"
    kept.write_text("before\n", encoding="utf-8")

    def report_failing() -> None:
        with written_whole(kept) as out:
            out.write(LIST)
            raise RuntimeError("the report failed")

    with pytest.raises(RuntimeError):
        report_failing()
    assert kept.read_text(encoding="utf-8") == "before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["missed.csv"]


def test_sigterm_during_a_report_leaves_no_partial_list(tmp_path: Path) -> None:
    """A database that accepts the connection and never answers holds the report; SIGTERM
    (`timeout`, systemd) then ends it as Ctrl-C would: exit 130, the hidden file removed."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    port = silent.getsockname()[1]
    kept = tmp_path / "missed.csv"
    kept.write_text("before\n", encoding="utf-8")
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/x"}
    report = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", "report", "1", "--not-reached-csv", str(kept)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not [p for p in tmp_path.iterdir() if p.name.startswith(".missed.csv.")]:
            assert time.monotonic() < deadline, "no temporary file appeared"
            assert report.poll() is None, report.communicate()
            time.sleep(0.02)
        report.send_signal(signal.SIGTERM)
        _, err = report.communicate(timeout=30)
    finally:
        report.kill()
        silent.close()
    assert report.returncode == EXIT_INTERRUPTED, err
    assert b"Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["missed.csv"]
    assert kept.read_text(encoding="utf-8") == "before\n"


def test_a_pipe_is_written_to_not_replaced(tmp_path: Path) -> None:
    """A pipe (an encryptor reading the list, `--html >(gzip)`) gets the text and stays a
    pipe: moving a plain file over it left the phone numbers unencrypted on disk."""
    fifo = tmp_path / "to-encryptor"
    os.mkfifo(fifo)
    got: list[bytes] = []

    def read() -> None:
        with open(fifo, "rb") as pipe:
            got.append(pipe.read())

    reader = threading.Thread(target=read)
    reader.start()
    with written_whole(fifo) as out:
        out.write(LIST)
    reader.join(10)
    assert got == [LIST.encode()]
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir()] == ["to-encryptor"]


def test_a_device_is_written_to_not_replaced() -> None:
    """/dev/null stays the null device (as root, a report to it had made it a plain file
    holding the report, read by every process after), and /dev/full's error is said: the
    text could not be written, exit 2, not "written"."""
    before = os.stat("/dev/null")
    with written_whole(Path("/dev/null")) as out:
        out.write(LIST)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev

    def to_full() -> None:
        with written_whole(Path("/dev/full")) as out:
            out.write(LIST * 2000)

    with pytest.raises(InputError, match=r"cannot write /dev/full: No space left on device"):
        to_full()
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_full_disk_is_said_and_the_file_left_as_it_was(tmp_path: Path) -> None:
    """A write that fails (the disk full) names the file, exit 2, the existing file as it was:
    not an OSError traceback from deep in the report."""
    kept = tmp_path / "missed.csv"
    kept.write_text("before\n", encoding="utf-8")

    class Full(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def to_a_full_disk() -> None:
        with written_whole(kept) as out:
            out._file = Full()  # the temporary file, as a full disk would refuse it
            out.write(LIST)

    with pytest.raises(InputError, match=r"cannot write .*missed.csv: No space left on device"):
        to_a_full_disk()
    assert kept.read_text(encoding="utf-8") == "before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["missed.csv"]


def test_one_file_named_for_both_outputs_is_refused(tmp_path: Path) -> None:
    same = tmp_path / "out"
    with pytest.raises(InputError, match="--html and --not-reached-csv name the same file"):
        refuse_one_file_twice(html=same, not_reached_csv=tmp_path / "." / "out")
    refuse_one_file_twice(html=Path("/dev/null"), not_reached_csv=Path("/dev/null"))
    refuse_one_file_twice(html=same, not_reached_csv=None)
    refuse_one_file_twice(html=same, not_reached_csv=tmp_path / "other")


def test_a_pipe_nobody_reads_is_refused_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a pipe waits for its reader: with the event loop stopped there, SIGTERM could
    not end `report` (it hung for minutes). A pipe nobody reads is given a moment for its
    reader, then refused, exit 2, and stays a pipe."""
    fifo = tmp_path / "nobody-reads"
    os.mkfifo(fifo)
    monkeypatch.setattr("broadcaster.cli.options.PIPE_READER_WAIT_S", 0.2)
    with pytest.raises(InputError, match=r"no process reads this pipe \(waited 0.2 s\)"):
        refuse_or_write(fifo)  # (a hang would be ended by pytest's timeout: a failure)
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def refuse_or_write(path: Path) -> None:
    with written_whole(path) as out:
        out.write(LIST)
