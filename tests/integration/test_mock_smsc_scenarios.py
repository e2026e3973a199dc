"""Mock SMSC scenarios over TCP: receipts, disconnects, stalls, vendor statuses, latency, binds,
malformed replies, slow drain, statistics. Seeded: the same run every time."""

from __future__ import annotations

import asyncio
import gc
import re
import time
import weakref
from collections import Counter

import aiohttp
import pytest
from smsc_fixtures import RawEsme, raw_submit

from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.smpp import codec
from broadcaster.smpp.constants import TAG_RECEIPTED_MESSAGE_ID, CommandId, Status
from broadcaster.smpp.receipts import parse_receipt
from broadcaster.text.encoding import decode_short_message


def parts(count: int, first: int = 1, registered_delivery: int = 1) -> bytes:
    return b"".join(
        raw_submit(
            sequence=first + i,
            destination=b"3361%07d" % (first + i),
            registered_delivery=registered_delivery,
        )
        for i in range(count)
    )


async def answers(esme: RawEsme, count: int) -> dict[int, tuple[int, str]]:
    """sequence -> (status, message_id) of `count` submit_sm_resp."""
    out = {}
    for pdu in await esme.read_pdus(count):
        sequence, status, message_id = codec.decode_submit_sm_resp(pdu)
        out[sequence] = (status, message_id)
    return out


async def read_receipts(esme: RawEsme, count: int, ack: bool = True) -> list[codec.ShortMessagePdu]:
    receipts = []
    for _ in range(count):
        pdu = codec.decode_short_message_pdu(await esme.read_pdu())
        assert pdu.command_id == CommandId.DELIVER_SM and pdu.is_receipt
        receipts.append(pdu)
        if ack:
            esme.send(codec.encode_deliver_sm_resp(pdu.sequence))
    return receipts


async def test_receipts_follow_the_mix_with_12_digit_dates_and_the_tlv() -> None:
    config = MockConfig(
        receipts=True,
        receipt_delay_ms=80,
        receipt_mix={"DELIVRD": 0.7, "UNDELIV": 0.2, "EXPIRED": 0.1},
        receipt_12_digit_dates=True,
        seed=3,
    )
    async with MockSmsc(config) as mock, await RawEsme.connect(mock.port) as esme:
        await esme.bind()
        sent = time.monotonic()
        esme.send(parts(300))
        accepted = await answers(esme, 300)
        receipts = await read_receipts(esme, 300)
        assert time.monotonic() - sent >= 0.075  # after the delay
        id_of = {f"3361{seq:07d}": message_id for seq, (_, message_id) in accepted.items()}
        stats: Counter[str] = Counter()
        for pdu in receipts:
            text = decode_short_message(pdu.short_message, pdu.data_coding)
            assert re.search(r"submit date:\d{12} done date:\d{12} ", text), text
            receipt = parse_receipt(text, pdu.tlvs)
            assert receipt is not None
            # From the handset to the sender, about the part sent to that handset.
            assert pdu.destination_addr == "ALERTE"
            assert receipt.message_id == id_of[pdu.source_addr]
            assert receipt.text_message_id is None  # the text's id: the same string
            assert pdu.tlvs[TAG_RECEIPTED_MESSAGE_ID] == receipt.message_id.encode() + b"\0"
            stats[receipt.stat] += 1
        assert {r.source_addr for r in receipts} == set(id_of)
        assert set(stats) == {"DELIVRD", "UNDELIV", "EXPIRED"}
        assert 0.6 < stats["DELIVRD"] / 300 < 0.8
        assert 0.05 < stats["EXPIRED"] / 300 < 0.17
        await mock.wait_for(lambda: mock.stats_json()["receipts"]["acked"] == 300)


async def test_receipts_only_when_asked_and_on_failure_only_when_asked_so() -> None:
    config = MockConfig(receipts=True, receipt_mix={"DELIVRD": 0.5, "UNDELIV": 0.5}, seed=4)
    async with MockSmsc(config) as mock, await RawEsme.connect(mock.port) as esme:
        await esme.bind()
        esme.send(parts(20, registered_delivery=0))
        await answers(esme, 20)
        assert await esme.silent_for(0.05)
        esme.send(parts(40, first=100, registered_delivery=2))  # on failure only
        await answers(esme, 40)
        receipts = await read_receipts(esme, mock.receipts_sent)
        assert 0 < len(receipts) < 40
        parsed = [parse_receipt(decode_short_message(r.short_message, 0), r.tlvs) for r in receipts]
        assert {r.stat for r in parsed if r is not None} == {"UNDELIV"}


