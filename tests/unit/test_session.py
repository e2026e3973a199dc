"""The asyncio session around the connection, with a recording transport and owner: no socket.

What is checked here is the glue: one write per batch, a read's outcomes reported in one call
through `SessionOwner`, throttles slowing the pacer, futures resolved, the connection closed
when the SMSC asks, orphans handed back. The protocol itself is in test_connection.py.
"""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pytest

from broadcaster.errors import BindError
from broadcaster.settings import SmscConfig
from broadcaster.smpp import codec, session
from broadcaster.smpp.connection import ConnectionState, Event, Outcome, UnknownCommand
from broadcaster.smpp.constants import CommandId, Status
from broadcaster.smpp.pacing import Pacer
from broadcaster.smpp.receipts import Receipt, format_receipt
from broadcaster.smpp.session import SmppSession
from broadcaster.text.encoding import encode_message

TEMPLATES = tuple(
    codec.submit_templates(
        encode_message("Numeros d'urgence perturbes", reference=1),
        source_addr=source,
        source_ton=5,
        source_npi=0,
    )[0]
    for source in ("PARIS", "LYON")
)


class Part:
    __slots__ = ("destination", "submitted_at", "tag", "templates")

    def __init__(self, tag: int) -> None:
        self.templates = TEMPLATES
        self.destination = f"336{tag:08d}".encode()
        self.submitted_at = 0.0
        self.tag = tag


