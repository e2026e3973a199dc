"""The SMPP session and pool against a scripted SMSC over TCP: protocol behaviour, exactly.

The mock SMSC (`broadcaster.mocksmsc`) exercises the pool under load and scenarios
(tests/integration/test_pool_mock.py); here a tiny SMSC whose every answer the test scripts
checks what goes over the wire: bind PDUs, generic_nack, receipts answered, unbind, keep-alives,
timeouts, what happens to each part when a connection dies.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

import pytest

from broadcaster.errors import BindError
from broadcaster.settings import SmscConfig
from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId, Status
from broadcaster.smpp.pool import NO_RESPONSE, NOT_SENT, BindState, Lane, SmppPool
from broadcaster.smpp.receipts import Receipt, format_receipt, receipt_tlvs
from broadcaster.text.encoding import encode_message

Answer = tuple[int, str] | None
"""(status, message_id) to answer a submit_sm with, or None to leave it unanswered."""


def accept_all(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
    return 0, f"{pdu.sequence:08X}"


class Peer(asyncio.Protocol):
    """One ESME connection, as the scripted SMSC sees it."""

    def __init__(self, smsc: ScriptedSmsc) -> None:
        self.smsc = smsc
        self.frames = codec.FrameBuffer()
        self.transport: asyncio.Transport | None = None
        self.bound = False
        self.submits: list[codec.ShortMessagePdu] = []
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.smsc.peers.append(self)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self.smsc.notify()

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        for pdu in self.frames.feed(data):
            self.smsc.on_pdu(self, pdu)
        self.smsc.notify()


@dataclass
class ScriptedSmsc:
    """An SMSC whose answers the test scripts; records everything it receives."""

    answer: Callable[[codec.ShortMessagePdu, Peer], Answer] = accept_all
    password: str | None = None
    peers: list[Peer] = field(default_factory=list)
    binds: list[codec.BindPdu] = field(default_factory=list)
    submits: list[codec.ShortMessagePdu] = field(default_factory=list)
    others: list[codec.Header] = field(default_factory=list)
    """Every other PDU received (generic_nack, deliver_sm_resp, enquire_link, unbind...)."""
    answer_enquire_link: bool = True
    server: asyncio.Server | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: Peer(self), "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        for peer in self.peers:
            if peer.transport is not None:
                peer.transport.abort()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def notify(self) -> None:
        self.changed.set()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait for something the SMSC sees (no fixed sleep): re-checked on every PDU."""
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def others_of(self, command: int) -> list[codec.Header]:
        return [h for h in self.others if h.command_id == command]

    def on_pdu(self, peer: Peer, pdu: bytes) -> None:
        header = codec.decode_header(pdu)
        if header.command_id in (CommandId.BIND_TRANSMITTER, CommandId.BIND_TRANSCEIVER):
            bind = codec.decode_bind(pdu)
            self.binds.append(bind)
            ok = self.password is None or bind.password == self.password
            status = 0 if ok else Status.ESME_RINVPASWD
            peer.bound = ok
            peer.write(
                codec.encode_bind_resp(
                    header.command_id | 0x80000000, header.sequence, status, "sc"
                )
            )
        elif header.command_id == CommandId.SUBMIT_SM:
            message = codec.decode_short_message_pdu(pdu)
            self.submits.append(message)
            peer.submits.append(message)
            answer = self.answer(message, peer)
            if answer is not None:
                status, message_id = answer
                peer.write(codec.encode_submit_sm_resp(header.sequence, status, message_id))
        elif header.command_id == CommandId.ENQUIRE_LINK:
            self.others.append(header)
            if self.answer_enquire_link:
                peer.write(codec.encode_enquire_link_resp(header.sequence))
        elif header.command_id == CommandId.UNBIND:
            self.others.append(header)
            peer.write(codec.encode_unbind_resp(header.sequence))
        else:
            self.others.append(header)


