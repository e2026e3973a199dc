"""Capacity of the mock SMSC's fast path: how many parts/s it answers on one core.

Run: .venv/bin/python loadtest/mock_capacity.py [--parts N] [--seconds S] [--binds B]

The mock runs in its own process (`python -m broadcaster mock-smsc --port 0 --no-record
--stats-port 0`, then once more with recording on), so it has a core of its own: it is one
asyncio thread. The client must not be the bottleneck, so it does no per-part Python work: the
submit_sm PDUs are encoded once (`submit_templates` + `SubmitTemplate.encode`, all of one
length) into a block that each bind sends over and over with `sendall` from a thread, while
another thread counts the responses by octets (every submit_sm_resp of an accepted part has the
length of the first one: the mock's message ids have a fixed width). A bind keeps at most
`--window` parts unanswered. Each run is bounded by `--parts` and `--seconds`; the mock's own
counts (GET /stats) then prove every part was accepted (ESME_ROK) and none was malformed, and
its CPU time (from /proc) shows it was the saturated side.

Prints one line per run and, last, one JSON object: `parts_per_s` is the sustained rate without
recording (the fast path), `parts_per_s_recording` with it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId
from broadcaster.text.encoding import encode_message

TEXT = (
    "ALERTE: les numeros d'urgence 15, 17, 18 et 112 sont perturbes dans votre departement. "
    "En cas d'urgence, appelez le 01 23 45 67 89."
)
BLOCK_PARTS = 2000
"""submit_sm PDUs in the pre-encoded block a bind sends repeatedly."""
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Bind:
    """One connection's counters, shared by its sender and receiver threads."""

    sock: socket.socket
    quota: int
    sent: int = 0
    received_bytes: int = 0
    resp_size: int = 0
    """Octets of one submit_sm_resp (read from the first one)."""
    first_send: float = 0.0
    last_receive: float = 0.0
    done_sending: bool = False
    error: list[BaseException] = field(default_factory=list)

    @property
    def received(self) -> int:
        return self.received_bytes // self.resp_size if self.resp_size else 0


