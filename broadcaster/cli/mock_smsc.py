"""`broadcaster mock-smsc`: run the mock SMSC until interrupted, then print its statistics.

The first line on stdout is `{"event": "listening", "host": ..., "port": N}` (with
`"stats_port"` when `--stats-port` is given), useful with `--port 0`; the last line is the
statistics as one JSON object. Flags override the scenario file, which overrides the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

from broadcaster.cli.options import Commands, add_command, flag, multi, switch
from broadcaster.errors import EXIT_OK, cannot_listen
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.mocksmsc.scenario import parse_errors, parse_receipt_mix
from broadcaster.settings import Settings

EPILOG = """\
examples:
  broadcaster mock-smsc --port 2775                       # well-behaved, unlimited, fast
  broadcaster mock-smsc --port 0 --no-record --stats-port 0   # load tests: prints the ports
  broadcaster mock-smsc --tps 100 --window 10             # a contracted bind: 100 parts/s
  broadcaster mock-smsc --tps 100 --throttle-above 0.6    # ...that really takes only 60/s
  broadcaster mock-smsc --latency-ms 20 --latency-jitter-ms 5 \\
      --error 0x58=0.01 --error 0x401=0.001               # vendor status codes too
  broadcaster mock-smsc --receipts --receipt-delay-ms 500 \\
      --receipt-mix DELIVRD=0.9,UNDELIV=0.05,EXPIRED=0.05 --receipt-12-digit-dates
  broadcaster mock-smsc --disconnect-after 1000 --stall-after 500 --stall-seconds 3
  broadcaster mock-smsc --scenario bad-day.toml --seed 1 --stats-port 8775

A scenario file holds MockConfig field names, e.g.:
  window = 10
  tps = 100
  latency_ms = 5
  latency_jitter_ms = 2
  errors = {"0x00000058" = 0.01, "0x00000401" = 0.001}
  receipts = true
  receipt_mix = {DELIVRD = 0.9, UNDELIV = 0.05, EXPIRED = 0.05}

