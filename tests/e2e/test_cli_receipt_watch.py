"""What the CLI says about receipts still awaited, and `--json` when no bind comes up.

A `send` through a transmitter-only account (no bind can receive) is accepted, not delivered:
its report and `status` say how many parts still await a receipt and that nobody is bound to
receive them. With no SMSC listening, `send --json` still prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from typing import Any

import asyncpg
import pytest
from fixtures_cli import Cli

from broadcaster.cli.broadcasts import _report_text
from broadcaster.cli.control import _report_human, _status_text
from broadcaster.importer import seed_synthetic
from broadcaster.store import workers
from loadtest.common import mock_smsc_process


@pytest.fixture
def seeded(db_dsn: str) -> str:
    async def seed() -> None:
        conn = await asyncpg.connect(db_dsn)
        await seed_synthetic(conn, 3000, seed=5)
        await conn.close()

    asyncio.run(seed())
    return db_dsn


def _send(cli: Cli, code: int = 0) -> dict[str, Any]:
    target = ("--area", "dep:13", "--template", "outage")
    expected = cli("preview", *target)["recipients"]
    out: dict[str, Any] = cli(
        "send", *target, "--yes", "--expect-recipients", str(expected), code=code
    )
    return out


def test_a_send_without_a_receiving_bind_says_delivery_is_still_unknown(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_smsc_process("--receipts", "--bind-modes", "transmitter,receiver") as port:
        monkeypatch.setenv(
            "BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{port}?bind_mode=transmitter"
        )
        sent = _send(cli)
    assert sent["state"] == "completed" and sent["accepted"] == sent["recipients"] > 0
    assert sent["receipts_awaited"] == sent["parts"]
    assert sent["receivers_bound"] == 0
    assert _report_text(sent).endswith(
        f"delivery still unknown for {sent['parts']:,} parts: no process is bound to receive "
        "their receipts (run a worker)"
    )
    status = cli("status", str(sent["broadcast_id"]))
    assert status["receipts_awaited"] == sent["parts"]
    assert (
        f"  {sent['parts']:,} parts still await a receipt; no process is bound to receive them"
        in _status_text(status, {}, "Europe/Paris")
    )
    report = cli("report", str(sent["broadcast_id"]))
    assert _report_human(report, report["after_action"]).endswith(
        f"  {sent['parts']:,} parts still await a receipt; no process is bound to receive them: "
        "their delivery stays unknown until a worker with a transceiver or receiver bind runs"
    )


def test_a_send_with_a_receiver_bind_gets_its_receipts(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_smsc_process("--receipts", "--bind-modes", "transmitter,receiver") as port:
        monkeypatch.setenv(
            "BROADCASTER_SMSC_URL",
            f"smpp://t:pw@127.0.0.1:{port}?bind_mode=transmitter&receivers=1",
        )
        sent = _send(cli)
    assert sent["state"] == "completed" and sent["accepted"] == sent["recipients"] > 0
    status = cli("status", str(sent["broadcast_id"]))
    # The CLI send waits for no receipt; those that came while it was bound are counted.
    assert (
        status["receipts_awaited"] + status["receipts"].get("DELIVRD", {}).get("count", 0)
        == sent["parts"]
    )


def test_send_json_with_no_bind_up_still_prints_its_json_object(
    cli: Cli, seeded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there
    monkeypatch.setenv("BROADCASTER_SMSC_URL", f"smpp://t:pw@127.0.0.1:{port}")
    err = _send(cli, code=1)
    out = cli.answer  # stdout's JSON object (the fixture returns stderr for a refusal)
    assert isinstance(out, dict), (out, err)
    assert out["kind"] == "BindError"
    assert "no bind to any SMSC came up" in out["error"]
    assert out["exit_code"] == 1


def test_a_send_says_it_is_bound_to_receive_while_it_runs_and_is_no_worker(
    cli: Cli, seeded: str
) -> None:
    """While a one-shot `send` runs, `status` counts its binds as up to receive the receipts
    (it said "no process is bound to receive them" of the receipts it was receiving), and a
    broadcast waiting for a worker does not count it as one; once it ends, it is gone."""
    with mock_smsc_process("--receipts", "--tps", "300") as port:
        env = {
            **os.environ,
            "DATABASE_URL": seeded,
            "BROADCASTER_SMSC_URL": f"smpp://t:pw@127.0.0.1:{port}?binds=2",
            "BROADCASTER_LOG_LEVEL": "warning",
        }
        target = ["--area", "dep:13", "--template", "outage"]
        expected = cli("preview", *target)["recipients"]
        send = subprocess.Popen(
            [
                *(sys.executable, "-m", "broadcaster", "--json", "send", *target, "--yes"),
                *("--expect-recipients", str(expected)),
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

        async def watch() -> list[tuple[int, int, bool]]:
            """(binds receiving, workers alive, a row still there) while the send runs."""
            conn = await asyncpg.connect(seeded)
            seen: list[tuple[int, int, bool]] = []
            try:
                while send.poll() is None:
                    seen.append(
                        (
                            await workers.receiving(conn),
                            await workers.alive(conn),
                            bool(await conn.fetchval("SELECT count(*) FROM workers")),
                        )
                    )
                    await asyncio.sleep(0.05)
                seen.append((await workers.receiving(conn), await workers.alive(conn), False))
                left = await conn.fetchval("SELECT count(*) FROM workers")
            finally:
                await conn.close()
            assert left == 0  # gone when it ended
            return seen

        seen = asyncio.run(watch())
        out, err = send.communicate(timeout=60)
    assert send.returncode == 0, err
    assert json.loads(out.decode().strip().splitlines()[-1])["state"] == "completed"
    running = [s for s in seen if s[2]]
    assert running, "the send's heartbeat never showed"
    assert all(receiving == 2 and alive == 0 for receiving, alive, _ in running), running
