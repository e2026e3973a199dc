"""`broadcaster serve` runs the drill scheduler beside its worker: a drill started through the API
is sent by the server's worker to its mock SMSC, and reported by its scheduler once the receipts
are in; the server stops cleanly."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from typing import Any

import aiohttp
import asyncpg
from fixtures_drills import seed_subscribers


def _token(env: dict[str, str], role: str, name: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "broadcaster", "tokens", "create", "--role", role, "--name", name,
         "--json"],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    token: str = json.loads(proc.stdout.strip().splitlines()[-1])["token"]
    return token


async def _call(
    session: aiohttp.ClientSession, method: str, url: str, token: str, body: Any = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.request(method, url, json=body, headers=headers) as response:
        return response.status, await response.json()


async def test_serve_sends_a_drill_and_its_scheduler_reports_it(db_dsn: str) -> None:
    conn = await asyncpg.connect(db_dsn)
    try:
        await seed_subscribers(conn)
    finally:
        await conn.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["DATABASE_URL"] = db_dsn
    env["BROADCASTER_DRILL_POLL_S"] = "0.2"
    await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "broadcaster", "db", "migrate"],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
    token = await asyncio.to_thread(_token, env, "admin", "root")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broadcaster", "serve", "--host", "127.0.0.1", "--port", "0",
        "--mock-smsc", "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    stderr = asyncio.ensure_future(proc.stderr.read())
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, (await stderr).decode()[-3000:]
        base = json.loads(line)["listening"]
        async with aiohttp.ClientSession() as session:
            status, created = await _call(
                session,
                "POST",
                f"{base}/v1/drill-schedules",
                token,
                {
                    "name": "monthly",
                    "cron": "0 12 * * 1#1",
                    "timezone": "Europe/Paris",
                    "areas": ["dep:75", "dep:13"],
                },
            )
            assert status == 201, created
            sid = created["schedule"]["id"]
            status, run = await _call(
                session, "POST", f"{base}/v1/drill-schedules/{sid}/run", token, {}
            )
            assert status == 201, run
            verdict = None
            for _ in range(300):  # bounded: the worker sends, the scheduler reports
                _, runs = await _call(session, "GET", f"{base}/v1/drills", token)
                verdict = runs["runs"][0]["verdict"]
                if verdict is not None:
                    break
                await asyncio.sleep(0.1)
            assert verdict == "pass", runs
            status, report = await _call(
                session, "GET", f"{base}/v1/drills/{run['drill_id']}/report", token
            )
            assert status == 200
            assert report["total"]["delivered"] == 100
            assert report["by_smsc"][0]["name"] == "mock"
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 20)
        log = (await stderr).decode()
    assert code == 0, log[-3000:]
    assert "drill_scheduler_started" in log
    assert "drill_scheduler_stopped" in log
    assert "drill_reported" in log


DYING_SCHEDULER = """
import sys

from broadcaster.cli import main
from broadcaster.drills import scheduler


async def dies(self):
    raise RuntimeError("the drill scheduler died")


scheduler.DrillScheduler.run = dies
sys.exit(main(sys.argv[1:]))
"""


async def test_serve_exits_non_zero_when_its_drill_scheduler_dies(db_dsn: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_")}
    env["DATABASE_URL"] = db_dsn
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DYING_SCHEDULER, "serve", "--host", "127.0.0.1", "--port", "0",
        "--mock-smsc", "--json",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, err = await asyncio.wait_for(proc.communicate(), 60)  # bounded: it must not stay up
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    log = err.decode()
    assert proc.returncode == 1, log[-3000:]
    assert "drill_scheduler_died" in log
    assert "the drill scheduler stopped: the drill scheduler died" in log
