"""`broadcaster mock-smsc` as operators and load tests run it: its own process, port 0, the
listening line first, statistics over HTTP while it runs and as the last line after SIGTERM;
its flags: help with examples, bad values refused, --no-record, flags over the scenario file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from smsc_fixtures import RawEsme, raw_submit

from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId, Status
from broadcaster.text.encoding import encode_message

Run = Callable[..., Awaitable[tuple[asyncio.subprocess.Process, dict[str, Any]]]]


@pytest.fixture
async def run_mock(tmp_path: Path) -> AsyncIterator[Run]:
    """Factory: `proc, listening = await run_mock("--seed", "1")`; killed after the test if the
    test did not stop it. stderr (the logs) goes to a file, shown if a test fails."""
    procs: list[asyncio.subprocess.Process] = []

    async def run(*args: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
        log = (tmp_path / f"mock{len(procs)}.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "broadcaster",
            "mock-smsc",
            "--port",
            "0",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        log.close()
        procs.append(proc)
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        return proc, json.loads(line) if line else {}

    yield run
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, list[str]]:
    """SIGTERM; the exit code and the lines printed after the listening line."""
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout is not None
    out = await asyncio.wait_for(proc.stdout.read(), 20)
    code = await asyncio.wait_for(proc.wait(), 20)
    return code, out.decode().splitlines()


async def bind_and_submit(
    port: int, system_id: str, password: str, texts: list[str]
) -> tuple[int, list[int]]:
    """Bind as a transmitter; if bound, submit each text; (bind status, submit statuses)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    frames = codec.FrameBuffer()
    pending: list[bytes] = []

    async def read() -> bytes:
        while not pending:
            data = await asyncio.wait_for(reader.read(65536), 5)
            assert data, "the mock closed the connection"
            pending.extend(frames.feed(data))
        return pending.pop(0)

    try:
        writer.write(codec.encode_bind(CommandId.BIND_TRANSMITTER, 1, system_id, password))
        bind_status = codec.decode_header(await read()).status
        statuses = []
        if bind_status == 0:
            for sequence, text in enumerate(texts, start=2):
                (template,) = codec.submit_templates(
                    encode_message(text, 1), source_addr="ALERTE", source_ton=5, source_npi=0
                )
                writer.write(template.encode(sequence, b"33612345678"))
                statuses.append(codec.decode_submit_sm_resp(await read())[1])
        return bind_status, statuses
    finally:
        writer.close()
        await writer.wait_closed()


async def get_stats(port: int) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/stats") as resp,
    ):
        assert resp.status == 200
        stats: dict[str, Any] = await resp.json()
        return stats


async def test_listening_line_stats_endpoint_and_stats_at_exit(run_mock: Run) -> None:
    proc, listening = await run_mock("--stats-port", "0", "--seed", "1")
    assert listening["event"] == "listening"
    assert listening["port"] > 0
    assert listening["stats_port"] > 0

    bind_status, statuses = await bind_and_submit(listening["port"], "cli", "pw", ["a", "b"])
    assert (bind_status, statuses) == (0, [0, 0])
    over_http = await get_stats(listening["stats_port"])
    assert over_http["parts"] == 2

    code, lines = await stop(proc)
    assert code == 0
    final = json.loads(lines[-1])
    assert final["parts"] == 2
    assert not final["malformed"]
    (bind,) = final.get("bind_list", final["binds"])
    assert bind["system_id"] == "cli"
    assert bind["parts"] == 2


async def test_scenario_file_and_flags(run_mock: Run, tmp_path: Path) -> None:
    """Credentials and a vendor error come from the file; a flag overrides the file."""
    scenario = tmp_path / "bad-day.toml"
    scenario.write_text(
        'system_id = "alerts"\n'
        'password = "s3cret"\n'
        "seed = 4\n"
        'errors = {"0x00000401" = 1.0}\n'
        "window = 100\n",
        encoding="utf-8",
    )
    proc, listening = await run_mock("--scenario", str(scenario), "--password", "other")
    port = listening["port"]

    assert await bind_and_submit(port, "alerts", "s3cret", []) == (Status.ESME_RINVPASWD, [])
    assert await bind_and_submit(port, "nobody", "other", []) == (Status.ESME_RINVSYSID, [])
    assert await bind_and_submit(port, "alerts", "other", ["x", "y"]) == (0, [0x401, 0x401])

    code, lines = await stop(proc)
    assert code == 0
    final = json.loads(lines[-1])
    assert final["errors"] == {"0x00000401": 2}
    assert final["parts"] == 0


async def test_bad_scenario_file_is_refused(run_mock: Run, tmp_path: Path) -> None:
    scenario = tmp_path / "typo.toml"
    scenario.write_text("windw = 10\n", encoding="utf-8")
    proc, listening = await run_mock("--scenario", str(scenario))
    assert listening == {}  # no listening line
    code = await asyncio.wait_for(proc.wait(), 20)
    assert code != 0
    log = (tmp_path / "mock0.log").read_text(encoding="utf-8")
    assert "windw" in log


CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith("BROADCASTER_MOCK_")}


def test_help_shows_examples_and_environment_variables() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "broadcaster", "mock-smsc", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=CLEAN_ENV,
    )
    assert "examples:" in proc.stdout
    assert "--receipt-mix DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.05" in proc.stdout
    assert "BROADCASTER_MOCK_TPS" in proc.stdout


def test_a_bad_flag_value_is_an_input_error() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "broadcaster", "mock-smsc", "--port", "0", "--error", "0x58=lots"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=CLEAN_ENV,
    )
    assert proc.returncode == 2
    assert "0x58" in proc.stderr and "not a probability" in proc.stderr


async def test_flags_override_the_file_and_no_record_keeps_counting(tmp_path: Path) -> None:
    scenario = tmp_path / "slow.toml"
    scenario.write_text("tps = 5\n", encoding="utf-8")  # a bucket of 1 part
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "broadcaster", "mock-smsc", "--port", "0"),
        *("--scenario", str(scenario), "--tps", "1000", "--no-record"),
        *("--system-id", "p75", "--password", "s3cret-9"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=CLEAN_ENV,
    )
    try:
        assert proc.stdout is not None
        event = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
        async with await RawEsme.connect(event["port"]) as esme:
            refused = await esme.bind(CommandId.BIND_TRANSMITTER, "p75", "wrong")
            assert refused.status == Status.ESME_RINVPASWD
            assert (await esme.bind(CommandId.BIND_TRANSMITTER, "p75", "s3cret-9", 2)).status == 0
            esme.send(*(raw_submit(sequence=i) for i in range(3, 23)))
            statuses = {codec.decode_submit_sm_resp(p)[1] for p in await esme.read_pdus(20)}
            assert statuses == {0}  # tps 1000 from the flag, not 5 from the file
        proc.send_signal(signal.SIGINT)
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0
        final = json.loads(out.decode().strip().splitlines()[-1])
        assert (final["parts"], final["parts_recorded"], final["recording"]) == (20, 20, False)
        assert final["messages_recorded"] == 0 and final["binds_refused"] == 1
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
