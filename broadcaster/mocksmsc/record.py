"""What the mock SMSC accepted, so tests can assert "each recipient got exactly this text once".

Recording must not slow the fast path: an accepted single part is appended as the raw
submit_sm PDU (one slice, one append), and texts are decoded only when `messages` is read.
Parts of a concatenated message wait in `pending`, keyed by (source, destination,
reference), until all have arrived; the message is then appended once, in order of completion,
its parts' octets joined before decoding (a GSM escape may be split across two parts).

The pending concatenations are also what the server checks each new part against (same total,
sequence within 1..total, a sequence received twice must carry the same octets), so they are
kept even when texts are not (`keep=False`, for load tests).
"""

from __future__ import annotations

from collections.abc import Callable

from broadcaster.smpp.codec import decode_short_message_pdu
from broadcaster.text.encoding import decode_short_message

_OCTETS = 0xFF
_TEXT = 0xFE
_UDHI = 0x40

ConcatKey = tuple[bytes, bytes, int]
"""(source_addr, destination_addr, reference) of a concatenated message."""


Pending = tuple[int, dict[int, tuple[int, bytes]]]
"""(total, {seq: (data_coding, user data without UDH)}) of a message still incomplete."""


def _octets_entry(
    destination: bytes, data_coding: int, user_data: bytes, source: bytes = b""
) -> bytes:
    return b"%c%c%c%s%c%s%s" % (
        _OCTETS,
        data_coding,
        len(destination),
        destination,
        len(source),
        source,
        user_data,
    )


def _message_entry(destination: bytes, source: bytes, parts: list[tuple[int, bytes]]) -> bytes:
    """A reassembled message: its parts' octets joined (a GSM escape may end a part), or, for
    parts of different codings (legal, rare), each decoded on its own."""
    data_coding = parts[0][0]
    if all(dc == data_coding for dc, _ in parts):
        data = b"".join([data for _, data in parts])
        return _octets_entry(destination, data_coding, data, source)
    text = "".join(decode_short_message(data, dc) for dc, data in parts)
    return b"%c%c%s%c%s%s" % (
        _TEXT,
        len(destination),
        destination,
        len(source),
        source,
        text.encode("utf-8"),
    )


class Record:
    """Accepted submit_sm parts, and the messages they make once reassembled."""

    __slots__ = (
        "_decoded",
        "_entries",
        "_messages",
        "_senders",
        "append_pdu",
        "duplicate_parts",
        "keep",
        "parts_received",
        "pending",
    )

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        """Store texts (False: only count parts and track pending concatenations)."""
        self.parts_received = 0
        """Parts accepted (answered ESME_ROK), each counted once even when resent."""
        self.duplicate_parts = 0
        """Parts of a pending concatenation received again with the same octets (a resend)."""
        self.pending: dict[ConcatKey, Pending] = {}
        self._entries: list[bytes] = []
        """One `bytes` per message, so that a million of them cost the garbage collector
        nothing: a whole submit_sm PDU (first octet 0: a command_length), or `_OCTETS`,
        data_coding, len(destination), destination, user data (reassembled or added), or
        `_TEXT`, len(destination), destination, UTF-8 text (parts of mixed codings)."""
        self.append_pdu: Callable[[bytes], None] = self._entries.append
        """The fast path's (`fastpath.answer_single_parts`): append a valid single-part
        submit_sm PDU, as received (the caller adds to `parts_received`); only when `keep`."""
        self._decoded = 0
        self._messages: dict[str, list[str]] = {}
        self._senders: dict[str, list[str]] = {}

    # -- written by the server --------------------------------------------------------------------

    def add_pdu(self, pdu: bytes) -> None:
        """A single-part message: its whole (valid) submit_sm PDU, decoded when read."""
        self.parts_received += 1
        if self.keep:
            self._entries.append(pdu)

    def add(self, destination: bytes, data_coding: int, user_data: bytes) -> None:
        """A single-part message (user data without UDH)."""
        self.parts_received += 1
        if self.keep:
            self._entries.append(_octets_entry(destination, data_coding, user_data))

    def add_part(
        self, key: ConcatKey, total: int, seq: int, data_coding: int, user_data: bytes
    ) -> str | None:
        """One part of a concatenated message (user data without UDH).

        Returns None when the part is taken: new, or a resend of the same octets (counted in
        `duplicate_parts`, once in the message). Returns why it contradicts the parts already
        pending under its key ("udh_total_changed", "udh_part_conflicts"), changing nothing.
        The message is appended once its `total` parts are in.
        """
        pending = self.pending.get(key)
        if pending is None:
            if total > 1:
                self.pending[key] = (total, {seq: (data_coding, user_data)})
                self.parts_received += 1
                return None
            parts = {seq: (data_coding, user_data)}
        else:
            known_total, parts = pending
            if known_total != total:
                return "udh_total_changed"
            known = parts.get(seq)
            if known is not None:
                if known[1] != user_data:
                    return "udh_part_conflicts"
                self.duplicate_parts += 1
                return None
            parts[seq] = (data_coding, user_data)
            if len(parts) < total:
                self.parts_received += 1
                return None
            del self.pending[key]
        self.parts_received += 1
        if self.keep:
            ordered = [parts[i] for i in range(1, total + 1)]
            self._entries.append(_message_entry(key[1], key[0], ordered))
        return None

    # -- read by tests ----------------------------------------------------------------------------

    @property
    def messages(self) -> dict[str, list[str]]:
        """destination -> texts, in order of arrival (a concatenated one once complete)."""
        self._decode()
        return self._messages

    @property
    def senders(self) -> dict[str, list[str]]:
        """destination -> the source_addr of each of its messages, as `messages` lists them
        (each SMSC of a pool sends with its own sender)."""
        self._decode()
        return self._senders

    def _decode(self) -> None:
        entries = self._entries
        for i in range(self._decoded, len(entries)):
            number, source, text = _decode_entry(entries[i])
            self._messages.setdefault(number, []).append(text)
            self._senders.setdefault(number, []).append(source)
        self._decoded = len(entries)

    @property
    def message_count(self) -> int:
        """Messages complete so far (single parts and reassembled ones)."""
        return len(self._entries)

    def incomplete(self) -> int:
        """Parts of concatenated messages still waiting for their other parts."""
        return sum(len(parts) for _, parts in self.pending.values())

    def clear(self) -> None:
        """Forget everything received (between phases of a test)."""
        self.parts_received = 0
        self.duplicate_parts = 0
        self.pending.clear()
        self._entries.clear()
        self._decoded = 0
        self._messages = {}
        self._senders = {}


def _decode_entry(entry: bytes) -> tuple[str, str, str]:
    """(destination, source, text) of one recorded message."""
    kind = entry[0]
    if kind == _OCTETS:
        end = 3 + entry[2]
        number = entry[3:end].decode("ascii")
        source_end = end + 1 + entry[end]
        source = entry[end + 1 : source_end].decode("ascii")
        return number, source, decode_short_message(entry[source_end:], entry[1])
    if kind == _TEXT:
        end = 2 + entry[1]
        number = entry[2:end].decode("ascii")
        source_end = end + 1 + entry[end]
        source = entry[end + 1 : source_end].decode("ascii")
        return number, source, entry[source_end:].decode("utf-8")
    pdu = decode_short_message_pdu(entry)
    data = pdu.user_data
    if pdu.esm_class & _UDHI:  # a UDH without concatenation (ports...)
        data = data[1 + data[0] :]
    return pdu.destination_addr, pdu.source_addr, decode_short_message(data, pdu.data_coding)
