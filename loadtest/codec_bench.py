"""Micro-benchmark of the SMPP codec's hot paths against aiosmpplib's SubmitSm.pdu(), and of
the sans-I/O connection's per-part cost (a window's worth written, then answered in one read).

Run: .venv/bin/python loadtest/codec_bench.py [--iterations N]
Prints µs/op per operation; the last line is one JSON object for scripts.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from aiosmpplib import PhoneNumber, SubmitSm
from aiosmpplib.state import NPI, TON

from broadcaster.smpp.codec import (
    FrameBuffer,
    SubmitTemplate,
    decode_short_message_pdu,
    decode_submit_sm_resp,
    destination_bytes,
    encode_bind_resp,
    encode_submit_sm_resp,
    submit_templates,
)
from broadcaster.smpp.connection import SmppConnection
from broadcaster.smpp.constants import CommandId
from broadcaster.text.encoding import encode_message

TEXT = (
    "ALERTE: les numeros d'urgence 15, 17, 18 et 112 sont perturbes dans votre departement. "
    "En cas d'urgence, appelez le 01 23 45 67 89."
)
DESTINATION = "33612345678"
WINDOW = 256


class _Part:
    __slots__ = ("destination", "submitted_at", "templates")

    def __init__(self, templates: tuple[SubmitTemplate, ...], destination: bytes) -> None:
        self.templates = templates
        self.destination = destination
        self.submitted_at = 0.0


def _connection_round_trip(
    template: SubmitTemplate, destination: bytes, iterations: int
) -> Callable[[int], None]:
    """`n` parts through a bound connection, a window at a time: one submit of a window's
    parts, then one read answering them all (what the session does per write and per read,
    without the socket). The answers are built beforehand."""
    parts = [_Part((template,), destination) for _ in range(WINDOW)]
    answers = [
        b"".join(encode_submit_sm_resp(s, 0, f"{s:010X}") for s in range(first, first + WINDOW))
        for first in range(2, 2 + iterations, WINDOW)  # sequence 1 is the bind
    ]
    bind_resp = encode_bind_resp(CommandId.BIND_TRANSCEIVER_RESP, 1, 0, "SC")

    def run(n: int) -> None:
        connection: SmppConnection[_Part] = SmppConnection(
            system_id="bench", password="", window=WINDOW
        )
        connection.bind()
        connection.receive_data(bind_resp, 0.0)
        for window in answers[: n // WINDOW]:
            connection.submit(parts, 1.0)
            received = connection.receive_data(window, 1.001)
            assert received.accepted == WINDOW

    return run


def _per_op(run: Callable[[int], None], iterations: int, repeat: int = 3) -> float:
    """Best of `repeat` runs, in µs per operation."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run(iterations)
        best = min(best, time.perf_counter() - start)
    return best / iterations * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=200_000)
    args = parser.parse_args()
    iterations: int = args.iterations
    reference_iterations = max(1, iterations // 10)

    message = encode_message(TEXT, reference=1)
    template = submit_templates(message, source_addr="ALERTE", source_ton=5, source_npi=0)[0]
    destination = destination_bytes(DESTINATION)
    submit_pdu = template.encode(1, destination)
    resp_pdu = encode_submit_sm_resp(1, 0, "0A1B2C3D4E5F")
    stream = resp_pdu * 1000

    def encode(n: int) -> None:
        encode_part = template.encode
        for sequence in range(n):
            encode_part(sequence, destination)

    def decode_resp(n: int) -> None:
        for _ in range(n):
            decode_submit_sm_resp(resp_pdu)

    def decode_submit(n: int) -> None:
        for _ in range(n):
            decode_short_message_pdu(submit_pdu)

    def frame(n: int) -> None:
        frames = FrameBuffer()
        for _ in range(n // 1000):
            frames.feed(stream)

    def reference(n: int) -> None:
        source = PhoneNumber("ALERTE", TON.ALPHANUMERIC, NPI.UNKNOWN)
        target = PhoneNumber(DESTINATION, TON.INTERNATIONAL, NPI.ISDN)
        for sequence in range(n):
            SubmitSm(
                short_message=TEXT,
                source=source,
                destination=target,
                encoding="gsm0338",
                sequence_num=sequence,
            ).pdu()

    round_trip = _connection_round_trip(template, destination, iterations)

    results = {
        "submit_template_encode_us": _per_op(encode, iterations),
        "connection_part_round_trip_us": _per_op(round_trip, iterations),
        "decode_submit_sm_resp_us": _per_op(decode_resp, iterations),
        "decode_short_message_pdu_us": _per_op(decode_submit, iterations),
        "frame_buffer_per_pdu_us": _per_op(frame, iterations),
        "aiosmpplib_submit_sm_pdu_us": _per_op(reference, reference_iterations),
    }
    results["aiosmpplib_over_template_ratio"] = (
        results["aiosmpplib_submit_sm_pdu_us"] / results["submit_template_encode_us"]
    )
    for name, value in results.items():
        unit = "x" if name.endswith("ratio") else "µs/op"
        print(f"{name:32s} {value:9.3f} {unit}")
    print(json.dumps({name: round(value, 4) for name, value in results.items()}))


if __name__ == "__main__":
    main()