@dataclass
class Outcomes:
    """What the pool reported, by tag."""

    by_tag: dict[object, list[tuple[int, str | None, str]]] = field(default_factory=dict)
    receipts: list[tuple[Receipt, str]] = field(default_factory=list)
    duplicates: dict[object, int] = field(default_factory=dict)
    """Tag -> copies beyond one the SMSC may have received (only those above 0)."""

    def __call__(
        self,
        tag: object,
        status: int,
        message_id: str | None,
        smsc: str,
        submitted_at: float,
        answered_at: float,
        possible_duplicates: int,
    ) -> None:
        assert submitted_at <= answered_at
        self.by_tag.setdefault(tag, []).append((status, message_id, smsc))
        if possible_duplicates:
            self.duplicates[tag] = possible_duplicates

    def on_receipts(self, receipts: Sequence[Receipt], smsc: str) -> None:
        self.receipts.extend((receipt, smsc) for receipt in receipts)

    def statuses(self) -> dict[object, int]:
        assert all(len(v) == 1 for v in self.by_tag.values()), "a part had two outcomes"
        return {tag: v[0][0] for tag, v in self.by_tag.items()}


TEMPLATE = codec.submit_templates(
    encode_message("Numeros d'urgence perturbes: appelez le 01 23 45 67 89", reference=1),
    source_addr="ALERTE",
    source_ton=5,
    source_npi=0,
)[0]


GOOD_SECRET = "right"
BAD_SECRET = "wrong"


def destination(i: int) -> bytes:
    return f"336{i:08d}".encode()


def config(port: int, **overrides: object) -> SmscConfig:
    values: dict[str, object] = {
        "name": "sc",
        "port": port,
        "binds": 1,
        "window": 16,
        "response_timeout_s": 2.0,
    }
    values.update(overrides)
    return SmscConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
async def smsc() -> AsyncIterator[ScriptedSmsc]:
    server = ScriptedSmsc()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_pool() -> AsyncIterator[Callable[..., SmppPool]]:
    """Factory of pools (seeded backoff jitter), all closed after the test."""
    pools: list[SmppPool] = []

    def make(*smscs: SmscConfig, outcomes: Outcomes, **kwargs: object) -> SmppPool:
        pool = SmppPool(
            smscs,
            outcomes,
            outcomes.on_receipts,
            rng=random.Random(7),
            **kwargs,  # type: ignore[arg-type]
        )
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


def port_of(server: ScriptedSmsc) -> int:
    assert server.server is not None
    port: int = server.server.sockets[0].getsockname()[1]
    return port


async def send(pool: SmppPool, count: int, start: int = 0) -> None:
    templates = (TEMPLATE,) * len(pool.smscs)  # the same sender on every SMSC
    for i in range(start, start + count):
        pool.submit(templates, destination(i), i)


@pytest.mark.parametrize("mode", ["transmitter", "transceiver"])
async def test_binds_with_long_credentials_and_keeps_ids_as_strings(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool], mode: str
) -> None:
    system_id = "broadcaster-prefecture-75-primary"  # SMPP 3.4 says 15: operators issue more
    password = "x" * 24
    smsc.password = password
    smsc.answer = lambda pdu, peer: (0, f"000{pdu.sequence:X}")
    outcomes = Outcomes()
    pool = make_pool(
        config(port_of(smsc), system_id=system_id, password=password, bind_mode=mode),
        outcomes=outcomes,
    )
    await pool.start()
    await send(pool, 20)
    await pool.drain()
    bind = smsc.binds[0]
    expected = CommandId.BIND_TRANSMITTER if mode == "transmitter" else CommandId.BIND_TRANSCEIVER
    assert (bind.command_id, bind.system_id, bind.password) == (expected, system_id, password)
    assert outcomes.statuses() == dict.fromkeys(range(20), 0)
    ids = [v[0][1] for v in outcomes.by_tag.values()]
    assert all(i is not None and i.startswith("000") for i in ids)  # leading zeros kept
    assert pool.stats.accepted == 20
    assert pool.stats.submitted == pool.stats.sent == 20