async def test_receipts_go_to_a_receiver_bind_and_wait_for_one() -> None:
    async with (
        MockSmsc(MockConfig(receipts=True, seed=5)) as mock,
        await RawEsme.connect(mock.port) as transmitter,
    ):
        await transmitter.bind(CommandId.BIND_TRANSMITTER, system_id="prefecture")
        transmitter.send(parts(5))
        await answers(transmitter, 5)
        await mock.wait_for(lambda: mock.stats_json()["receipts"]["waiting_for_receiver"] == 5)
        async with await RawEsme.connect(mock.port) as receiver:
            await receiver.bind(CommandId.BIND_RECEIVER, system_id="prefecture")
            assert len(await read_receipts(receiver, 5)) == 5
        assert await transmitter.silent_for(0.02)


async def test_receipts_can_be_dropped_or_unreadable() -> None:
    config = MockConfig(receipts=True, receipt_drop_rate=0.5, malformed_receipt_rate=0.5, seed=6)
    async with MockSmsc(config) as mock, await RawEsme.connect(mock.port) as esme:
        await esme.bind()
        esme.send(parts(100))
        await answers(esme, 100)
        await mock.wait_for(lambda: mock.stats_json()["receipts"]["scheduled"] == 0)
        dropped = mock.receipts_dropped
        assert 30 < dropped < 70
        receipts = await read_receipts(esme, 100 - dropped)
        unreadable = [
            r
            for r in receipts
            if parse_receipt(decode_short_message(r.short_message, 0), r.tlvs) is None
        ]
        assert 0 < len(unreadable) < len(receipts)
        assert await esme.silent_for(0.05)


async def test_disconnect_after_n_answers_n_then_closes() -> None:
    async with MockSmsc(MockConfig(disconnect_after=3)) as mock:
        async with await RawEsme.connect(mock.port) as esme:
            await esme.bind()
            esme.send(parts(5))
            assert await esme.closed_by_peer()
            assert [codec.decode_submit_sm_resp(p)[:2] for p in esme.queue] == [
                (1, 0),
                (2, 0),
                (3, 0),
            ]
        assert mock.disconnects == 1 and mock.record.parts_received == 3
        async with await RawEsme.connect(mock.port) as again:  # a new connection starts over
            await again.bind()
            again.send(parts(2, first=10))
            assert {s for s, _ in (await answers(again, 2)).values()} == {0}


async def test_random_disconnects_are_seeded() -> None:
    async def run() -> int:
        async with (
            MockSmsc(MockConfig(disconnect_rate=0.2, seed=8)) as mock,
            await RawEsme.connect(mock.port) as esme,
        ):
            await esme.bind()
            esme.send(parts(50))
            assert await esme.closed_by_peer()
            return len(esme.queue)

    first = await run()
    assert 0 <= first < 50
    assert await run() == first


async def test_a_stall_for_ever_stops_reading_and_answering() -> None:
    async with (
        MockSmsc(MockConfig(stall_after=2)) as mock,
        await RawEsme.connect(mock.port) as esme,
    ):
        await esme.bind()
        esme.send(parts(4))
        assert len(await answers(esme, 2)) == 2
        esme.send(codec.encode_enquire_link(99))
        assert await esme.silent_for(0.2)
        assert mock.stalls == 1 and mock.record.parts_received == 2


async def test_a_stall_for_a_while_then_answers_what_it_held() -> None:
    async with (
        MockSmsc(MockConfig(stall_after=2, stall_seconds=0.2)) as mock,
        await RawEsme.connect(mock.port) as esme,
    ):
        await esme.bind()
        esme.send(parts(4))
        assert sorted(await answers(esme, 2)) == [1, 2]
        stalled = time.monotonic()
        assert sorted(await answers(esme, 2)) == [3, 4]
        assert time.monotonic() - stalled >= 0.15
        assert mock.record.parts_received == 4


