"""Helpers to talk to the mock SMSC byte for byte: a raw ESME over a real TCP socket.

The mock itself is started by the `start_mock` / `mock_smsc` fixtures of `fixtures_smsc.py`
(registered by conftest); the tests of the mock import `RawEsme` from here to send exactly the
octets they mean, malformed ones included, and read back whole PDUs.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import deque
from types import TracebackType

from broadcaster.smpp import codec
from broadcaster.smpp.constants import CommandId
from broadcaster.text.encoding import encode_message

SOURCE = "ALERTE"


def submit_pdus(
    text: str,
    destination: str,
    first_sequence: int = 1,
    reference: int = 1,
    registered_delivery: int = 0,
) -> list[bytes]:
    """The submit_sm PDUs of one message (several if concatenated), as the project encodes them."""
    templates = codec.submit_templates(
        encode_message(text, reference=reference),
        source_addr=SOURCE,
        source_ton=5,
        source_npi=0,
        registered_delivery=registered_delivery,
    )
    dest = codec.destination_bytes(destination)
    return [t.encode(first_sequence + i, dest) for i, t in enumerate(templates)]


def raw_submit(
    *,
    service_type: bytes = b"",
    source_ton: int = 5,
    source_npi: int = 0,
    source: bytes = b"ALERTE",
    dest_ton: int = 1,
    dest_npi: int = 1,
    destination: bytes = b"33612345678",
    esm_class: int = 0,
    protocol_id: int = 0,
    priority: int = 0,
    schedule: bytes = b"",
    validity: bytes = b"",
    registered_delivery: int = 1,
    replace: int = 0,
    data_coding: int = 0,
    default_msg_id: int = 0,
    short_message: bytes = b"Hello",
    sm_length: int | None = None,
    tlvs: bytes = b"",
    sequence: int = 7,
) -> bytes:
    """A submit_sm built octet by octet, so that any field can be wrong."""
    body = b"".join(
        (
            service_type + b"\0",
            bytes((source_ton, source_npi)),
            source + b"\0",
            bytes((dest_ton, dest_npi)),
            destination + b"\0",
            bytes((esm_class, protocol_id, priority)),
            schedule + b"\0",
            validity + b"\0",
            bytes((registered_delivery, replace, data_coding, default_msg_id)),
            bytes((len(short_message) if sm_length is None else sm_length,)),
            short_message,
            tlvs,
        )
    )
    return struct.pack("!IIII", 16 + len(body), 4, 0, sequence) + body


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack("!HH", tag, len(value)) + value


class RawEsme:
    """An SMPP client that sends the bytes it is given and reads whole PDUs (FrameBuffer)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.frames = codec.FrameBuffer()
        self.queue: deque[bytes] = deque()

    @classmethod
    async def connect(cls, port: int, host: str = "127.0.0.1") -> RawEsme:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def __aenter__(self) -> RawEsme:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if not self.writer.is_closing():
            self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    def send(self, *pdus: bytes) -> None:
        self.writer.write(b"".join(pdus))

    async def read_pdu(self, timeout: float = 2.0) -> bytes:
        """The next whole PDU; TimeoutError if none comes, EOFError if the peer closed."""
        async with asyncio.timeout(timeout):
            while not self.queue:
                if self.frames.error is not None:
                    raise self.frames.error  # a broken command_length after the last PDU
                data = await self.reader.read(65536)
                if not data:
                    raise EOFError("the mock SMSC closed the connection")
                self.queue.extend(self.frames.feed(data))
        return self.queue.popleft()

    async def read_pdus(self, count: int, timeout: float = 2.0) -> list[bytes]:
        return [await self.read_pdu(timeout) for _ in range(count)]

    async def header(self, timeout: float = 2.0) -> codec.Header:
        return codec.decode_header(await self.read_pdu(timeout))

    async def bind(
        self,
        command: int = CommandId.BIND_TRANSCEIVER,
        system_id: str = "tester",
        password: str = "secret",  # noqa: S107 - the mock accepts any unless configured
        sequence: int = 1,
    ) -> codec.BindRespPdu:
        self.send(codec.encode_bind(command, sequence, system_id, password))
        return codec.decode_bind_resp(await self.read_pdu())

    async def submit(self, text: str, destination: str, sequence: int = 1) -> list[bytes]:
        """Send one message; return the answers to its parts."""
        pdus = submit_pdus(text, destination, first_sequence=sequence)
        self.send(*pdus)
        return await self.read_pdus(len(pdus))

    async def closed_by_peer(self, timeout: float = 2.0) -> bool:
        """True once the peer closes (the PDUs before the close are kept in `queue`)."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    data = await self.reader.read(65536)
                    if not data:
                        return True
                    self.queue.extend(self.frames.feed(data))
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True

    async def silent_for(self, seconds: float) -> bool:
        """True when nothing at all arrives for `seconds` (a stalled SMSC)."""
        if self.queue:
            return False
        try:
            async with asyncio.timeout(seconds):
                data = await self.reader.read(65536)
        except TimeoutError:
            return True
        self.queue.extend(self.frames.feed(data))
        return False