async def test_bad_credentials_raise_a_clear_bind_error(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    smsc.password = GOOD_SECRET
    pool = make_pool(config(port_of(smsc), password=BAD_SECRET, binds=2), outcomes=Outcomes())
    with pytest.raises(BindError) as caught:
        await pool.start()
    message = str(caught.value)
    assert "ESME_RINVPASWD" in message
    assert "check the password" in message
    assert "sc#1" in message
    assert len(smsc.binds) == 2  # one attempt per bind, then it gave up: no hammering


async def test_refused_site_backs_off_while_the_other_sends(
    make_pool: Callable[..., SmppPool],
) -> None:
    good, bad = ScriptedSmsc(), ScriptedSmsc(password=GOOD_SECRET)
    await good.start()
    await bad.start()
    try:
        outcomes = Outcomes()
        pool = make_pool(
            config(port_of(good), name="good"),
            config(port_of(bad), name="bad", password=BAD_SECRET),
            outcomes=outcomes,
        )
        await pool.start()
        await send(pool, 50)
        await pool.drain()
        assert {v[0][2] for v in outcomes.by_tag.values()} == {"good"}
        health = {h.name: h for h in pool.health()}
        assert health["good"].state == "up"
        assert health["bad"].state == "down"
        refused = health["bad"].binds[0]
        assert refused.state == BindState.REFUSED.value
        assert refused.retry_in is not None
        assert refused.retry_in >= 4.0  # a long backoff
        assert refused.last_error is not None
        assert "invalid password" in refused.last_error
        assert len(bad.binds) == 1
    finally:
        await good.stop()
        await bad.stop()


async def test_unreachable_smsc_raises_bind_error(make_pool: Callable[..., SmppPool]) -> None:
    server = ScriptedSmsc()
    port = await server.start()
    await server.stop()  # nothing listens there any more
    pool = make_pool(config(port), outcomes=Outcomes())
    with pytest.raises(BindError, match="cannot connect"):
        await pool.start()


async def test_unknown_pdu_gets_generic_nack_and_the_bind_stays_up(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc)), outcomes=outcomes)
    await pool.start()
    peer = smsc.peers[0]
    peer.write(codec.encode_pdu(0x00000099, 0, 4242))  # unknown command
    peer.write(codec.encode_pdu(0x00000021, 0, 4243, b"\0" * 12))  # submit_multi: not ours
    await smsc.wait_until(lambda: len(smsc.others_of(CommandId.GENERIC_NACK)) == 2)
    nacks = smsc.others_of(CommandId.GENERIC_NACK)
    assert [(n.sequence, n.status) for n in nacks] == [
        (4242, Status.ESME_RINVCMDID),
        (4243, Status.ESME_RINVCMDID),
    ]
    await send(pool, 10)
    await pool.drain()
    assert outcomes.statuses() == dict.fromkeys(range(10), 0)
    assert pool.stats.unknown_commands == 2
    assert pool.stats.reconnects == 0
    assert len(smsc.peers) == 1


async def test_vendor_and_error_statuses_fail_the_part_not_the_bind(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        n = int(pdu.destination_addr[3:])
        if n % 3 == 1:
            return 0x401, ""  # vendor code: unknown to SMPP 3.4
        if n % 3 == 2:
            return Status.ESME_RINVDSTADR, ""
        return 0, f"id{n}"

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc)), outcomes=outcomes)
    await pool.start()
    await send(pool, 30)
    await pool.drain()
    statuses = outcomes.statuses()
    assert statuses == {i: (0, 0x401, Status.ESME_RINVDSTADR)[i % 3] for i in range(30)}
    assert pool.stats.failed_by_status == {0x401: 10, Status.ESME_RINVDSTADR: 10}
    assert pool.stats.accepted == 10
    assert pool.stats.reconnects == 0
    assert len(smsc.submits) == 30  # final failures are not retried


async def test_throttled_parts_are_retried_until_accepted(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    seen: dict[str, int] = {}

    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        tries = seen[pdu.destination_addr] = seen.get(pdu.destination_addr, 0) + 1
        if tries <= 3:
            status = Status.ESME_RTHROTTLED if tries % 2 else Status.ESME_RMSGQFUL
            return status, ""
        return 0, pdu.destination_addr

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc), tps=2000.0), outcomes=outcomes)
    await pool.start()
    await send(pool, 20)
    await pool.drain()
    assert outcomes.statuses() == dict.fromkeys(range(20), 0)
    assert pool.stats.throttled == 60
    assert pool.stats.failed == 0
    bind = pool.binds[0]
    assert bind.pacer.cuts >= 1  # it slowed down
    assert bind.pacer.rate < 2000.0