def start_mock(record: bool, profile: str | None) -> tuple[subprocess.Popen[str], int, int]:
    """The mock in its own process; returns it, its SMPP port and its stats port."""
    command = ["-m", "broadcaster", "mock-smsc", "--port", "0", "--stats-port", "0"]
    if not record:
        command.append("--no-record")
    if profile:
        command[:0] = ["-m", "pyinstrument", "-r", "text", "-o", profile]
    proc = subprocess.Popen(
        [sys.executable, *command], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        raise RuntimeError("the mock did not start (run it by hand to see why)")
    event = json.loads(line)
    return proc, int(event["port"]), int(event["stats_port"])


def stop_mock(proc: subprocess.Popen[str]) -> dict[str, Any]:
    """SIGTERM, then the statistics the mock prints as its last line."""
    proc.terminate()
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    lines = out.strip().splitlines()
    stats: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    return stats


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def mock_stats(stats_port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{stats_port}/stats", timeout=10) as resp:
        stats: dict[str, Any] = json.loads(resp.read())
    return stats


def accepted_parts(stats: dict[str, Any]) -> int:
    if "parts" in stats:
        return int(stats["parts"])
    return int(stats["statuses"].get("ESME_ROK", 0))


def malformed_count(stats: dict[str, Any]) -> int:
    value = stats.get("malformed", 0)
    return value if isinstance(value, int) else sum(value.values())


def bind(
    port: int, system_id: str, command: CommandId = CommandId.BIND_TRANSMITTER
) -> socket.socket:
    """A bound socket (raw bytes: the load is ours, not a client library's)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(codec.encode_bind(command, 1, system_id, "secret"))
    frames = codec.FrameBuffer()
    pdus: list[bytes] = []
    while not pdus:
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("the mock closed the connection during bind")
        pdus = frames.feed(data)
    resp = codec.decode_bind_resp(pdus[0])
    if resp.status != 0:
        raise RuntimeError(f"bind refused with status 0x{resp.status:08X}")
    sock.settimeout(2.0)  # sender and receiver share it: short enough to notice the end
    return sock


def encoded_block(registered_delivery: int = 0) -> tuple[bytes, int]:
    """BLOCK_PARTS single-part submit_sm of equal length (asking for a receipt with
    `registered_delivery` 1), and that length."""
    message = encode_message(TEXT, reference=1)
    (template,) = codec.submit_templates(
        message,
        source_addr="ALERTE",
        source_ton=5,
        source_npi=0,
        registered_delivery=registered_delivery,
    )
    pdus = [
        template.encode(sequence, codec.destination_bytes(f"336{sequence:08d}"))
        for sequence in range(1, BLOCK_PARTS + 1)
    ]
    assert len({len(p) for p in pdus}) == 1
    return b"".join(pdus), len(pdus[0])


def sender(state: Bind, block: bytes, pdu_size: int, window: int, deadline: float) -> None:
    chunk_parts = min(BLOCK_PARTS, max(1, window // 4))
    view = memoryview(block)
    try:
        state.first_send = time.perf_counter()
        while state.sent < state.quota and time.perf_counter() < deadline:
            if state.sent - state.received > window - chunk_parts:
                time.sleep(0.0002)
                continue
            n = min(chunk_parts, state.quota - state.sent)
            state.sock.sendall(view[: n * pdu_size])
            state.sent += n
    except OSError as exc:
        state.error.append(exc)
    finally:
        state.done_sending = True


def receiver(state: Bind, deadline: float) -> None:
    buffer = bytearray(1 << 18)
    sock = state.sock
    try:
        while time.perf_counter() < deadline + 10:
            try:
                n = sock.recv_into(buffer)
            except TimeoutError:  # the last answers may have come before `sent` was updated
                if state.done_sending and state.received >= state.sent:
                    return
                continue
            if not n:
                state.error.append(ConnectionError("the mock closed the connection"))
                return
            if not state.resp_size and n >= 4:
                state.resp_size = int.from_bytes(buffer[:4], "big")
            state.received_bytes += n
            state.last_receive = time.perf_counter()
            if state.done_sending and state.received >= state.sent:
                return
    except OSError as exc:
        state.error.append(exc)


def run(
    record: bool, parts: int, seconds: float, binds: int, window: int, profile: str | None
) -> dict[str, Any]:
    block, pdu_size = encoded_block()
    proc, port, stats_port = start_mock(record, profile)
    states: list[Bind] = []
    try:
        states = [Bind(bind(port, f"load{i}"), parts // binds) for i in range(binds)]
        cpu_before = cpu_seconds(proc.pid)
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
        errors = [e for s in states for e in s.error]
        if errors:
            raise RuntimeError(f"client error: {errors[0]!r}")
        stats = mock_stats(stats_port)
    finally:
        for state in states:
            state.sock.close()
        final = stop_mock(proc)
    sent = sum(s.sent for s in states)
    answered = sum(s.received for s in states)
    span = max(s.last_receive for s in states) - min(s.first_send for s in states)
    accepted = accepted_parts(stats)
    if accepted != sent or answered != sent or malformed_count(stats):
        raise RuntimeError(
            f"sent {sent}, answered {answered}, mock accepted {accepted}, "
            f"malformed {malformed_count(stats)}: the run is not valid"
        )
    per_bind = final.get("bind_list", final.get("binds", []))
    return {
        "record": record,
        "parts": sent,
        "seconds": round(span, 3),
        "parts_per_s": round(sent / span),
        "mock_cpu": round(cpu / span, 2),
        "mock_bind_parts_per_s": [b.get("parts_per_s") for b in per_bind],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--parts", type=int, default=1_000_000, help="per run, all binds")
    parser.add_argument("--seconds", type=float, default=15.0, help="per run, at most")
    parser.add_argument("--binds", type=int, default=2, help="connections to the mock")
    parser.add_argument("--window", type=int, default=20_000, help="unanswered parts per bind")
    parser.add_argument("--no-recording-run", action="store_true", help="fast path only")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run the mock under pyinstrument (pip install pyinstrument): FILE.fast, FILE.record",
    )
    args = parser.parse_args()
    results = []
    for record in (False, True)[: 1 if args.no_recording_run else 2]:
        profile = f"{args.profile}.{'record' if record else 'fast'}" if args.profile else None
        result = run(record, args.parts, args.seconds, args.binds, args.window, profile)
        results.append(result)
        label = "recording on " if record else "recording off"
        print(
            f"{label}: {result['parts']:>9,} parts in {result['seconds']:6.2f} s = "
            f"{result['parts_per_s']:>8,} parts/s, mock CPU {result['mock_cpu']:.0%} "
            f"(per bind at the mock: {result['mock_bind_parts_per_s']})",
            flush=True,
        )
    summary: dict[str, Any] = {
        "parts_per_s": results[0]["parts_per_s"],
        "parts": results[0]["parts"],
        "binds": args.binds,
        "mock_cpu": results[0]["mock_cpu"],
    }
    if len(results) > 1:
        summary["parts_per_s_recording"] = results[1]["parts_per_s"]
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
