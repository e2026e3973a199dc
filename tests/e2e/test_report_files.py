"""Report files written whole or not at all (`cli.options.written_whole`, `report --html`,
`--not-reached-csv`): an existing file keeps its mode and a symbolic link stays a link; a
report cut short, by an error or by SIGTERM, leaves what was there and no partial file."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broadcaster.cli.options import written_whole
from broadcaster.errors import EXIT_INTERRUPTED

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
