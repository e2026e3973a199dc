"""What the mock SMSC received, so tests can assert "each recipient got exactly this text once".

Recording must not slow the fast path: each accepted part is appended as raw bytes, and texts
are decoded and concatenated parts reassembled only when `messages` is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from broadcaster.text.encoding import decode_short_message

_UDHI = 0x40


@dataclass
class Record:
    """Accepted submit_sm parts, and the messages they make once reassembled."""

    parts_received: int = 0
    _raw: list[tuple[str, str, int, int, bytes]] = field(default_factory=list)
    _done: int = 0
    _messages: dict[str, list[str]] = field(default_factory=dict)
    _pending: dict[tuple[str, str, int], dict[int, tuple[int, bytes]]] = field(default_factory=dict)
    _totals: dict[tuple[str, str, int], int] = field(default_factory=dict)
    duplicate_parts: int = 0
    """Parts of a concatenated message received twice while the message was incomplete."""

    def add(
        self, source: str, destination: str, esm_class: int, data_coding: int, data: bytes
    ) -> None:
        self._raw.append((source, destination, esm_class, data_coding, data))
        self.parts_received += 1

    @property
    def messages(self) -> dict[str, list[str]]:
        """destination -> texts, in arrival order (concatenated ones once complete)."""
        raw = self._raw
        for i in range(self._done, len(raw)):
            self._ingest(*raw[i])
        self._done = len(raw)
        return self._messages

    def incomplete(self) -> int:
        """Parts of concatenated messages still waiting for their other parts."""
        self.messages  # noqa: B018 - brings the reassembly up to date
        return sum(len(p) for p in self._pending.values())

    def _ingest(
        self, source: str, destination: str, esm_class: int, data_coding: int, data: bytes
    ) -> None:
        if not esm_class & _UDHI or len(data) < 6:
            self._messages.setdefault(destination, []).append(
                decode_short_message(data, data_coding)
            )
            return
        udhl = data[0]
        header, body = data[1 : 1 + udhl], data[1 + udhl :]
        if header[0] == 0x00:  # 8-bit reference
            ref, total, seq = header[2], header[3], header[4]
        else:  # 0x08: 16-bit reference
            ref, total, seq = (header[2] << 8) | header[3], header[4], header[5]
        key = (source, destination, ref)
        parts = self._pending.setdefault(key, {})
        if seq in parts:
            self.duplicate_parts += 1
        parts[seq] = (data_coding, body)
        self._totals[key] = total
        if len(parts) == total:
            text = "".join(
                decode_short_message(body, dc) for _, (dc, body) in sorted(parts.items())
            )
            self._messages.setdefault(destination, []).append(text)
            del self._pending[key]
            del self._totals[key]
