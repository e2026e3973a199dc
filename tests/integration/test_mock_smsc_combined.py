"""Scenario knobs combined, as a bad day combines them: latency with disconnects, unbind and
flow control; receipts across a reconnect. (Each knob alone: test_mock_smsc_scenarios.py.)"""

from __future__ import annotations

import asyncio

from smsc_fixtures import RawEsme, submit_pdus

from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId, Status

SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)


def submits(count: int, first_sequence: int = 10, registered_delivery: int = 0) -> list[bytes]:
    return [
        pdu
        for i in range(count)
        for pdu in submit_pdus(
            f"part {i}",
            f"336123{i:05d}",
            first_sequence=first_sequence + i,
            registered_delivery=registered_delivery,
        )
    ]


async def test_disconnect_after_answers_its_n_parts_even_with_latency() -> None:
    """ "Close each connection after answering N": with a response latency the N answers are
    still written before the close, so the client learns the fate of every part the mock
    accepted (an accepted part it never hears of would be sent again, twice to a handset)."""
    config = MockConfig(seed=1, disconnect_after=3, latency_ms=50)
    async with MockSmsc(config) as smsc, await RawEsme.connect(smsc.port) as esme:
        assert (await esme.bind(CommandId.BIND_TRANSMITTER)).status == 0
        esme.send(*submits(5))
        assert await esme.closed_by_peer(2.0)
        answers = [codec.decode_submit_sm_resp(p)[:2] for p in esme.queue]
        assert answers == [(10, 0), (11, 0), (12, 0)]
        assert smsc.record.parts_received == 3


async def test_unbind_flushes_the_answers_still_delayed() -> None:
    config = MockConfig(seed=1, latency_ms=300)
    async with MockSmsc(config) as smsc, await RawEsme.connect(smsc.port) as esme:
        assert (await esme.bind(CommandId.BIND_TRANSMITTER)).status == 0
        loop = asyncio.get_running_loop()
        sent = loop.time()
        esme.send(*submits(3), codec.encode_unbind(99))
        replies = [codec.decode_header(p) for p in await esme.read_pdus(4)]
        assert [(h.command_id, h.sequence) for h in replies] == [
            (SUBMIT_SM_RESP, 10),
            (SUBMIT_SM_RESP, 11),
            (SUBMIT_SM_RESP, 12),
            (CommandId.UNBIND_RESP, 99),
        ]
        assert loop.time() - sent < 0.25
        assert await esme.closed_by_peer(1.0)
        assert smsc.record.parts_received == 3


async def test_window_comes_before_tps_and_tps_before_vendor_errors() -> None:
    """Only a part within the window takes a TPS token, and only a part with a token draws a
    vendor error: 3 parts in the window, of which the bucket (2 deep) lets 2 through, both
    failing with 0x401; every other part is told why it was turned away first."""
    config = MockConfig(seed=1, window=3, latency_ms=100, tps=20, errors={0x401: 1.0})
    async with MockSmsc(config) as smsc, await RawEsme.connect(smsc.port) as esme:
        assert (await esme.bind(CommandId.BIND_TRANSMITTER)).status == 0
        esme.send(*submits(8))
        answers = dict(codec.decode_submit_sm_resp(p)[:2] for p in await esme.read_pdus(8))
        assert [answers[s] for s in range(10, 18)] == [
            0x401,
            0x401,
            Status.ESME_RTHROTTLED,
            *[Status.ESME_RMSGQFUL] * 5,
        ]
        assert smsc.record.parts_received == 0


async def test_receipts_of_a_dropped_connection_reach_the_next_bind() -> None:
    """Parts accepted just before a disconnect still get their receipts, on the system_id's
    next receiver-capable bind."""
    config = MockConfig(seed=1, receipts=True, receipt_delay_ms=100, disconnect_after=2)
    async with MockSmsc(config) as smsc:
        async with await RawEsme.connect(smsc.port) as first:
            assert (await first.bind(CommandId.BIND_TRANSCEIVER, "alerts")).status == 0
            first.send(*submits(3, registered_delivery=1))
            assert await first.closed_by_peer(2.0)
            ids = {codec.decode_submit_sm_resp(p)[2] for p in first.queue}
        assert len(ids) == 2
        await asyncio.sleep(0.15)  # the receipts fall due while no bind can take them
        async with await RawEsme.connect(smsc.port) as second:
            assert (await second.bind(CommandId.BIND_TRANSCEIVER, "alerts")).status == 0
            receipts = [codec.decode_short_message_pdu(p) for p in await second.read_pdus(2)]
            assert {r.tlvs[0x001E].rstrip(b"\0").decode() for r in receipts} == ids
            assert all(r.is_receipt for r in receipts)