async def test_a_reconnected_bind_keeps_the_rate_it_learnt(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """Throttled, then disconnected: the new connection starts at the slowed-down rate, not at
    the contract (the pacer belongs to the bind, not to the connection)."""
    rates_at_reconnect: list[float] = []
    pool: SmppPool | None = None

    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        assert pool is not None
        if peer is smsc.peers[0]:
            if len(peer.submits) == 40:
                assert peer.transport is not None
                peer.transport.close()
                return None
            return (Status.ESME_RTHROTTLED, "") if len(peer.submits) % 2 else (0, "ok")
        if len(peer.submits) == 1:
            rates_at_reconnect.append(pool.binds[0].pacer.rate)
        return 0, "ok"

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc), tps=500.0), outcomes=outcomes)
    pacer = pool.binds[0].pacer
    await pool.start()
    await send(pool, 60)
    await pool.drain()
    assert outcomes.statuses() == dict.fromkeys(range(60), 0)
    assert pool.stats.reconnects == 1
    assert pool.binds[0].pacer is pacer
    assert rates_at_reconnect
    assert rates_at_reconnect[0] < 0.9 * pacer.ceiling


async def test_generic_nack_naming_a_part_is_that_parts_outcome(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        if pdu.destination_addr.endswith("7"):
            peer.write(codec.encode_generic_nack(pdu.sequence, Status.ESME_RINVCMDLEN))
            return None
        return 0, "ok"

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc)), outcomes=outcomes)
    await pool.start()
    await send(pool, 10)
    await pool.drain()
    assert outcomes.statuses() == {i: Status.ESME_RINVCMDLEN if i == 7 else 0 for i in range(10)}


async def test_receipts_are_answered_and_parsed_tolerantly(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc)), outcomes=outcomes)
    await pool.start()
    peer = smsc.peers[0]
    when = datetime(2021, 6, 2, 12, 30, 45)

    def deliver(sequence: int, text: str, tlvs: bytes = b"") -> bytes:
        return codec.encode_deliver_sm(
            sequence,
            source_addr="33612345678",
            destination_addr="ALERTE",
            esm_class=0x04,
            short_message=text.encode("ascii"),
            tlvs=tlvs,
        )

    twelve = format_receipt(
        message_id="000A1F", stat="DELIVRD", submit_date=when, done_date=when, seconds=True
    )
    peer.write(deliver(1, twelve))
    # The TLV id is preferred over the text's (here a decimal rendering of it).
    peer.write(deliver(2, "id:2591 stat:UNDELIV err:001", receipt_tlvs("000A1F", "UNDELIV")))
    peer.write(deliver(3, "id:77"))  # most fields missing
    peer.write(deliver(4, "no receipt here"))  # unreadable: answered, counted, bind kept
    malformed = bytearray(deliver(5, "id:88 stat:DELIVRD"))
    malformed[codec.HEADER_LENGTH + 28] = 200  # sm_length past the end of the PDU
    peer.write(bytes(malformed))
    peer.write(
        codec.encode_deliver_sm(
            6, source_addr="1", destination_addr="2", esm_class=0, short_message=b"STOP"
        )
    )  # an MO message, not a receipt
    await smsc.wait_until(lambda: len(smsc.others_of(CommandId.DELIVER_SM_RESP)) == 6)
    answers = {h.sequence: h.status for h in smsc.others_of(CommandId.DELIVER_SM_RESP)}
    assert answers[1] == answers[2] == answers[3] == answers[4] == answers[6] == 0
    assert answers[5] != 0  # the malformed one gets an error status
    receipts = [r for r, _smsc in outcomes.receipts]
    assert [(r.message_id, r.stat) for r in receipts] == [
        ("000A1F", "DELIVRD"),
        ("000A1F", "UNDELIV"),
        ("77", "UNKNOWN"),
    ]
    assert receipts[0].done_date == when
    assert receipts[1].text_message_id == "2591"
    assert {s for _r, s in outcomes.receipts} == {"sc"}
    assert pool.stats.receipts == 3
    assert pool.stats.unreadable_receipts == 1
    assert pool.stats.malformed == 1
    assert pool.stats.mo_messages == 1
    await send(pool, 5)
    await pool.drain()
    assert pool.stats.reconnects == 0


