"""`broadcaster send` driven in a pseudo-terminal, as an on-call engineer types it."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time

import asyncpg

from broadcaster.importer import seed_synthetic
from loadtest.common import mock_smsc_process


def _seed(db_dsn: str) -> None:
    import asyncio

    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        await seed_synthetic(conn, 20_000, seed=4)
        await conn.close()

    asyncio.run(seed())


def _drive(env: dict[str, str], answer_with: str | None) -> tuple[int, str]:
    """Run `send` on a pty; when it asks for the number, type `answer_with` (None: the number)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "broadcaster", "send", "--area", "dep:971", "--template", "outage"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**os.environ, **env},
        close_fds=True,
    )
    os.close(slave)
    output = b""
    answered = False
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            match = re.search(rb"Type (\d+) to send", output)
            if match and not answered:
                os.write(master, (answer_with or match.group(1).decode()).encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(30)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return code, output.decode("utf-8", errors="replace")


def test_typed_confirmation_sends_with_progress_and_report(db_dsn: str) -> None:
    _seed(db_dsn)
    with mock_smsc_process("--tps", "2000") as port:
        env = {
            "DATABASE_URL": db_dsn,
            "BROADCASTER_SMSC_URL": f"smpp://t:pw@127.0.0.1:{port}?binds=1&tps=2000",
            "BROADCASTER_LOG_LEVEL": "warning",
        }
        code, screen = _drive(env, None)
    assert code == 0, screen
    assert "[971/fr]" in screen  # the preview was shown before the question
    assert re.search(r"progress: [\d,]+ parts submitted", screen)
    report = re.search(r"broadcast 1: completed; ([\d,]+) recipients, ([\d,]+) accepted", screen)
    assert report is not None, screen
    assert report.group(1) == report.group(2)


def test_a_wrong_number_sends_nothing(db_dsn: str) -> None:
    _seed(db_dsn)
    with mock_smsc_process() as port:
        env = {
            "DATABASE_URL": db_dsn,
            "BROADCASTER_SMSC_URL": f"smpp://t:pw@127.0.0.1:{port}",
            "BROADCASTER_LOG_LEVEL": "warning",
        }
        code, screen = _drive(env, "12")
    assert code == 2, screen
    assert "not confirmed: nothing was sent" in screen

    import asyncio

    async def count() -> int:
        conn = await asyncpg.connect(db_dsn)
        n: int = await conn.fetchval("SELECT count(*) FROM broadcasts")
        await conn.close()
        return n

    assert asyncio.run(count()) == 0
