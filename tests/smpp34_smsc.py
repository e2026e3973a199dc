"""An SMSC we did not write, for the integration tests: the `smpp34` package's server (its SMPP
core is Rust, from another vendor), with the few lines of SMSC logic it leaves to its user.

Run as a process (so that a test can kill it): `python tests/smpp34_smsc.py --port P --log F`.
It accepts every bind, answers each submit_sm with a hex message id counted from `--first-id`
(a restart with the same value reuses ids, as a real SMSC that lost its counter does), and sends
a delivery receipt by deliver_sm on a bind that can receive, its text `id:` in `--ids` form
(hex, or decimal as many SMSCs write it); with `--unbind-after N` it unbinds the ESME
that sent part N. Each part received is one JSON line in `--log`
(destination, a digest of the part's octets, message id), written before it is answered:
what the SMSC saw, kill or not.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import smpp34


def receipt_text(message_id: str, ids: str) -> bytes:
    now = datetime.now(UTC).strftime("%y%m%d%H%M")
    shown = str(int(message_id, 16)) if ids == "decimal" else message_id
    return (
        f"id:{shown} sub:001 dlvrd:001 submit date:{now} done date:{now} stat:DELIVRD err:000 text:"
    ).encode("ascii")


async def serve(args: argparse.Namespace, log: TextIO) -> None:
    server = smpp34.Server(host="127.0.0.1", port=args.port, system_id="SMPP34")
    await server.start()
    print("ready", flush=True)
    sessions: dict[str, smpp34.Esme] = {}
    next_id = args.first_id
    pending: set[asyncio.Future[Any]] = set()
    while True:
        event = await server.next()
        if isinstance(event, smpp34.Esme):
            sessions[event.session_id] = event
        elif isinstance(event, smpp34.Unbound):
            sessions.pop(event.session_id, None)
        elif isinstance(event, smpp34.SubmitSmEvent):
            message_id = f"{next_id:08X}"
            next_id += 1
            part = hashlib.sha256(event.short_message).hexdigest()[:16]
            seen = {"to": event.destination_addr, "part": part, "id": message_id}
            log.write(json.dumps(seen) + "\n")
            log.flush()
            event.accept(message_id=message_id)
            if args.unbind_after and next_id - args.first_id == args.unbind_after:
                esme = sessions.get(event.session_id)
                if esme is not None:  # the SMSC ends the session (once per process)
                    unbinding = asyncio.ensure_future(esme.unbind())
                    pending.add(unbinding)
                    unbinding.add_done_callback(pending.discard)
            receiver = next((s for s in sessions.values() if s.can_receive), None)
            if receiver is not None and event.registered_delivery & 1:
                task = asyncio.ensure_future(
                    receiver.deliver_sm(
                        destination_addr=event.source_addr,
                        source_addr=event.destination_addr,
                        esm_class=0x04,
                        short_message=receipt_text(message_id, args.ids),
                    )
                )
                pending.add(task)
                task.add_done_callback(pending.discard)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--ids", choices=("hex", "decimal"), default="hex")
    parser.add_argument("--first-id", type=lambda v: int(v, 0), default=0x1000)
    parser.add_argument("--unbind-after", type=int, default=0, help="SMSC unbinds, N parts")
    args = parser.parse_args()
    try:
        with open(args.log, "a", encoding="utf-8") as log:
            asyncio.run(serve(args, log))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