async def test_connection_lost_requeues_what_was_in_flight(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        if peer is smsc.peers[0]:
            if len(peer.submits) == 8:
                assert peer.transport is not None
                peer.transport.close()  # the first connection dies with 8 parts unanswered
            return None
        return 0, "ok"

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc), window=8), outcomes=outcomes)
    await pool.start()
    await send(pool, 20)
    await pool.drain()
    assert outcomes.statuses() == dict.fromkeys(range(20), 0)
    assert pool.stats.requeued_inflight == 8  # possible duplicates, counted
    # ...and reported with each part's outcome: the SMSC may hold two copies of each.
    assert outcomes.duplicates == dict.fromkeys(range(8), 1)
    assert pool.stats.possible_duplicates == 8
    assert pool.stats.reconnects == 1
    assert len(smsc.peers) == 2
    assert len(smsc.submits) == 28
    # The re-sent parts went first, in their order.
    assert [p.destination_addr for p in smsc.peers[1].submits[:8]] == [
        destination(i).decode() for i in range(8)
    ]


async def test_parts_never_answered_fail_after_max_attempts(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """One destination is never answered while the others are: its part times out, is retried
    on the same bind, and after max_attempts is recorded NO_RESPONSE; the bind stays up."""

    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        return None if pdu.destination_addr == destination(3).decode() else (0, "ok")

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(
        config(port_of(smsc), response_timeout_s=0.3),
        outcomes=outcomes,
        max_attempts=2,
        housekeeping_interval=0.05,
    )
    await pool.start()
    await send(pool, 10)
    # Keep the bind answering something while part 3 waits (a silent bind would be dropped).
    for batch in range(6):
        await asyncio.sleep(0.1)  # paces the feed; the assertions wait on events
        await send(pool, 2, start=100 + 2 * batch)
    await pool.drain()
    statuses = outcomes.statuses()
    assert statuses[3] == NO_RESPONSE
    assert all(s == 0 for tag, s in statuses.items() if tag != 3)
    assert pool.stats.timeouts == 2
    assert pool.stats.requeued_inflight == 1
    assert pool.stats.reconnects == 0
    assert pool.stats.failed_by_status == {NO_RESPONSE: 1}
    assert outcomes.duplicates == {3: 1}  # written twice, never answered: maybe both arrived


async def test_stalled_bind_is_dropped_and_its_parts_come_back(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """The first connection stops answering altogether: after the response timeout its parts
    are re-queued, the bind reconnects, and everything ends accepted."""

    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        return None if peer is smsc.peers[0] else (0, "ok")

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(
        config(port_of(smsc), response_timeout_s=0.4, window=10),
        outcomes=outcomes,
        housekeeping_interval=0.05,
    )
    await pool.start()
    await send(pool, 25)
    await pool.drain()
    assert outcomes.statuses() == dict.fromkeys(range(25), 0)
    assert len(smsc.peers[0].submits) == 10  # its window, then nothing more
    assert pool.stats.stalls == 1
    assert pool.stats.timeouts == 10
    assert pool.stats.requeued_inflight == 10
    assert outcomes.duplicates == dict.fromkeys(range(10), 1)


async def test_smsc_unbind_is_answered_and_the_bind_comes_back(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc)), outcomes=outcomes)
    await pool.start()
    smsc.peers[0].write(codec.encode_unbind(77))
    await smsc.wait_until(lambda: len(smsc.peers) == 2 and smsc.peers[1].bound)
    unbind_resp = smsc.others_of(CommandId.UNBIND_RESP)
    assert [(h.sequence, h.status) for h in unbind_resp] == [(77, 0)]
    await send(pool, 10)
    await pool.drain()
    assert outcomes.statuses() == dict.fromkeys(range(10), 0)
    assert pool.stats.reconnects == 1


async def test_corrupt_stream_drops_the_connection_and_reconnects(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        if peer is smsc.peers[0] and len(peer.submits) == 4:
            peer.write(b"\x00\x00\x00\x05garbage")  # a command_length of 5: unrecoverable
            return None
        return (0, "ok") if peer is not smsc.peers[0] else None

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc), window=4), outcomes=outcomes)
    await pool.start()
    await send(pool, 12)
    await pool.drain()
    assert outcomes.statuses() == dict.fromkeys(range(12), 0)
    assert pool.stats.malformed == 1
    assert pool.stats.requeued_inflight == 4
    assert outcomes.duplicates == dict.fromkeys(range(4), 1)


