"""`broadcaster send` driven in a pseudo-terminal, as an on-call engineer types it: the typed
confirmation, the live panel, the final report, and Ctrl-C (pause, then cancel or resume)."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import select
import signal
import subprocess
import sys
import termios
import time
from collections.abc import Iterator

import asyncpg
import pytest

from broadcaster.importer import seed_synthetic
from loadtest.common import mock_smsc, mock_smsc_process

ACCEPTED = "SELECT count(DISTINCT msisdn) FROM deliveries WHERE status = 0"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def _query(db_dsn: str, sql: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(db_dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.fixture
def seeded(db_dsn: str) -> str:
    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        await seed_synthetic(conn, 20_000, seed=4)
        await conn.close()

    asyncio.run(seed())
    return db_dsn


def _controlling_terminal() -> None:
    """In the child: a session of its own with the pty as controlling terminal, so that a
    typed Ctrl-C reaches it as SIGINT, exactly as in a real terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A `broadcaster send` process on a pseudo-terminal: read what it shows, type to it."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "broadcaster", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**os.environ, "COLUMNS": "120", **env},
            close_fds=True,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self.raw = b""

    @property
    def screen(self) -> str:
        """Everything shown so far, without colours and cursor movements."""
        return ANSI.sub(b"", self.raw).decode("utf-8", errors="replace")

    def _read(self, timeout: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # the child closed the terminal
            return False
        self.raw += chunk
        return bool(chunk)

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.screen)
            if match:
                return match
            if not self._read(0.1):
                break
        raise AssertionError(f"never saw {pattern!r}; the screen:\n{self.screen}")

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def finish(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self._read(0.1):
            if self.proc.poll() is not None:
                while self._read(0.05) and select.select([self.master], [], [], 0)[0]:
                    pass
                break
        return self.proc.wait(10)

    def close(self) -> None:
        os.close(self.master)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def terminal() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for t in opened:
        t.close()


def _send(
    opened: list[Terminal],
    db_dsn: str,
    port: int,
    tps: int,
    area: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> Terminal:
    env = {
        "DATABASE_URL": db_dsn,
        "BROADCASTER_SMSC_URL": f"smpp://t:pw@127.0.0.1:{port}?binds=1&tps={tps}",
        "BROADCASTER_LOG_LEVEL": "warning",
        **(env or {}),
    }
    t = Terminal(["send", "--area", area, "--template", "outage", *extra], env)
    opened.append(t)
    return t


def _confirm(t: Terminal) -> int:
    """Answer the question with the number it asks for; return that number."""
    asked = t.wait_for(r"Type (\d+) to send to [\d,]+ PEOPLE \(live, the public\)")
    t.type(asked.group(1) + "\n")
    return int(asked.group(1))


def test_typed_confirmation_then_live_panel_and_final_report(
    seeded: str, terminal: list[Terminal]
) -> None:
    with mock_smsc_process("--tps", "1000") as port:
        t = _send(terminal, seeded, port, 800, "region:93")
        t.wait_for(r"LIVE ALERT — goes to the public")
        t.wait_for(r"\[13/fr\] [\d,]+ recipients")  # the preview, before the question
        recipients = _confirm(t)
        code = t.finish()
    screen = t.screen
    assert code == 0, screen
    # The live panel: counts, rate, ETA and the SMSC's health, redrawn while sending.
    frames = re.findall(r"submitted ([\d,]+)\s+accepted ([\d,]+)\s+failed 0\s+throttled 0", screen)
    assert len(frames) >= 3, screen
    assert int(frames[0][1].replace(",", "")) < recipients  # seen while under way
    assert re.search(r"rate [\d,]+ parts/s\s+elapsed [\d.]+ s\s+ETA ", screen)
    assert re.search(r"SMSC\s+state\s+binds\s+parts/s", screen)
    assert re.search(r"\s+up\s+1/1\s", screen)
    report = re.search(
        r"broadcast 1: completed; ([\d,]+) recipients: ([\d,]+) accepted, 0 failed; "
        r"[\d,]+ parts, 0 possibly sent twice \(0 recorded twice\)",
        screen,
    )
    assert report is not None, screen
    assert int(report.group(1).replace(",", "")) == recipients
    assert report.group(1) == report.group(2)


def test_ctrl_c_pauses_then_cancel_stops_it_for_good(seeded: str, terminal: list[Terminal]) -> None:
    with mock_smsc_process("--tps", "1000") as port:
        t = _send(terminal, seeded, port, 300, "region:11")
        recipients = _confirm(t)
        t.wait_for(r"accepted [1-9][\d,]*")
        t.type("\x03")  # Ctrl-C, through the terminal's line discipline
        t.wait_for(r"broadcast 1 is PAUSED: ([\d,]+) of ([\d,]+) parts sent")
        t.wait_for(r"\[r\]esume or \[c\]ancel, or \[l\]eave it paused and exit\?")
        # While the question waits, nothing is sent: the pause is real, not just a display.
        accepted_at_question = _query(seeded, ACCEPTED)
        time.sleep(1.0)
        assert _query(seeded, ACCEPTED) == accepted_at_question
        assert _query(seeded, "SELECT state FROM broadcasts WHERE id = 1") == "paused"
        t.type("c\n")
        code = t.finish()
    screen = t.screen
    assert code == 130, screen
    assert "broadcast 1 cancelled: nothing more is sent" in screen
    assert re.search(r"broadcast 1: cancelled; [\d,]+ recipients", screen), screen
    assert _query(seeded, "SELECT state FROM broadcasts WHERE id = 1") == "cancelled"
    assert isinstance(accepted_at_question, int)
    assert 0 < accepted_at_question < recipients
    assert _query(seeded, ACCEPTED) == accepted_at_question
    assert _query(seeded, "SELECT count(*) FROM broadcast_chunks WHERE leased_by IS NOT NULL") == 0


def test_ctrl_c_then_resume_finishes_each_recipient_once(
    seeded: str, terminal: list[Terminal]
) -> None:
    with mock_smsc_process("--tps", "1000") as port:
        t = _send(terminal, seeded, port, 500, "region:93")
        recipients = _confirm(t)
        t.wait_for(r"accepted [1-9][\d,]*")
        t.type("\x03")
        t.wait_for(r"\[r\]esume or \[c\]ancel")
        assert _query(seeded, "SELECT state FROM broadcasts WHERE id = 1") == "paused"
        t.type("r\n")
        t.wait_for("resuming broadcast 1")
        code = t.finish()
    screen = t.screen
    assert code == 0, screen
    report = re.search(r"broadcast 1: completed; ([\d,]+) recipients: ([\d,]+) accepted", screen)
    assert report is not None, screen
    assert report.group(1) == report.group(2) == f"{recipients:,}"
    assert "0 possibly sent twice (0 recorded twice)" in screen
    assert _query(seeded, "SELECT count(DISTINCT msisdn) FROM deliveries") == recipients


def test_ctrl_c_at_the_question_sends_nothing(seeded: str, terminal: list[Terminal]) -> None:
    with mock_smsc_process() as port:
        t = _send(terminal, seeded, port, 0, "dep:971")
        t.wait_for(r"Type (\d+) to send")
        t.type("\x03")
        code = t.finish()
    assert code == 2, t.screen
    assert "not confirmed: nothing was sent" in t.screen
    assert _query(seeded, "SELECT count(*) FROM broadcasts") == 0


def test_a_wrong_number_asks_again_then_sends_nothing(
    seeded: str, terminal: list[Terminal]
) -> None:
    """A slip of the finger is not a refusal: the question comes back, three times in all."""
    with mock_smsc_process() as port:
        t = _send(terminal, seeded, port, 0, "dep:971")
        t.wait_for(r"Type (\d+) to send")
        t.type("12\n")
        t.wait_for(r"that is not \d+: nothing was sent \(2 tries left")
        t.type("13\n")
        t.wait_for(r"\(1 try left")
        t.type("14\n")
        code = t.finish()
    assert code == 2, t.screen
    assert "not confirmed: nothing was sent" in t.screen
    assert _query(seeded, "SELECT count(*) FROM broadcasts") == 0


def test_a_mistyped_number_then_the_right_one_sends(seeded: str, terminal: list[Terminal]) -> None:
    with mock_smsc_process() as port:
        t = _send(terminal, seeded, port, 0, "dep:971")
        asked = t.wait_for(r"Type (\d+) to send")
        t.type("1" + asked.group(1) + "\n")
        t.wait_for(r"that is not \d+")
        t.type(asked.group(1) + "\n")
        code = t.finish()
    assert code == 0, t.screen
    assert _query(seeded, "SELECT state FROM broadcasts WHERE id = 1") == "completed"


def test_an_exported_broadcaster_yes_never_confirms_a_live_send(
    seeded: str, terminal: list[Terminal]
) -> None:
    """`export BROADCASTER_YES=1` once sent a live alert without the question: it is ignored,
    the question is asked, and nothing reaches the SMSC before the answer."""
    with mock_smsc(stats=True) as mock:
        t = _send(terminal, seeded, mock.port, 0, "dep:971", env={"BROADCASTER_YES": "1"})
        t.wait_for(r"Type (\d+) to send")
        assert mock.stats()["submits"] == 0
        t.type("\x04")  # end of input: not confirmed
        code = t.finish()
    assert code == 2, t.screen
    assert _query(seeded, "SELECT count(*) FROM broadcasts") == 0


PREVIEW = (sys.executable, "-m", "broadcaster", "--json", "preview")


def test_sigint_to_a_script_leaves_it_paused_and_says_so(seeded: str) -> None:
    """No terminal to ask: the broadcast stays paused (a known state a person can resume or
    cancel), and the JSON report says so."""
    with mock_smsc_process("--tps", "1000") as port:
        env = {
            **os.environ,
            "DATABASE_URL": seeded,
            "BROADCASTER_SMSC_URL": f"smpp://t:pw@127.0.0.1:{port}?binds=1&tps=300",
            "BROADCASTER_LOG_LEVEL": "warning",
        }
        expected = json.loads(
            subprocess.run(
                [*PREVIEW, "--area", "region:11", "--template", "outage"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )["recipients"]
        command = ["send", "--area", "region:11", "--template", "outage", "--yes"]
        command += ["--expect-recipients", str(expected)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "broadcaster", "--json", *command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        try:
            assert proc.stderr is not None
            for line in proc.stderr:  # plain progress lines: stderr is not a terminal
                if re.match(r"progress: [\d,]+ parts submitted, [1-9]", line):
                    break
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, err
    report = json.loads(out)  # stdout holds the JSON report and nothing else
    assert report["state"] == "paused"
    assert report["interrupted"] == "left_paused"
    assert 0 < report["accepted"] < report["recipients"]
    assert "`broadcaster resume 1` or `broadcaster cancel 1`" in err
    assert _query(seeded, "SELECT state FROM broadcasts WHERE id = 1") == "paused"
    assert _query(seeded, "SELECT count(*) FROM broadcast_chunks WHERE leased_by IS NOT NULL") == 0


def test_sigterm_pauses_and_leaves_it_paused_without_asking(
    seeded: str, terminal: list[Terminal]
) -> None:
    """SIGTERM (or SIGHUP: the terminal went away) has nobody to ask: paused, and said so."""
    with mock_smsc_process("--tps", "1000") as port:
        t = _send(terminal, seeded, port, 300, "region:11")
        _confirm(t)
        t.wait_for(r"accepted [1-9][\d,]*")
        t.proc.send_signal(signal.SIGTERM)
        code = t.finish()
    screen = t.screen
    assert code == 130, screen
    assert "[r]esume" not in screen
    assert "broadcast 1 left PAUSED: `broadcaster resume 1` or `broadcaster cancel 1`" in screen
    assert _query(seeded, "SELECT state FROM broadcasts WHERE id = 1") == "paused"
