"""`broadcaster mock-smsc` flags: help with examples, bad values refused, --no-record, flags
over the scenario file (the run itself: test_mock_smsc_cli.py)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from smsc_fixtures import RawEsme, raw_submit

from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId, Status

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
