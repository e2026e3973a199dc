"""Capacity of the mock SMSC's receipt path alone: parts/s when every part asks for a receipt.

Run: .venv/bin/python -m loadtest.mock_receipts [--parts N] [--seconds S] [--binds B]

The mock runs in its own process with `--receipts --receipt-delay-ms 200` (as in the end-to-end
runs) and recording off; the client binds as transceivers (the broadcaster's default), so each
bind carries submit_sm out and both submit_sm_resp and deliver_sm receipts back. The client does
as little per-part Python work as it can: the submit_sm (registered_delivery 1) are encoded once
into a block sent over and over from a sender thread (a bind keeps at most `--window` parts
unanswered); a receiver thread walks the answers' headers, counts submit_sm_resp and receipts,
and answers each receipt's deliver_sm with a deliver_sm_resp (one write per read, under the
bind's lock shared with the sender). The run ends when every part sent has its answer and its
receipt (or at `--seconds` + 10 s). The mock's own counts (GET /stats) then prove every part
was accepted, every receipt sent was acknowledged, and nothing was malformed.

Prints one line per run and, last, one JSON object: `parts_per_s` is parts / (last receipt -
first submit), so it includes one receipt delay (0.2 s); `submit_parts_per_s` the rate of the
submissions alone; `mock_cpu` the mock's share of one core; `parts_per_mock_cpu_s` what one
core would take if the mock had it to itself (on a loaded machine the wall rate is also the
scheduler's). With `--baseline` a run without
receipts (the fast path) goes first, for the ratio. The issue wants >= 200,000 parts/s.
"""

from __future__ import annotations

import argparse
import json
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from broadcaster.smpp.constants import CommandId
from loadtest.mock_capacity import (
    BLOCK_PARTS,
    bind,
    cpu_seconds,
    encoded_block,
    mock_stats,
    stop_mock,
)

_HEADER = struct.Struct("!IIII")
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DELIVER_SM_RESP = int(CommandId.DELIVER_SM_RESP)
_ENQUIRE_LINK = int(CommandId.ENQUIRE_LINK)
_UNBIND = int(CommandId.UNBIND)


@dataclass
class Bind:
    """One transceiver connection's counters, shared by its sender and receiver threads."""

    sock: socket.socket
    quota: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    answered: int = 0
    rejected: int = 0
    receipts: int = 0
    other: int = 0
    first_send: float = 0.0
    last_answer: float = 0.0
    last_receipt: float = 0.0
    done_sending: bool = False
    error: list[BaseException] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.done_sending and self.answered >= self.sent and self.receipts >= self.sent