async def test_idle_bind_sends_enquire_link_and_drops_a_dead_link(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    pool = make_pool(
        config(port_of(smsc), enquire_link_s=0.1, response_timeout_s=0.3),
        outcomes=Outcomes(),
        housekeeping_interval=0.05,
    )
    await pool.start()
    await smsc.wait_until(lambda: len(smsc.others_of(CommandId.ENQUIRE_LINK)) >= 2)
    assert len(smsc.peers) == 1  # answered: the bind stays
    smsc.answer_enquire_link = False
    await smsc.wait_until(lambda: len(smsc.peers) == 2)  # unanswered: dropped, reconnected
    assert pool.stats.stalls == 1


async def test_close_unbinds_politely(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc), binds=2), outcomes=outcomes)
    await pool.start()
    await send(pool, 10)
    await pool.drain()
    await pool.close()
    assert len(smsc.others_of(CommandId.UNBIND)) == 2
    await asyncio.wait_for(asyncio.gather(*(p.closed for p in smsc.peers)), 2.0)
    assert {b.state for b in pool.health()[0].binds} == {"closed"}


async def test_close_keeps_unanswered_parts_for_the_caller(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """Closing with parts in flight that never get an answer: they are not recorded (their
    outcome is unknown) but handed back, so `cancel()` returns every unrecorded tag."""
    smsc.answer = lambda pdu, peer: None
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc), window=5), outcomes=outcomes)
    await pool.start()
    await send(pool, 8)
    await smsc.wait_until(lambda: len(smsc.submits) == 5)
    await pool.close(timeout=1.0)
    assert outcomes.by_tag == {}
    assert sorted(pool.cancel()) == list(range(8))  # type: ignore[type-var]
    assert pool.outstanding == 0


async def test_weights_split_traffic_between_sites_with_room(
    make_pool: Callable[..., SmppPool],
) -> None:
    heavy, light = ScriptedSmsc(), ScriptedSmsc()
    await heavy.start()
    await light.start()
    try:
        outcomes = Outcomes()
        pool = make_pool(
            config(port_of(heavy), name="heavy", weight=3, window=64),
            config(port_of(light), name="light", weight=1, window=64),
            outcomes=outcomes,
        )
        await pool.start()
        for batch in range(50):  # small batches: both sites always have room
            await send(pool, 8, start=8 * batch)
            await pool.drain()
        sites = [v[0][2] for v in outcomes.by_tag.values()]
        assert sites.count("heavy") == 300
        assert sites.count("light") == 100
    finally:
        await heavy.stop()
        await light.stop()


LONG_TEMPLATES = codec.submit_templates(
    encode_message("Numeros d'urgence perturbes: appelez le 01 23 45 67 89. " * 4, reference=2),
    source_addr="ALERTE",
    source_ton=5,
    source_npi=0,
)


def part_number(pdu: codec.ShortMessagePdu) -> int:
    """The part's sequence in its concatenated message (its UDH), 0 for a single part."""
    return pdu.short_message[5] if pdu.esm_class & 0x40 else 0


async def test_pinned_parts_wait_for_their_site_without_holding_up_the_rest(
    make_pool: Callable[..., SmppPool],
) -> None:
    """Paris throttles the second part of every long message, then dies. Those parts, and
    whatever of the long messages it still held, wait for Paris (Lyon never gets a part of a
    message Paris carried: its sender would not match), while every single-part message,
    queued behind them, goes through; `cancel()` then hands back exactly the waiting parts."""
    paris, lyon = ScriptedSmsc(), ScriptedSmsc()
    await paris.start()
    await lyon.start()
    paris.answer = lambda pdu, peer: (
        (Status.ESME_RTHROTTLED, "") if part_number(pdu) == 2 else (0, f"P{pdu.sequence}")
    )
    try:
        outcomes = Outcomes()
        pool = make_pool(
            config(port_of(paris), name="paris", response_timeout_s=30.0),
            config(port_of(lyon), name="lyon"),
            outcomes=outcomes,
        )
        await pool.start()
        long_messages, singles = 40, 300
        for i in range(long_messages):
            for n, template in enumerate(LONG_TEMPLATES, 1):
                pool.submit((template, template), destination(i), (i, n), n < 2)
        await send(pool, singles, start=1000)
        await paris.wait_until(lambda: any(part_number(p) == 2 for p in paris.submits))
        await paris.stop()  # connections dropped: what Paris held comes back, and waits
        single_tags = set(range(1000, 1000 + singles))
        async with asyncio.timeout(5):
            while not single_tags <= set(outcomes.by_tag):
                await asyncio.sleep(0.01)
        assert all(outcomes.statuses()[tag] == 0 for tag in single_tags)
        to_lyon = {p.destination_addr for p in lyon.submits}
        carried_by_paris = {p.destination_addr for p in paris.submits if part_number(p)}
        assert carried_by_paris
        assert not carried_by_paris & to_lyon
        waiting = cast(list[tuple[int, int]], pool.cancel())
        parts = {(i, n) for i in range(long_messages) for n in (1, 2)}
        assert set(waiting) == parts - set(outcomes.by_tag)
        # Paris's throttled parts among them, and those it held unread when it died.
        assert {destination(i).decode() for i, n in waiting if n == 2} >= {
            p.destination_addr for p in paris.submits if part_number(p) == 2
        }
        assert not {destination(i).decode() for i, _n in waiting} & to_lyon
        assert pool.outstanding == 0
        assert pool.stats.split_messages == 0
    finally:
        await paris.stop()
        await lyon.stop()


