"""Our SMPP pool against aiosmpplib's ESME, same mock SMSC, same run.

Run: .venv/bin/python loadtest/pool_vs_aiosmpplib.py [--parts 200000] [--aiosmpplib-parts 20000]

The mock SMSC runs in its own process (`broadcaster mock-smsc --no-record`, no TPS cap), so the
CPU measured here (`time.process_time()` of this process) is the client's alone. Each client
pushes one single-part GSM 03.38 message per destination and waits for every submit_sm_resp:

- ours: `SmppPool.submit` per part with back-pressure (`wait_for_room`), as the engine does;
- aiosmpplib: `ESME` fed through its broker, outcomes counted in a hook. Its default
  `SimpleCorrelator` rescans its whole store on every call and, after 15 s, reports messages
  that were accepted as failed; a dict correlator is given instead, which only makes it faster.
  It is bounded (`--aiosmpplib-parts`, default 20,000) and rates are compared, not totals.

Prints both rates and the ratio; the last line is one JSON object with `ours_parts_per_s`,
`aiosmpplib_parts_per_s`, `ratio`, `cpu_us_per_part` (ours). With `--repeat N` both clients run
N times, alternately, and the figures are the medians (each round is in `rounds`). Targets:
ratio >= 10, cpu_us_per_part <= 10.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiosmpplib import (
    ESME,
    AbstractCorrelator,
    AbstractHook,
    PhoneNumber,
    SmppMessage,
    SubmitSm,
    SubmitSmResp,
)
from aiosmpplib.broker import SimpleBroker
from aiosmpplib.state import NPI, TON

from broadcaster.settings import SmscConfig
from broadcaster.smpp.codec import destination_bytes, submit_templates
from broadcaster.smpp.pool import SmppPool
from broadcaster.text.encoding import encode_message
from loadtest.common import mock_smsc_process

TEXT = (
    "ALERTE: les numeros d'urgence 15, 17, 18 et 112 sont perturbes dans votre departement. "
    "En cas d'urgence, appelez le 01 23 45 67 89."
)
BACKLOG = 20_000
"""Parts queued ahead of the binds (the engine's MAX_BACKLOG)."""
BATCH = 5_000
"""Parts submitted per loop pass, as the engine submits a COPY chunk's rows."""


@dataclass
class Result:
    parts: int
    accepted: int
    seconds: float
    cpu_seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def parts_per_s(self) -> float:
        return self.accepted / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_us_per_part(self) -> float:
        return self.cpu_seconds / self.parts * 1e6 if self.parts else 0.0


def _destinations(count: int) -> list[str]:
    return [f"336{i:08d}" for i in range(count)]


async def run_pool(port: int, parts: int, binds: int, window: int) -> Result:
    templates = submit_templates(
        encode_message(TEXT, reference=1), source_addr="ALERTE", source_ton=5, source_npi=0
    )[:1]  # one part; one SMSC, so one template per part
    destinations = [destination_bytes(d) for d in _destinations(parts)]
    accepted = failed = 0

    def on_outcome(
        tag: object,
        status: int,
        message_id: str | None,
        smsc: str,
        sent: float,
        answered: float,
        duplicates: int,
    ) -> None:
        nonlocal accepted, failed
        if status == 0:
            accepted += 1
        else:
            failed += 1

    smsc = SmscConfig(name="mock", port=port, binds=binds, window=window, tps=0.0)
    pool = SmppPool([smsc], on_outcome)
    await pool.start()
    try:
        started = time.monotonic()
        cpu = time.process_time()
        submit = pool.submit
        for offset in range(0, parts, BATCH):
            for destination in destinations[offset : offset + BATCH]:
                submit(templates, destination, None)
            if pool.backlog >= BACKLOG:
                await pool.wait_for_room(BACKLOG // 2)
            else:
                await asyncio.sleep(0)
        await pool.drain()
        seconds = time.monotonic() - started
        cpu_seconds = time.process_time() - cpu
    finally:
        await pool.close()
    stats = {k: v for k, v in vars(pool.stats).items() if v}
    return Result(parts, accepted, seconds, cpu_seconds, {"failed": failed, "stats": stats})


class _Correlator(AbstractCorrelator):  # type: ignore[misc]
    """Sequence number -> request, O(1), no expiry (SimpleCorrelator is O(n) per call)."""

    def __init__(self) -> None:
        self._requests: dict[int, SmppMessage] = {}

    def get_cumulated_status(self, ref_num: int) -> int:
        return 0

    async def expired(self, smpp_message: SmppMessage) -> None:
        return None

    async def put(self, smpp_message: SmppMessage) -> None:
        self._requests[smpp_message.sequence_num] = smpp_message

    async def put_delivery(self, smsc_message_id: str, submit_sm: SubmitSm) -> None:
        return None

    async def put_delivery_segmented(self, deliver_sm: Any) -> Any:
        return deliver_sm

    async def get(self, response: SmppMessage) -> SmppMessage | None:
        return self._requests.pop(response.sequence_num, None)

    async def get_segmented(self, smpp_seq_num: int, remove: bool = False) -> tuple[None, int]:
        return None, 0

    async def get_delivery(self, receipt: Any) -> None:
        return None


class _Counter(AbstractHook):  # type: ignore[misc]
    """Counts submit_sm_resp by status; sets `done` when `expected` responses arrived."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.accepted = 0
        self.failed = 0
        self.errors = 0
        self.done = asyncio.Event()

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        return None

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if isinstance(smpp_message, SubmitSmResp):
            if smpp_message.command_status == 0:
                self.accepted += 1
            else:
                self.failed += 1
            if self.accepted + self.failed + self.errors >= self.expected:
                self.done.set()

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        self.errors += 1


async def run_aiosmpplib(port: int, parts: int, timeout: float) -> Result:
    hook = _Counter(parts)
    broker = SimpleBroker(maxsize=BACKLOG)
    esme = ESME(
        smsc_host="127.0.0.1",
        smsc_port=port,
        system_id="aiosmpplib",
        password="secret",  # noqa: S106 (the mock accepts any)
        broker=broker,
        correlator=_Correlator(),
        hook=hook,
        log_level=logging.WARNING,
        enquire_link_interval=300.0,
    )
    source = PhoneNumber("ALERTE", TON.ALPHANUMERIC, NPI.UNKNOWN)
    targets = [PhoneNumber(d, TON.INTERNATIONAL, NPI.ISDN) for d in _destinations(parts)]
    runner = asyncio.create_task(esme.start())
    try:
        started = time.monotonic()
        cpu = time.process_time()
        for i, target in enumerate(targets):
            await broker.enqueue(
                SubmitSm(
                    short_message=TEXT,
                    source=source,
                    destination=target,
                    encoding="gsm0338",
                    log_id=str(i),
                )
            )
        try:
            await asyncio.wait_for(hook.done.wait(), timeout)
        except TimeoutError:
            print(f"aiosmpplib: only {hook.accepted + hook.failed} of {parts} answered in time")
        seconds = time.monotonic() - started
        cpu_seconds = time.process_time() - cpu
    finally:
        await asyncio.wait_for(esme.stop(), 10)
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    return Result(
        parts,
        hook.accepted,
        seconds,
        cpu_seconds,
        {"failed": hook.failed, "send_errors": hook.errors},
    )


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", type=int, default=200_000)
    parser.add_argument("--aiosmpplib-parts", type=int, default=20_000)
    parser.add_argument("--binds", type=int, default=2)
    parser.add_argument("--window", type=int, default=256)
    parser.add_argument("--aiosmpplib-timeout", type=float, default=120.0)
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds of both clients; medians are reported"
    )
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("aiosmpplib").setLevel(logging.WARNING)
    rounds: list[tuple[Result, Result]] = []
    with mock_smsc_process("--no-record") as port:
        for _ in range(max(1, args.repeat)):
            ours = asyncio.run(run_pool(port, args.parts, args.binds, args.window))
            print(
                f"broadcaster pool: {ours.accepted}/{ours.parts} parts accepted in "
                f"{ours.seconds:.2f} s = {ours.parts_per_s:,.0f} parts/s, "
                f"{ours.cpu_us_per_part:.2f} µs CPU per part ({args.binds} binds, "
                f"window {args.window}) {ours.extra}",
                flush=True,
            )
            theirs = asyncio.run(
                run_aiosmpplib(port, args.aiosmpplib_parts, args.aiosmpplib_timeout)
            )
            print(
                f"aiosmpplib ESME:  {theirs.accepted}/{theirs.parts} parts accepted in "
                f"{theirs.seconds:.2f} s = {theirs.parts_per_s:,.0f} parts/s, "
                f"{theirs.cpu_us_per_part:.2f} µs CPU per part {theirs.extra}",
                flush=True,
            )
            rounds.append((ours, theirs))
    ours_rate = _median([o.parts_per_s for o, _ in rounds])
    theirs_rate = _median([t.parts_per_s for _, t in rounds])
    ours_cpu = _median([o.cpu_us_per_part for o, _ in rounds])
    theirs_cpu = _median([t.cpu_us_per_part for _, t in rounds])
    ratio = ours_rate / theirs_rate if theirs_rate else float("inf")
    print(f"ratio: {ratio:.1f}x (target >= 10x); CPU {ours_cpu:.2f} µs/part (<= 10)")
    print(
        json.dumps(
            {
                "ours_parts_per_s": round(ours_rate),
                "aiosmpplib_parts_per_s": round(theirs_rate),
                "ratio": round(ratio, 1),
                "cpu_us_per_part": round(ours_cpu, 2),
                "ours_parts": args.parts,
                "aiosmpplib_parts": args.aiosmpplib_parts,
                "aiosmpplib_cpu_us_per_part": round(theirs_cpu, 2),
                "cpu_ratio": round(theirs_cpu / ours_cpu, 1) if ours_cpu else None,
                "rounds": [
                    {
                        "ours_parts_per_s": round(o.parts_per_s),
                        "aiosmpplib_parts_per_s": round(t.parts_per_s),
                        "ours_cpu_us_per_part": round(o.cpu_us_per_part, 2),
                        "aiosmpplib_cpu_us_per_part": round(t.cpu_us_per_part, 2),
                        "ours_accepted": o.accepted,
                        "aiosmpplib_accepted": t.accepted,
                    }
                    for o, t in rounds
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
