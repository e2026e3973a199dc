"""Independent SMPP clients agree with the mock SMSC: smpplib and aiosmpplib's ESME bind, send a
GSM 03.38, a UCS-2 and a 3-part message, and the mock's record holds exactly their texts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import struct

import smpplib.client
import smpplib.consts
import smpplib.gsm
from aiosmpplib import ESME, AbstractHook, PhoneNumber, SmppMessage, SubmitSm
from aiosmpplib.broker import SimpleBroker
from aiosmpplib.state import NPI, TON

from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.smpp.constants import CommandId

GSM_TEXT = "Numéros d'urgence perturbés: appelez le 01 23 45 67 89 (ou le 112)."
UCS2_TEXT = "Экстренные номера недоступны: звоните 112"
LONG_TEXT = (
    "ALERTE: les numeros d'urgence 15, 17, 18 et 112 sont perturbes dans votre departement. "
    "En cas d'urgence, appelez le 01 23 45 67 89. Ce numero est joignable 24h sur 24. "
    "Ne saturez pas les lignes: n'appelez qu'en cas d'urgence vitale. Les pompiers, la police "
    "et le SAMU restent mobilises. Suivez les consignes des autorites sur les medias locaux."
)
MESSAGE_ID = re.compile(r"^[0-9A-F]{16}$")
_SUBMIT_SM_RESP = struct.pack("!I", CommandId.SUBMIT_SM_RESP)


def smpplib_session(port: int, messages: list[tuple[str, str]]) -> list[tuple[int, str]]:
    """A blocking smpplib client (run in a thread): bind, send every part, read every answer."""
    client = smpplib.client.Client("127.0.0.1", port, timeout=5, allow_unknown_opt_params=True)
    client.connect()
    answers: list[tuple[int, str]] = []
    try:
        client.bind_transceiver(system_id="smpplib", password="secret")
        sent = 0
        for destination, text in messages:
            parts, coding, esm_class = smpplib.gsm.make_parts(text)
            for part in parts:
                client.send_message(
                    source_addr_ton=smpplib.consts.SMPP_TON_ALNUM,
                    source_addr_npi=smpplib.consts.SMPP_NPI_UNK,
                    source_addr="SMPPLIB",
                    dest_addr_ton=smpplib.consts.SMPP_TON_INTL,
                    dest_addr_npi=smpplib.consts.SMPP_NPI_ISDN,
                    destination_addr=destination,
                    short_message=part,
                    data_coding=coding,
                    esm_class=esm_class,
                    registered_delivery=False,
                )
                sent += 1
        for _ in range(sent):
            pdu = client.read_pdu()
            assert pdu.command == "submit_sm_resp"
            answers.append((int(pdu.status), pdu.message_id.decode("ascii")))
        assert client.unbind().command == "unbind_resp"
    finally:
        client.disconnect()
    return answers


async def test_smpplib_sends_gsm_ucs2_and_three_parts() -> None:
    async with MockSmsc(MockConfig(system_id="smpplib", password="secret")) as mock:
        messages = [
            ("33611111111", GSM_TEXT),
            ("33622222222", UCS2_TEXT),
            ("33633333333", LONG_TEXT),
        ]
        answers = await asyncio.to_thread(smpplib_session, mock.port, messages)
        assert len(answers) == 5  # 1 + 1 + 3 parts
        assert {status for status, _ in answers} == {0}
        ids = [message_id for _, message_id in answers]
        assert all(MESSAGE_ID.match(i) for i in ids) and len(set(ids)) == 5
        assert mock.record.messages == {d: [t] for d, t in messages}
        assert mock.record.incomplete() == 0
        assert mock.malformed == {}
        assert mock.statuses == {0: 5}


class _Answers(AbstractHook):  # type: ignore[misc]
    """Collects the command_status of every submit_sm_resp the ESME receives."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.statuses: list[int] = []
        self.done = asyncio.Event()

    async def sending(self, smpp_message: SmppMessage, pdu: bytes, client_id: str) -> None:
        return None

    async def received(self, smpp_message: SmppMessage | None, pdu: bytes, client_id: str) -> None:
        if pdu[4:8] == _SUBMIT_SM_RESP:
            self.statuses.append(struct.unpack_from("!I", pdu, 8)[0])
            if len(self.statuses) >= self.expected:
                self.done.set()

    async def send_error(self, smpp_message: SmppMessage, error: Exception, client_id: str) -> None:
        self.statuses.append(-1)
        self.done.set()


async def test_aiosmpplib_esme_sends_gsm_ucs2_three_parts_and_a_payload() -> None:
    async with MockSmsc(MockConfig(seed=1)) as mock:
        source = PhoneNumber("AIOSMPP", TON.ALPHANUMERIC, NPI.UNKNOWN)

        def to(number: str) -> PhoneNumber:
            return PhoneNumber(number, TON.INTERNATIONAL, NPI.ISDN)

        submits = [
            SubmitSm(short_message=GSM_TEXT, source=source, destination=to("33611111111")),
            SubmitSm(short_message=UCS2_TEXT, source=source, destination=to("33622222222")),
            # Split by aiosmpplib into 3 parts carrying a UDH (and SAR parameters).
            SubmitSm(
                short_message=LONG_TEXT,
                source=source,
                destination=to("33633333333"),
                esm_class=0x40,
                auto_message_payload=False,
            ),
            # The whole text in one PDU's message_payload parameter.
            SubmitSm(short_message=LONG_TEXT, source=source, destination=to("33644444444")),
        ]
        hook = _Answers(expected=6)
        broker = SimpleBroker()
        esme = ESME(
            smsc_host="127.0.0.1",
            smsc_port=mock.port,
            system_id="aiosmpplib",
            password="secret",
            broker=broker,
            hook=hook,
            log_level=logging.WARNING,
            enquire_link_interval=300.0,
        )
        runner = asyncio.create_task(esme.start())
        try:
            for submit in submits:
                await broker.enqueue(submit)
            await asyncio.wait_for(hook.done.wait(), 10)
        finally:
            writer = esme._writer  # ESME.stop() forgets its StreamWriter without closing it
            await asyncio.wait_for(esme.stop(), 10)
            runner.cancel()
            await asyncio.gather(runner, return_exceptions=True)
            if writer is not None:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
        assert hook.statuses == [0] * 6
        assert mock.record.messages == {
            "33611111111": [GSM_TEXT],
            "33622222222": [UCS2_TEXT],
            "33633333333": [LONG_TEXT],
            "33644444444": [LONG_TEXT],
        }
        assert mock.malformed == {}
        assert [b.mode for b in mock.binds] == ["transceiver"]