class Transport(asyncio.Transport):
    """Records what the session writes, and whether it closed or aborted."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.aborted = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def is_closing(self) -> bool:
        return self.closed or self.aborted

    def sent(self) -> list[tuple[int, int, int]]:
        """(command_id, status, sequence) of every PDU written so far."""
        pdus = codec.FrameBuffer().feed(b"".join(self.writes))
        return [(h.command_id, h.status, h.sequence) for h in map(codec.decode_header, pdus)]


class Owner:
    """A `SessionOwner` that records every call."""

    def __init__(self) -> None:
        self.answered_calls: list[list[tuple[int, int, str | None]]] = []
        self.throttled_parts: list[int] = []
        self.read: list[Receipt] = []
        self.events: list[Event] = []
        self.orphans: list[list[int]] = []
        self.kicks = 0

    def answered(
        self, session: SmppSession[Part], outcomes: Sequence[Outcome[Part]], now: float
    ) -> None:
        self.answered_calls.append([(p.tag, status, mid) for p, status, mid in outcomes])

    def throttled(self, session: SmppSession[Part], part: Part) -> None:
        self.throttled_parts.append(part.tag)

    def receipts(self, session: SmppSession[Part], receipts: Sequence[Receipt]) -> None:
        self.read.extend(receipts)

    def noted(self, event: Event) -> None:
        self.events.append(event)

    def lost(self, session: SmppSession[Part], orphans: list[Part]) -> None:
        self.orphans.append([p.tag for p in orphans])

    def kick(self) -> None:
        self.kicks += 1


def state(s: SmppSession[Part]) -> ConnectionState:
    return s.state


async def bound_session(
    tps: float = 0.0, window: int = 8, response_timeout_s: float = 5.0
) -> tuple[SmppSession[Part], Owner, Transport]:
    owner = Owner()
    smsc = SmscConfig(
        name="lyon",
        window=window,
        tps=tps,
        bind_mode="transceiver",
        response_timeout_s=response_timeout_s,
    )
    s: SmppSession[Part] = SmppSession(
        owner, name="lyon#1", smsc=smsc, site=1, pacer=Pacer(smsc.tps)
    )
    transport = Transport()
    s.connection_made(transport)
    assert transport.sent() == [(CommandId.BIND_TRANSCEIVER, 0, 1)]
    s.data_received(codec.encode_bind_resp(CommandId.BIND_TRANSCEIVER_RESP, 1, 0, "SMSC"))
    await asyncio.wait_for(s.bound, 1.0)
    return s, owner, transport


def test_the_session_module_does_not_import_the_pool() -> None:
    tree = ast.parse(Path(session.__file__).read_text())
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    } | {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    assert imported  # the walk found the imports
    assert not {name for name in imported if name.startswith("broadcaster.smpp.pool")}


async def test_a_batch_is_one_write_and_a_reads_answers_one_report() -> None:
    s, owner, transport = await bound_session()
    assert s.room(0.0) == 8
    parts = [Part(i) for i in range(4)]
    transport.writes.clear()
    s.send(parts, now=1.0, more_waiting=False)
    (written,) = transport.writes
    submits = [codec.decode_short_message_pdu(p) for p in codec.FrameBuffer().feed(written)]
    assert [p.source_addr for p in submits] == ["LYON"] * 4  # its SMSC's template (site 1)
    assert (s.inflight, s.sent) == (4, 4)
    s.data_received(
        codec.encode_submit_sm_resp(2, 0, "A1")
        + codec.encode_submit_sm_resp(3, Status.ESME_RTHROTTLED, "")
        + codec.encode_submit_sm_resp(4, 0x401, "")
        + codec.encode_submit_sm_resp(5, 0, "A4")
    )
    assert owner.answered_calls == [[(0, 0, "A1"), (2, 0x401, None), (3, 0, "A4")]]
    assert owner.throttled_parts == [1]
    assert s.pacer.throttles == 1
    assert owner.kicks == 1
    assert s.inflight == 0


async def test_requests_are_answered_anomalies_noted_and_receipts_handed_over() -> None:
    s, owner, transport = await bound_session()
    transport.writes.clear()
    when = datetime(2024, 5, 1, 12, 0)
    receipt = format_receipt(
        message_id="0A", stat="DELIVRD", submit_date=when, done_date=when
    ).encode()
    s.data_received(
        codec.encode_enquire_link(40)
        + codec.encode_pdu(0x99, 0, 41)
        + codec.encode_deliver_sm(
            42, source_addr="1", destination_addr="2", esm_class=4, short_message=receipt
        )
    )
    assert len(transport.writes) == 1  # every answer of one read in one write
    assert transport.sent() == [
        (CommandId.ENQUIRE_LINK_RESP, 0, 40),
        (CommandId.GENERIC_NACK, Status.ESME_RINVCMDID, 41),
        (CommandId.DELIVER_SM_RESP, 0, 42),
    ]
    assert owner.events == [UnknownCommand(0x99, 41)]
    assert [r.message_id for r in owner.read] == ["0A"]


async def test_the_smsc_unbinding_us_waits_for_the_answers_in_flight_then_closes() -> None:
    s, owner, transport = await bound_session()
    s.send([Part(1), Part(2)], now=1.0, more_waiting=False)
    transport.writes.clear()
    s.data_received(codec.encode_unbind(9))
    assert transport.sent() == [(CommandId.UNBIND_RESP, 0, 9)]
    assert not transport.closed  # two parts still in flight: their answers may come
    assert state(s) is ConnectionState.UNBINDING
    assert s.room(2.0) == 0  # nothing more is sent on this bind
    s.data_received(codec.encode_submit_sm_resp(2, 0, "0A"))
    assert not transport.closed
    s.data_received(codec.encode_submit_sm_resp(3, 0, "0B"))
    assert transport.closed  # all answered: a clean close
    s.connection_lost(None)
    assert owner.orphans == [[]]  # nothing to send again: no duplicate
    assert state(s) is ConnectionState.CLOSED
    assert s.close_reason == "unbound by the SMSC"
    assert s.closed.done()


async def test_the_smsc_unbinding_us_closes_after_the_response_timeout_orphans_go_back() -> None:
    s, owner, transport = await bound_session(response_timeout_s=0.05)
    s.send([Part(1), Part(2)], now=1.0, more_waiting=False)
    s.data_received(codec.encode_unbind(9))
    assert not transport.closed
    for _ in range(100):
        if transport.closed:
            break
        await asyncio.sleep(0.01)
    assert transport.closed
    s.connection_lost(None)
    assert owner.orphans == [[1, 2]]
    assert state(s) is ConnectionState.CLOSED
    assert s.close_reason == "unbound by the SMSC"
    assert s.closed.done()


async def test_a_refused_bind_fails_the_bound_future_and_aborts() -> None:
    owner = Owner()
    smsc = SmscConfig(name="paris", password="wrong", bind_mode="transmitter")
    s: SmppSession[Part] = SmppSession(owner, name="paris#1", smsc=smsc, site=0, pacer=Pacer(0))
    transport = Transport()
    s.connection_made(transport)
    s.data_received(
        codec.encode_bind_resp(CommandId.BIND_TRANSMITTER_RESP, 1, Status.ESME_RINVPASWD, "SMSC")
    )
    with pytest.raises(BindError, match="ESME_RINVPASWD: invalid password"):
        await s.bound
    assert s.refused
    assert transport.aborted
    s.connection_lost(None)
    assert owner.orphans == [[]]


async def test_a_corrupt_stream_aborts_after_reporting_what_came_before() -> None:
    s, owner, transport = await bound_session()
    s.send([Part(1), Part(2)], now=1.0, more_waiting=False)
    s.data_received(codec.encode_submit_sm_resp(2, 0, "ok") + b"\x00\x00\x00\x05garbage")
    assert owner.answered_calls == [[(1, 0, "ok")]]
    assert transport.aborted
    assert s.close_reason is not None and s.close_reason.startswith("corrupt stream")
    assert len(owner.events) == 1


async def test_a_paced_bind_out_of_tokens_wakes_its_owner_when_they_are_back() -> None:
    s, owner, _transport = await bound_session(tps=200.0)
    now = time.monotonic()
    room = s.room(now)
    assert room >= 1
    s.send([Part(i) for i in range(room)], now=now, more_waiting=True)
    assert s.pacer.exhausted  # tokens spent, parts waiting: send armed the timer
    kicks = owner.kicks
    await asyncio.sleep(0.05)  # the pacing timer fires within a few ms at 200/s
    assert owner.kicks > kicks