async def test_vendor_statuses_come_at_their_rates_and_the_same_seed_repeats() -> None:
    config = MockConfig(errors={0x401: 0.1, Status.ESME_RTHROTTLED: 0.05}, seed=11)

    async def run() -> list[int]:
        async with MockSmsc(config) as mock, await RawEsme.connect(mock.port) as esme:
            await esme.bind()
            esme.send(parts(1000))
            got = await answers(esme, 1000)
            statuses = [got[i][0] for i in range(1, 1001)]
            assert Counter(statuses) == mock.statuses
            for status, message_id in got.values():
                assert bool(message_id) == (status == 0)
            return statuses

    first = await run()
    counts = Counter(first)
    assert 70 < counts[0x401] < 130
    assert 30 < counts[Status.ESME_RTHROTTLED] < 75
    assert counts[0] == 1000 - counts[0x401] - counts[Status.ESME_RTHROTTLED]
    assert await run() == first


async def test_latency_delays_every_answer() -> None:
    async with (
        MockSmsc(MockConfig(latency_ms=40, latency_jitter_ms=10, seed=2)) as mock,
        await RawEsme.connect(mock.port) as esme,
    ):
        await esme.bind()
        sent = time.monotonic()
        esme.send(parts(10))
        assert len(await answers(esme, 10)) == 10
        assert time.monotonic() - sent >= 0.029
        # unbind: answers still delayed are sent first, then unbind_resp, then the close.
        esme.send(parts(3, first=20), codec.encode_unbind(30))
        assert await esme.closed_by_peer()
        replies = [codec.decode_header(p) for p in esme.queue]
        assert [h.command_id for h in replies] == [CommandId.SUBMIT_SM_RESP] * 3 + [
            CommandId.UNBIND_RESP
        ]
        assert mock.bound() == 0


@pytest.mark.parametrize(
    ("config", "bind", "status"),
    [
        (MockConfig(refuse_binds=True), {}, Status.ESME_RBINDFAIL),
        (MockConfig(system_id="pref75"), {"system_id": "pref13"}, Status.ESME_RINVSYSID),
        (
            MockConfig(system_id="pref75", password="a-long-password"),
            {"system_id": "pref75", "password": "a-long-passwor"},
            Status.ESME_RINVPASWD,
        ),
        (
            MockConfig(bind_modes=("transceiver",)),
            {"command": CommandId.BIND_TRANSMITTER},
            Status.ESME_RBINDFAIL,
        ),
    ],
)
async def test_binds_are_refused_as_configured(
    config: MockConfig, bind: dict[str, object], status: int
) -> None:
    async with MockSmsc(config) as mock, await RawEsme.connect(mock.port) as esme:
        answer = await esme.bind(**bind)  # type: ignore[arg-type]
        assert answer.status == status and answer.system_id == ""
        assert mock.bound() == 0 and not mock.binds


async def test_max_binds_refused_first_binds_and_credentials() -> None:
    config = MockConfig(max_binds=1, refuse_first_binds=1, system_id="p75", password="pw-longer-8")
    async with (
        MockSmsc(config) as mock,
        await RawEsme.connect(mock.port) as one,
        await RawEsme.connect(mock.port) as two,
    ):
        assert (await one.bind(system_id="p75", password="pw-longer-8")).status == (
            Status.ESME_RBINDFAIL
        )
        answer = await one.bind(system_id="p75", password="pw-longer-8", sequence=2)
        assert (answer.status, answer.system_id, answer.sc_interface_version) == (
            0,
            "MOCKSMSC",
            0x34,
        )
        assert (await two.bind(system_id="p75", password="pw-longer-8")).status == (
            Status.ESME_RBINDFAIL
        )
        assert mock.bound() == 1 and mock.binds_refused == 2


async def test_malformed_replies_still_accept_the_parts() -> None:
    async with (
        MockSmsc(MockConfig(malformed_reply_rate=1.0, seed=9)) as mock,
        await RawEsme.connect(mock.port) as esme,
    ):
        await esme.bind()
        esme.send(parts(20))
        kinds: Counter[str] = Counter()
        for pdu in await esme.read_pdus(20):
            head = codec.decode_header(pdu)
            if head.command_id == CommandId.SUBMIT_SM_RESP:
                with pytest.raises(Exception, match="message_id"):
                    codec.decode_submit_sm_resp(pdu)
                kinds["unterminated_id"] += 1
            else:
                assert head.command_id == 0xFF
                kinds["unknown_command"] += 1
        assert set(kinds) == {"unterminated_id", "unknown_command"}
        assert mock.record.parts_received == 20 and mock.malformed_replies == 20