def start_mock(
    receipts: bool, delay_ms: int, profile: str | None = None
) -> tuple[subprocess.Popen[str], int, int]:
    """The mock in its own process (under py-spy with `profile`); returns it, its SMPP port
    and its stats port."""
    command = [sys.executable, "-m", "broadcaster", "mock-smsc", "--port", "0", "--stats-port"]
    command += ["0", "--no-record"]
    if receipts:
        command += ["--receipts", "--receipt-delay-ms", str(delay_ms)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the mock did not start (run it by hand to see why)")
    event = json.loads(line)
    if profile:  # py-spy stops and writes when the mock exits
        spy = ["py-spy", "record", "-r", "250", "-f", "raw", "-o", profile, "-p", str(proc.pid)]
        subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, int(event["port"]), int(event["stats_port"])


def sender(state: Bind, block: bytes, pdu_size: int, window: int, deadline: float) -> None:
    chunk_parts = min(BLOCK_PARTS, max(1, window // 4))
    view = memoryview(block)
    try:
        state.first_send = time.perf_counter()
        while state.sent < state.quota and time.perf_counter() < deadline:
            if state.sent - state.answered > window - chunk_parts:
                time.sleep(0.0002)
                continue
            n = min(chunk_parts, state.quota - state.sent)
            with state.lock:
                state.sock.sendall(view[: n * pdu_size])
            state.sent += n
    except OSError as exc:
        state.error.append(exc)
    finally:
        state.done_sending = True


def _walk(state: Bind, data: bytes, pos: int, out: list[bytes]) -> int:
    """Count the whole PDUs of `data[pos:]`, answering receipts into `out`; returns where the
    incomplete rest starts."""
    unpack = _HEADER.unpack_from
    pack = _HEADER.pack
    end = len(data)
    answered = receipts = rejected = 0
    while end - pos >= 16:
        length, command_id, status, sequence = unpack(data, pos)
        if pos + length > end:
            break
        if command_id == _SUBMIT_SM_RESP:
            answered += 1
            rejected += status != 0
        elif command_id == _DELIVER_SM:
            receipts += 1
            out.append(pack(17, _DELIVER_SM_RESP, 0, sequence) + b"\0")
        elif command_id == _ENQUIRE_LINK:
            out.append(pack(16, command_id | 0x80000000, 0, sequence))
        else:
            state.other += 1
        pos += length
    state.answered += answered
    state.rejected += rejected
    state.receipts += receipts
    now = time.perf_counter()
    if answered:
        state.last_answer = now
    if receipts:
        state.last_receipt = now
    return pos


def receiver(state: Bind, deadline: float) -> None:
    sock = state.sock
    rest = b""
    try:
        while time.perf_counter() < deadline + 10 and not state.finished:
            try:
                chunk = sock.recv(1 << 18)
            except TimeoutError:
                continue
            if not chunk:
                state.error.append(ConnectionError("the mock closed the connection"))
                return
            data = rest + chunk if rest else chunk
            out: list[bytes] = []
            pos = _walk(state, data, 0, out)
            rest = data[pos:]
            if out:
                with state.lock:
                    sock.sendall(b"".join(out))
    except OSError as exc:
        state.error.append(exc)


def run(
    receipts: bool, parts: int, seconds: float, binds: int, window: int, profile: str | None
) -> dict[str, Any]:
    block, pdu_size = encoded_block(registered_delivery=1)
    proc, port, stats_port = start_mock(receipts, 200, profile if receipts else None)
    states: list[Bind] = []
    try:
        states = [
            Bind(bind(port, "load", CommandId.BIND_TRANSCEIVER), parts // binds)
            for _ in range(binds)
        ]  # every bind the same system_id, as the broadcaster's pool
        if not receipts:
            for state in states:
                state.receipts = state.quota  # none expected
        cpu_before = cpu_seconds(proc.pid)
        client_before = time.process_time()
        deadline = time.perf_counter() + seconds
        threads = []
        for state in states:
            threads.append(
                threading.Thread(target=sender, args=(state, block, pdu_size, window, deadline))
            )
            threads.append(threading.Thread(target=receiver, args=(state, deadline)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        cpu = cpu_seconds(proc.pid) - cpu_before
        client_cpu = time.process_time() - client_before
        errors = [e for s in states for e in s.error]
        if errors:
            raise RuntimeError(f"client error: {errors[0]!r}")
        time.sleep(0.2)  # the last deliver_sm_resp read by the mock
        stats = mock_stats(stats_port)
    finally:
        for state in states:
            state.sock.close()
        stop_mock(proc)
    sent = sum(s.sent for s in states)
    answered = sum(s.answered for s in states)
    got = sum(s.receipts for s in states) if receipts else 0
    first = min(s.first_send for s in states)
    last_answer = max(s.last_answer for s in states)
    last = max(s.last_receipt for s in states) if receipts else last_answer
    problems = []
    if stats["parts"] != sent or answered != sent or any(s.rejected for s in states):
        problems.append(f"sent {sent}, answered {answered}, mock accepted {stats['parts']}")
    if receipts and not (got == sent == stats["receipts"]["sent"] == stats["receipts"]["acked"]):
        problems.append(f"receipts: got {got} of {sent}, mock {stats['receipts']}")
    if stats["malformed_total"] or any(s.other for s in states):
        problems.append(f"malformed {stats['malformed']}")
    if problems:
        raise RuntimeError("the run is not valid: " + "; ".join(problems))
    return {
        "receipts": receipts,
        "parts": sent,
        "seconds": round(last - first, 3),
        "parts_per_s": round(sent / (last - first)),
        "submit_parts_per_s": round(sent / (last_answer - first)),
        "mock_cpu": round(cpu / (last - first), 2),
        "client_cpu": round(client_cpu / (last - first), 2),
        "parts_per_mock_cpu_s": round(sent / cpu) if cpu else None,
        "fast_path": stats["fast_path"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--parts", type=int, default=1_000_000, help="per run, all binds")
    parser.add_argument("--seconds", type=float, default=20.0, help="submitting, at most")
    parser.add_argument("--binds", type=int, default=2, help="transceiver binds")
    parser.add_argument("--window", type=int, default=20_000, help="unanswered parts per bind")
    parser.add_argument("--baseline", action="store_true", help="first a run without receipts")
    parser.add_argument("--profile", metavar="FILE", help="py-spy (raw) of the mock, receipts on")
    args = parser.parse_args()
    results = []
    for receipts in (False, True)[0 if args.baseline else 1 :]:
        result = run(receipts, args.parts, args.seconds, args.binds, args.window, args.profile)
        results.append(result)
        print(
            f"receipts {'on ' if receipts else 'off'}: {result['parts']:>9,} parts in "
            f"{result['seconds']:6.2f} s = {result['parts_per_s']:>8,} parts/s (submissions "
            f"{result['submit_parts_per_s']:,}/s), mock CPU {result['mock_cpu']:.0%}, "
            f"client CPU {result['client_cpu']:.0%}; {result['parts_per_mock_cpu_s']:,} parts "
            "per second of mock CPU, "
            f"fast path {result['fast_path']}",
            flush=True,
        )
    summary: dict[str, Any] = {
        "parts_per_s": results[-1]["parts_per_s"],
        "submit_parts_per_s": results[-1]["submit_parts_per_s"],
        "parts": results[-1]["parts"],
        "binds": args.binds,
        "mock_cpu": results[-1]["mock_cpu"],
        "client_cpu": results[-1]["client_cpu"],
        "parts_per_mock_cpu_s": results[-1]["parts_per_mock_cpu_s"],
    }
    if len(results) > 1:
        summary["baseline_parts_per_s"] = results[0]["parts_per_s"]
        summary["ratio"] = round(results[1]["parts_per_s"] / results[0]["parts_per_s"], 3)
        summary["baseline_parts_per_mock_cpu_s"] = results[0]["parts_per_mock_cpu_s"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