# -- lanes: after a halt or past the deadline, nothing of a lane is written again -------------


class Held:
    """An SMSC answer that answers nothing and keeps each part's sequence, to answer later."""

    def __init__(self) -> None:
        self.parts: list[tuple[Peer, int]] = []

    def __call__(self, pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        self.parts.append((peer, pdu.sequence))
        return None

    def answer_all(self, status: int) -> None:
        for peer, sequence in self.parts:
            peer.write(codec.encode_submit_sm_resp(sequence, status, ""))


@pytest.mark.parametrize("status", [Status.ESME_RTHROTTLED, Status.ESME_RMSGQFUL])
async def test_parts_throttled_after_their_lane_halted_are_not_sent_again(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool], status: int
) -> None:
    held = Held()
    smsc.answer = held
    lane = Lane()
    outcomes = Outcomes()
    pool = make_pool(
        config(port_of(smsc)), outcomes=outcomes, lane_of=lambda tag: lane if tag < 100 else None
    )
    await pool.start()
    await send(pool, 10)
    await smsc.wait_until(lambda: len(smsc.submits) == 10)
    lane.halt()  # the run is cancelled while its 10 parts are in flight...
    smsc.answer = accept_all
    held.answer_all(status)  # ...and all come back "slow down"
    await send(pool, 5, start=100)  # another caller's parts still go
    await pool.drain()
    assert outcomes.statuses() == {
        **dict.fromkeys(range(10), NOT_SENT),
        **dict.fromkeys(range(100, 105), 0),
    }
    # The SMSC's record: nothing of the halted lane after the halt.
    assert [p.destination_addr for p in smsc.submits[10:]] == [
        destination(i).decode() for i in range(100, 105)
    ]
    assert pool.stats.not_sent == 10
    assert pool.stats.failed == 0  # not a delivery failure: a resumed run sends them
    assert outcomes.duplicates == {}


async def test_parts_lost_in_flight_after_their_lane_halted_are_not_sent_again(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """A halted lane's parts left unanswered, then the connection dies: not sent again."""
    smsc.answer = Held()
    lane = Lane()
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc)), outcomes=outcomes, lane_of=lambda tag: lane)
    await pool.start()
    await send(pool, 6)
    await smsc.wait_until(lambda: len(smsc.submits) == 6)
    lane.halt()
    smsc.answer = accept_all
    assert smsc.peers[0].transport is not None
    smsc.peers[0].transport.close()
    await pool.drain()
    await smsc.wait_until(lambda: len(smsc.peers) == 2 and smsc.peers[1].bound)
    assert outcomes.statuses() == dict.fromkeys(range(6), NOT_SENT)
    assert len(smsc.submits) == 6
    assert pool.stats.requeued_inflight == 0
    assert outcomes.duplicates == {}  # written once each: at most one copy