async def test_a_corrupt_stream_after_n_answers() -> None:
    async with MockSmsc(MockConfig(corrupt_stream_after=2)) as mock:
        async with await RawEsme.connect(mock.port) as esme:
            await esme.bind()
            esme.send(parts(2))
            await answers(esme, 2)
            with pytest.raises(Exception, match="command_length 8"):
                await esme.read_pdu()
        assert mock.record.parts_received == 2


async def test_slow_drain_pauses_reading_after_each_read() -> None:
    async with (
        MockSmsc(MockConfig(drain_delay_ms=80)) as mock,
        await RawEsme.connect(mock.port) as esme,
    ):
        await esme.bind()  # the mock stops reading for 80 ms after this read
        sent = time.monotonic()
        esme.send(parts(1))
        await answers(esme, 1)
        assert time.monotonic() - sent >= 0.06
        assert mock.record.parts_received == 1


async def test_ids_are_unique_fixed_width_hex_strings_and_stop_unbinds_clients() -> None:
    mock = MockSmsc(MockConfig(seed=12))
    await mock.start()
    try:
        async with await RawEsme.connect(mock.port) as esme:
            await esme.bind()
            esme.send(parts(500))
            ids = [m for _, m in (await answers(esme, 500)).values()]
            assert len(set(ids)) == 500
            assert all(re.fullmatch(r"[0-9A-F]{16}", i) for i in ids)
            assert all(i.startswith("0") for i in ids)  # leading zeros: never parse as numbers
            await mock.stop()
            assert await esme.closed_by_peer()
            assert codec.decode_header(esme.queue[-1]).command_id == CommandId.UNBIND
    finally:
        await mock.stop()


async def test_stats_over_http() -> None:
    async with MockSmsc(MockConfig(errors={0x401: 0.5}, seed=1)) as mock:
        stats_port = await mock.serve_stats()
        async with await RawEsme.connect(mock.port) as esme:
            await esme.bind(system_id="pref75")
            esme.send(parts(40))
            await answers(esme, 40)
            esme.send(raw_submit(destination=b"", sequence=99))
            await esme.read_pdu()
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{stats_port}/stats") as response,
        ):
            stats = await response.json()
        assert stats["submits"] == 41
        assert stats["statuses"]["ESME_ROK"] + stats["statuses"]["0x00000401"] == 40
        assert stats["errors"]["ESME_RINVDSTADR"] == 1
        assert stats["malformed"] == {"destination_addr_empty": 1}
        assert stats["malformed_total"] == 1
        (bind,) = stats["binds"]
        assert bind["system_id"] == "pref75" and bind["parts"] == stats["parts"]
        assert bind["mode"] == "transceiver"


async def test_wait_for_times_out_when_nothing_happens() -> None:
    async with MockSmsc() as mock:
        with pytest.raises(TimeoutError):
            await mock.wait_for(lambda: mock.submits > 0, timeout=0.05)
        await asyncio.sleep(0)


async def test_closed_binds_are_let_go_their_figures_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # A mock that kept every closed session grew to 1.2 GB over 230,000 binds.
    monkeypatch.setattr("broadcaster.mocksmsc.server.CLOSED_BINDS_LISTED", 3)
    sessions: list[weakref.ref[object]] = []
    async with MockSmsc(MockConfig(receipts=True, receipt_delay_ms=0, seed=7)) as mock:
        for round_no in range(5):
            async with await RawEsme.connect(mock.port) as esme:
                await esme.bind(system_id=f"pref{round_no}")
                sessions.extend(weakref.ref(s) for s in mock.connections)
                esme.send(parts(4, first=10 * round_no + 1))
                await answers(esme, 4)
                await read_receipts(esme, 4)
            await mock.wait_for(lambda: not mock.connections)
        stats = mock.stats_json()
    assert [b["system_id"] for b in stats["binds"]] == ["pref2", "pref3", "pref4"]
    assert all(not b["open"] and b["parts"] == 4 for b in stats["binds"])
    assert stats["parts"] == 20 and stats["receipts_sent"] == 20
    assert [b.system_id for b in mock.binds] == ["pref2", "pref3", "pref4"]
    gc.collect()
    assert len(sessions) == 5 and [ref() is None for ref in sessions[:2]] == [True, True]
