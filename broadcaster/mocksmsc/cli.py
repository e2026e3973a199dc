"""`broadcaster mock-smsc`: run the mock SMSC until interrupted, then print its statistics.

The first line on stdout is `{"event": "listening", "port": N}` (useful with `--port 0`); the last
is the statistics as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
from pathlib import Path
from typing import Any

from aiohttp import web

from broadcaster.cli.options import Commands, add_command, flag, multi, switch
from broadcaster.errors import EXIT_OK
from broadcaster.mocksmsc.scenario import MockConfig, parse_rates
from broadcaster.mocksmsc.server import MockSmsc
from broadcaster.settings import Settings

EPILOG = """\
examples:
  broadcaster mock-smsc --port 2775                       # a well-behaved, unlimited SMSC
  broadcaster mock-smsc --tps 100 --window 10             # a contracted bind: 100 parts/s
  broadcaster mock-smsc --latency-ms 20 --error 0x58=0.01 --error 0x401=0.001
  broadcaster mock-smsc --receipts --receipt-delay-ms 500 \\
      --receipt-mix DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.05 --receipt-12-digit-dates
  broadcaster mock-smsc --scenario bad-day.toml --stats-port 8775
"""


def add_mock_smsc_command(commands: Commands) -> None:
    p = add_command(
        commands,
        "mock-smsc",
        "run the mock SMSC (strict SMPP 3.4 server with scenarios) until Ctrl-C",
        _cmd_mock_smsc,
        epilog=EPILOG,
    )
    flag(p, "--host", env="BROADCASTER_MOCK_HOST", default="127.0.0.1", help="listen address")
    flag(p, "--port", env="BROADCASTER_MOCK_PORT", type=int, default=2775, help="0: any free")
    flag(p, "--scenario", env="BROADCASTER_MOCK_SCENARIO", type=Path, help="TOML scenario file")
    flag(p, "--system-id", env="BROADCASTER_MOCK_SYSTEM_ID", help="required system_id")
    flag(p, "--password", env="BROADCASTER_MOCK_PASSWORD", help="required password")
    flag(p, "--max-binds", env="BROADCASTER_MOCK_MAX_BINDS", type=int, help="binds at once")
    switch(p, "--refuse-binds", "BROADCASTER_MOCK_REFUSE_BINDS", "refuse every bind")
    flag(p, "--window", env="BROADCASTER_MOCK_WINDOW", type=int, help="per-bind window")
    flag(p, "--tps", env="BROADCASTER_MOCK_TPS", type=float, help="per-bind parts/s")
    flag(p, "--latency-ms", env="BROADCASTER_MOCK_LATENCY_MS", type=float, help="reply delay")
    flag(p, "--latency-jitter-ms", env="BROADCASTER_MOCK_JITTER_MS", type=float, help="+0..J ms")
    multi(p, "--error", env="BROADCASTER_MOCK_ERROR", help="STATUS=RATE, e.g. 0x58=0.01")
    flag(p, "--disconnect-after", env="BROADCASTER_MOCK_DISCONNECT_AFTER", type=int, help="N")
    flag(p, "--disconnect-rate", env="BROADCASTER_MOCK_DISCONNECT_RATE", type=float, help="p")
    flag(p, "--stall-after", env="BROADCASTER_MOCK_STALL_AFTER", type=int, help="N submits")
    flag(p, "--stall-seconds", env="BROADCASTER_MOCK_STALL_SECONDS", type=float, help="0: ever")
    flag(p, "--drain-delay-ms", env="BROADCASTER_MOCK_DRAIN_DELAY_MS", type=float, help="slow")
    flag(
        p,
        "--malformed-reply-rate",
        env="BROADCASTER_MOCK_MALFORMED_REPLY_RATE",
        type=float,
        help="p of an unreadable submit_sm_resp",
    )
    switch(p, "--receipts", "BROADCASTER_MOCK_RECEIPTS", "send delivery receipts (TRX binds)")
    flag(p, "--receipt-delay-ms", env="BROADCASTER_MOCK_RECEIPT_DELAY_MS", type=float, help="ms")
    multi(p, "--receipt-mix", env="BROADCASTER_MOCK_RECEIPT_MIX", help="DELIVRD=0.9,UNDELIV=0.1")
    switch(p, "--receipt-12-digit-dates", "BROADCASTER_MOCK_RECEIPT_12", "YYMMDDhhmmss dates")
    flag(p, "--seed", env="BROADCASTER_MOCK_SEED", type=int, help="random seed")
    flag(p, "--stats-port", env="BROADCASTER_MOCK_STATS_PORT", type=int, help="GET /stats")
    switch(p, "--no-record", "BROADCASTER_MOCK_NO_RECORD", "do not record texts (load tests)")


def config_from_args(args: argparse.Namespace) -> MockConfig:
    overrides: dict[str, Any] = {
        "system_id": args.system_id,
        "password": args.password,
        "max_binds": args.max_binds,
        "refuse_binds": args.refuse_binds or None,
        "window": args.window,
        "tps": args.tps,
        "latency_ms": args.latency_ms,
        "latency_jitter_ms": args.latency_jitter_ms,
        "errors": parse_rates(args.error, key=int) or None,
        "disconnect_after": args.disconnect_after,
        "disconnect_rate": args.disconnect_rate,
        "stall_after": args.stall_after,
        "stall_seconds": args.stall_seconds,
        "drain_delay_ms": args.drain_delay_ms,
        "malformed_reply_rate": args.malformed_reply_rate,
        "receipts": args.receipts or None,
        "receipt_delay_ms": args.receipt_delay_ms,
        "receipt_mix": parse_rates(args.receipt_mix) or None,
        "receipt_12_digit_dates": args.receipt_12_digit_dates or None,
        "seed": args.seed,
        "record": False if args.no_record else None,
    }
    if args.scenario is not None:
        return MockConfig.from_toml(args.scenario, **overrides)
    return MockConfig(**{k: v for k, v in overrides.items() if v is not None})


async def _cmd_mock_smsc(args: argparse.Namespace, settings: Settings) -> int:
    mock = MockSmsc(config_from_args(args))
    port = await mock.start(args.host, args.port)
    runner: web.AppRunner | None = None
    if args.stats_port is not None:
        app = web.Application()

        async def stats(_request: web.Request) -> web.Response:
            return web.json_response(mock.stats_json())

        app.router.add_get("/stats", stats)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, args.host, args.stats_port).start()
    print(json.dumps({"event": "listening", "host": args.host, "port": port}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await mock.stop()
    if runner is not None:
        await runner.cleanup()
    print(json.dumps(mock.stats_json()), flush=True)
    return EXIT_OK