async def test_nothing_of_a_lane_is_written_after_its_deadline(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """A paced bind with more queued than it can send before the deadline: what is still
    queued at the deadline is NOT_SENT by the pool itself (the caller does nothing), half the
    parts are throttled and their retries stop at the deadline too."""
    throttle = True

    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        nonlocal throttle
        throttle = not throttle
        return (Status.ESME_RTHROTTLED if throttle else 0), "id"

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc), tps=40), outcomes=outcomes)
    await pool.start()
    deadline = time.time() + 0.6
    lane = pool.open_lane(deadline)
    pool.lane_of = lambda tag: lane
    times: dict[object, float] = {}
    outcome = outcomes.__call__

    def spy(tag: object, status: int, *args: object) -> None:
        times[tag] = cast(float, args[2])  # submitted_at, time.time()
        outcome(tag, status, *args)  # type: ignore[arg-type]

    pool.on_outcome = spy
    await send(pool, 200)
    await pool.drain()
    statuses = outcomes.statuses()
    accepted = [tag for tag, s in statuses.items() if s == 0]
    assert 0 < len(accepted) < 200
    assert set(statuses.values()) == {0, NOT_SENT}
    assert all(times[tag] < deadline for tag in accepted)
    # The SMSC's record: every part it got was answered before the deadline, none after.
    assert len(smsc.submits) == len(accepted) + pool.stats.throttled
    assert pool.stats.not_sent == 200 - len(accepted)
    assert not lane.halted  # the pool watches it until its owner halts it...
    # ...dropping whatever the owner still submits in it (its expiry timer may come later).
    await send(pool, 5, start=1000)
    await pool.drain()
    assert all(outcomes.statuses()[tag] == NOT_SENT for tag in range(1000, 1005))
    assert len(smsc.submits) == len(accepted) + pool.stats.throttled


async def test_a_bind_dropped_after_carrying_traffic_comes_back_at_once(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """An SMSC that closes each connection after answering 5 parts: every loss is followed by
    a quick retry (no failure counted, no growing backoff), and nothing is lost."""

    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        if len(peer.submits) == 5:
            peer.write(codec.encode_submit_sm_resp(pdu.sequence, 0, "ok"))
            assert peer.transport is not None
            peer.transport.close()
            return None
        return 0, "ok"

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc), window=1), outcomes=outcomes)
    await pool.start()
    await send(pool, 30)
    await pool.drain()
    assert outcomes.statuses() == dict.fromkeys(range(30), 0)
    assert pool.stats.reconnects >= 5
    assert pool.binds[0].failures == 0
    assert pool.stats.bind_failures == 0


async def test_a_bind_dropped_before_answering_anything_backs_off(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """Dropped at its first part, unanswered, twice: those are failed attempts, counted (the
    backoff grows with them: `policy.reconnect_delay`); the third connection answers."""

    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        if len(smsc.peers) <= 2:
            assert peer.transport is not None
            peer.transport.close()
            return None
        return 0, "ok"

    smsc.answer = answer
    outcomes = Outcomes()
    pool = make_pool(config(port_of(smsc)), outcomes=outcomes)
    await pool.start()
    await send(pool, 1)
    await pool.drain()
    assert outcomes.statuses() == {0: 0}
    assert len(smsc.peers) == 3
    assert pool.binds[0].failures == 2  # the third connection is up: no reset before it drops
    assert outcomes.duplicates == {0: 2}  # written three times, the first two unanswered


async def test_a_part_timed_out_after_its_lane_halted_is_not_sent_again(
    smsc: ScriptedSmsc, make_pool: Callable[..., SmppPool]
) -> None:
    """The SMSC answers every part but one; its lane halts meanwhile: when that part's
    response timeout passes, it is NOT_SENT, not written again elsewhere."""

    def answer(pdu: codec.ShortMessagePdu, peer: Peer) -> Answer:
        return None if pdu.destination_addr == destination(3).decode() else (0, "ok")

    smsc.answer = answer
    lane = Lane()
    outcomes = Outcomes()
    pool = make_pool(
        config(port_of(smsc), response_timeout_s=0.3),
        outcomes=outcomes,
        lane_of=lambda tag: lane if tag < 100 else None,
        housekeeping_interval=0.05,
    )
    await pool.start()
    await send(pool, 10)
    await smsc.wait_until(lambda: len(smsc.submits) == 10)
    lane.halt()
    # Keep the bind answering something while part 3 waits (a silent bind would be dropped).
    for batch in range(6):
        await asyncio.sleep(0.1)  # paces the feed; the assertions wait on events
        await send(pool, 2, start=100 + 2 * batch)
    await pool.drain()
    statuses = outcomes.statuses()
    assert statuses[3] == NOT_SENT
    assert all(s == 0 for tag, s in statuses.items() if tag != 3)
    assert [p.destination_addr for p in smsc.submits].count(destination(3).decode()) == 1
    assert pool.stats.timeouts == 1
    assert pool.stats.requeued_inflight == 0