Stops on SIGINT/SIGTERM and prints its statistics (also served by GET /stats with --stats-port).
"""


def add_mock_smsc_command(commands: Commands) -> None:
    p = add_command(
        commands,
        "mock-smsc",
        "run the mock SMSC (strict SMPP 3.4 server with scenarios) until Ctrl-C",
        _cmd_mock_smsc,
        epilog=EPILOG,
    )
    e = "BROADCASTER_MOCK_"
    flag(p, "--host", env=e + "HOST", default="127.0.0.1", help="listen address")
    flag(p, "--port", env=e + "PORT", type=int, default=2775, help="SMPP port (0: any free)")
    flag(p, "--scenario", env=e + "SCENARIO", type=Path, help="TOML scenario file")
    flag(p, "--stats-port", env=e + "STATS_PORT", type=int, help="GET /stats (0: any free)")
    switch(p, "--no-record", e + "NO_RECORD", "do not keep texts (load tests)")
    flag(p, "--seed", env=e + "SEED", type=int, help="seed of the scenario RNG")
    flag(p, "--system-id", env=e + "SYSTEM_ID", help="required system_id (default: any)")
    flag(p, "--password", env=e + "PASSWORD", help="required password (default: any)")
    flag(p, "--bind-modes", env=e + "BIND_MODES", help="e.g. transceiver,transmitter")
    flag(p, "--max-binds", env=e + "MAX_BINDS", type=int, help="binds open at once")
    switch(p, "--refuse-binds", e + "REFUSE_BINDS", "refuse every bind (ESME_RBINDFAIL)")
    flag(p, "--refuse-first-binds", env=e + "REFUSE_FIRST", type=int, help="then accept")
    flag(p, "--window", env=e + "WINDOW", type=int, help="unanswered submits (ESME_RMSGQFUL)")
    flag(p, "--tps", env=e + "TPS", type=float, help="parts/s (ESME_RTHROTTLED beyond)")
    flag(p, "--tps-burst-s", env=e + "TPS_BURST_S", type=float, help="bucket depth, s")
    flag(p, "--throttle-above", env=e + "THROTTLE_ABOVE", type=float, help="fraction of tps")
    flag(p, "--latency-ms", env=e + "LATENCY_MS", type=float, help="response delay")
    flag(p, "--latency-jitter-ms", env=e + "JITTER_MS", type=float, help="± uniform")
    multi(p, "--error", env=e + "ERROR", help="STATUS=RATE, e.g. 0x58=0.01 (repeatable)")
    flag(p, "--disconnect-after", env=e + "DISCONNECT_AFTER", type=int, help="N submits")
    flag(p, "--disconnect-rate", env=e + "DISCONNECT_RATE", type=float, help="p per submit")
    flag(p, "--unbind-after", env=e + "UNBIND_AFTER", type=int, help="SMSC unbinds, N submits")
    switch(p, "--empty-message-ids", e + "EMPTY_MESSAGE_IDS", "submit_sm_resp with no id")
    flag(p, "--stall-after", env=e + "STALL_AFTER", type=int, help="N submits")
    flag(p, "--stall-seconds", env=e + "STALL_SECONDS", type=float, help="0: for ever")
    flag(p, "--drain-delay-ms", env=e + "DRAIN_DELAY_MS", type=float, help="slow reader")
    flag(p, "--malformed-reply-rate", env=e + "MALFORMED_REPLY_RATE", type=float, help="p")
    flag(p, "--corrupt-stream-after", env=e + "CORRUPT_AFTER", type=int, help="N submits")
    switch(p, "--receipts", e + "RECEIPTS", "send receipts (receiver/transceiver binds)")
    flag(p, "--receipt-delay-ms", env=e + "RECEIPT_DELAY_MS", type=float, help="delay")
    flag(p, "--receipt-jitter-ms", env=e + "RECEIPT_JITTER_MS", type=float, help="±")
    multi(p, "--receipt-mix", env=e + "RECEIPT_MIX", help="DELIVRD=0.9,UNDELIV=0.1")
    switch(p, "--receipt-12-digit-dates", e + "RECEIPT_12", "YYMMDDhhmmss dates")
    switch(p, "--no-receipt-tlv", e + "NO_RECEIPT_TLV", "id in the text only")
    flag(p, "--receipt-pdu", env=e + "RECEIPT_PDU", help="deliver_sm (default) or data_sm")
    switch(p, "--no-receipt-text", e + "NO_RECEIPT_TEXT", "receipts as TLVs only")
    switch(p, "--receipt-decimal-ids", e + "RECEIPT_DECIMAL_IDS", "text id in decimal")
    flag(p, "--receipt-drop-rate", env=e + "RECEIPT_DROP_RATE", type=float, help="p")
    flag(
        p,
        "--malformed-receipt-rate",
        env=e + "MALFORMED_RECEIPT_RATE",
        type=float,
        help="p of a receipt with no id",
    )


def _switch(given: bool, value: bool) -> bool | None:
    """A switch's value when it is given; None (the scenario's or the default) when not."""
    return value if given else None


def config_from_args(args: argparse.Namespace) -> MockConfig:
    """Defaults, then the scenario file, then the flags given."""
    overrides: dict[str, Any] = {
        "system_id": args.system_id,
        "password": args.password,
        "bind_modes": tuple(args.bind_modes.split(",")) if args.bind_modes else None,
        "max_binds": args.max_binds,
        "refuse_binds": _switch(args.refuse_binds, True),
        "refuse_first_binds": args.refuse_first_binds,
        "window": args.window,
        "tps": args.tps,
        "tps_burst_s": args.tps_burst_s,
        "throttle_above": args.throttle_above,
        "latency_ms": args.latency_ms,
        "latency_jitter_ms": args.latency_jitter_ms,
        "disconnect_after": args.disconnect_after,
        "disconnect_rate": args.disconnect_rate,
        "unbind_after": args.unbind_after,
        "empty_message_ids": _switch(args.empty_message_ids, True),
        "stall_after": args.stall_after,
        "stall_seconds": args.stall_seconds,
        "drain_delay_ms": args.drain_delay_ms,
        "malformed_reply_rate": args.malformed_reply_rate,
        "corrupt_stream_after": args.corrupt_stream_after,
        "receipts": _switch(args.receipts, True),
        "receipt_delay_ms": args.receipt_delay_ms,
        "receipt_jitter_ms": args.receipt_jitter_ms,
        "receipt_mix": parse_receipt_mix(args.receipt_mix) or None,
        "receipt_12_digit_dates": _switch(args.receipt_12_digit_dates, True),
        "receipt_tlv": _switch(args.no_receipt_tlv, False),
        "receipt_decimal_ids": _switch(args.receipt_decimal_ids, True),
        "receipt_pdu": args.receipt_pdu,
        "receipt_text": _switch(args.no_receipt_text, False),
        "receipt_drop_rate": args.receipt_drop_rate,
        "malformed_receipt_rate": args.malformed_receipt_rate,
        "record": _switch(args.no_record, False),
        "seed": args.seed,
    }
    base: dict[str, Any] = {}
    if args.scenario is not None:
        base = MockConfig.from_toml(args.scenario).__dict__.copy()
    errors = parse_errors(args.error)
    if errors:
        overrides["errors"] = {**base.get("errors", {}), **errors}
    base.update({k: v for k, v in overrides.items() if v is not None})
    return MockConfig.from_mapping(base, origin="mock-smsc")


async def _cmd_mock_smsc(args: argparse.Namespace, settings: Settings) -> int:
    mock = MockSmsc(config_from_args(args))
    try:
        port = await mock.start(args.host, args.port)
    except OSError as exc:
        raise cannot_listen("the mock SMSC", args.host, args.port, "--port", exc) from None
    listening: dict[str, Any] = {"event": "listening", "host": args.host, "port": port}
    try:
        if args.stats_port is not None:
            try:
                listening["stats_port"] = await mock.serve_stats(args.stats_port, args.host)
            except OSError as exc:
                raise cannot_listen(
                    "the mock SMSC's statistics", args.host, args.stats_port, "--stats-port", exc
                ) from None
        print(json.dumps(listening), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await mock.stop()
        print(json.dumps(mock.stats_json()), flush=True)
        sys.stdout.flush()
    return EXIT_OK
