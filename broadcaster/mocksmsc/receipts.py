"""Delivery receipts: which accepted part gets one, with which stat and when, the bind it goes
to, and its deliver_sm.

A part that asked for a receipt (registered_delivery 1: always, 2: on failure only) gets a stat
drawn from `receipt_mix`; it may be dropped (`receipt_drop_rate`) or made unmatchable
(`malformed_receipt_rate`), and is due `receipt_delay_ms` ± `receipt_jitter_ms` later. When
due it goes to the bind the part came on if that one can receive, else to the first open
receiver or transceiver bind of the same system_id, else it waits (`pending`) for one to bind.

The fast path hands over the parts of a run at once (`schedule_run`): the same draws, in the
same order, as part by part, but one `ReceiptRun` in the due queue (without jitter) instead of a
`DueReceipt` each, and its deliver_sm written from a template (`ReceiptTemplates`) made by
`encode_receipt` itself: 26,000 parts/s with receipts before, see loadtest/mock_receipts.py.
"""

from __future__ import annotations

import asyncio
import random
import struct
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from broadcaster.mocksmsc.fastpath import RECEIPT_TAIL, TakenPart
from broadcaster.mocksmsc.scenario import MockConfig
from broadcaster.mocksmsc.timers import DueQueue
from broadcaster.mocksmsc.validation import Part
from broadcaster.smpp.codec import encode_data_sm, encode_deliver_sm, encode_tlv
from broadcaster.smpp.constants import TAG_MESSAGE_PAYLOAD
from broadcaster.smpp.receipts import format_receipt, receipt_tlvs
from broadcaster.text.encoding import decode_short_message

_RECEIPT_ERR: Final = {"DELIVRD": "000", "UNDELIV": "001", "REJECTD": "002"}
_RECEIPT_TEXT_SAFE: Final = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 !\"#%&'()*+,-./:;<=>?"
)
"""Characters with the same code in ASCII and GSM 03.38 (receipt text is sent as data_coding 0)."""
_ON_FAILURE_ONLY: Final = 2
_UDHI: Final = 0x40
_FAST_UDH: Final = 6
"""Octets of the UDH of a part the fast path takes (an 8-bit-reference concatenation)."""
_KIND_CACHE: Final = 4096
_ID_SENTINEL: Final = "\x7f" * 16
"""Stands for the message id in a template (message ids are 16 hex digits)."""
_HANDSET_SENTINEL: Final = "\x7e"
"""Stands for each digit of the handset in a template (handsets are digits)."""
_HEADER: Final = struct.Struct("!IIII")
_MAX_SEQUENCE: Final = 0x7FFFFFFF


class Receiver(Protocol):
    """A bind receipts may be sent on (the session, seen from here)."""

    @property
    def index(self) -> int: ...
    @property
    def system_id(self) -> str: ...
    @property
    def receiving(self) -> bool:
        """Bound as receiver or transceiver, and not closing."""
        ...

    def send_receipts(self, receipts: Sequence[DueReceipt | ReceiptRun]) -> None: ...


@dataclass(slots=True)
class DueReceipt:
    system_id: str
    origin: Receiver
    message_id: str
    source: str
    """The receipt's source_addr: the handset (the part's destination)."""
    destination: str
    """The receipt's destination_addr: the part's source_addr."""
    stat: str
    submitted: datetime
    text: str
    malformed: bool


FastReceipt = tuple[int, bytes, bytes, str, str, bool]
"""A receipt of a run (`ReceiptRun`), what differs from one part to the next: (message id as a
number, handset (the part's destination: the receipt's source_addr), sender (the part's
source_addr: the receipt's destination_addr), stat, text, malformed). A plain tuple: one is
made per part at 200,000 parts/s."""


@dataclass(slots=True)
class ReceiptRun:
    """The receipts of a run of parts taken by the fast path on one bind, due together."""

    system_id: str
    origin: Receiver
    submitted: datetime
    receipts: list[FastReceipt]

    def due_receipts(self) -> Iterator[DueReceipt]:
        """One `DueReceipt` each (to wait for a receiver like those of the strict path)."""
        for message_id, handset, sender, stat, text, malformed in self.receipts:
            yield DueReceipt(
                system_id=self.system_id,
                origin=self.origin,
                message_id=f"{message_id:016X}",
                source=handset.decode("ascii"),
                destination=sender.decode("ascii"),
                stat=stat,
                submitted=self.submitted,
                text=text,
                malformed=malformed,
            )


def receipt_text(part: Part) -> str:
    """The first 20 characters of the part's text, those not safe in a receipt as dots."""
    return _safe_text(part.user_data, part.data_coding)


def _safe_text(user_data: bytes, data_coding: int) -> str:
    text = decode_short_message(user_data, data_coding)[:20]
    return "".join(c if c in _RECEIPT_TEXT_SAFE else "." for c in text)


def encode_receipt(
    receipt: DueReceipt,
    sequence: int,
    done: datetime,
    twelve_digit_dates: bool,
    tlv: bool,
    decimal_id: bool = False,
    *,
    pdu: str = "deliver_sm",
    with_text: bool = True,
) -> bytes:
    """The deliver_sm of a receipt: the text (without its id when malformed), with the
    receipted_message_id and message_state TLVs when `tlv` (never when malformed). With
    `decimal_id` the text writes in decimal the id the submit_sm_resp gave in hex (the TLV
    keeps it as given), as many SMSCs do."""
    text = format_receipt(
        message_id=str(int(receipt.message_id, 16)) if decimal_id else receipt.message_id,
        stat=receipt.stat,
        submit_date=receipt.submitted,
        done_date=done,
        err=_RECEIPT_ERR.get(receipt.stat, "000"),
        text=receipt.text,
        seconds=twelve_digit_dates,
    )
    tlvs = b""
    if receipt.malformed:
        text = text.split(" ", 1)[1]  # no "id:..."
    elif tlv:
        tlvs = receipt_tlvs(receipt.message_id, receipt.stat)
    if not with_text and tlvs:
        text = ""  # TLV only (`receipt_text` off; a malformed receipt keeps its text)
    source_digits = receipt.destination.isdigit()
    if pdu == "data_sm":
        payload = encode_tlv(TAG_MESSAGE_PAYLOAD, text.encode("ascii")) if text else b""
        return encode_data_sm(
            sequence,
            source_addr=receipt.source,
            destination_addr=receipt.destination,
            esm_class=0x04,
            tlvs=tlvs + payload,
        )
    return encode_deliver_sm(
        sequence,
        source_addr=receipt.source,
        destination_addr=receipt.destination,
        dest_ton=1 if source_digits else 5,
        dest_npi=1 if source_digits else 0,
        esm_class=0x04,
        short_message=text.encode("ascii"),
        tlvs=tlvs,
    )


class ReceiptTemplates:
    """deliver_sm of the receipts of runs from templates: `encode_receipt` once per kind of
    receipt (sender, handset length, stat, text, run), with sentinels where the handset and the
    message id go, then per receipt a header and one %-format. The same octets as
    `encode_receipt` (tests); ids in decimal (their length varies) go through it each."""

    __slots__ = ("_config", "_done", "_templates")

    def __init__(self, config: MockConfig, done: datetime) -> None:
        self._config = config
        self._done = as_written(done, config.receipt_12_digit_dates)
        self._templates: dict[_Key, _Template | None] = {}

    @property
    def done(self) -> datetime:
        """The done date its receipts write (to the minute, or the second): a session keeps
        the templates while it stays the same."""
        return self._done

    def encode_run(self, run: ReceiptRun, last_sequence: int, out: list[bytes]) -> None:
        """Append to `out` the deliver_sm (or data_sm) of each receipt of `run`, numbered on
        from `last_sequence` (the bind's last outgoing sequence number)."""
        templates = self._templates
        submitted = as_written(run.submitted, self._config.receipt_12_digit_dates)
        pack = _HEADER.pack
        previous: tuple[bytes, int, str, str, bool] | None = None
        template: _Template | None = None
        for i, (message_id, handset, sender, stat, text, malformed) in enumerate(run.receipts):
            seq = (last_sequence + i) % _MAX_SEQUENCE + 1
            kind = (sender, len(handset), stat, text, malformed)
            if kind != previous:
                previous = kind
                key = (*kind, submitted)
                if key not in templates:
                    templates[key] = self._template(key)
                template = templates[key]
            if template is None:
                ident = f"{message_id:016X}"
                due = _due(
                    ident, handset.decode(), sender.decode(), stat, submitted, text, malformed
                )
                out.append(self._encode(due, seq))
                continue
            length, command_id, body, ids = template
            out.append(
                pack(length, command_id, 0, seq) + body % (handset, *(b"%016X" % message_id,) * ids)
            )

    def _encode(self, due: DueReceipt, seq: int) -> bytes:
        config = self._config
        return encode_receipt(
            due,
            seq,
            self._done,
            config.receipt_12_digit_dates,
            config.receipt_tlv,
            config.receipt_decimal_ids,
            pdu=config.receipt_pdu,
            with_text=config.receipt_text,
        )

    def _template(self, key: _Key) -> _Template | None:
        """The receipts of `key` as a template, or None when they cannot be (ids in decimal
        vary in length; a sender holding a sentinel)."""
        raw_sender, width, stat, text, malformed, submitted = key
        sender = raw_sender.decode("ascii")
        if self._config.receipt_decimal_ids or _HANDSET_SENTINEL in sender + text:
            return None
        if _ID_SENTINEL[0] in sender + text:
            return None
        handset = _HANDSET_SENTINEL * width
        due = _due(_ID_SENTINEL, handset, sender, stat, submitted, text, malformed)
        pdu = self._encode(due, 0)
        body = pdu[16:].replace(b"%", b"%%")
        at = body.find(handset.encode("ascii"))
        ident = _ID_SENTINEL.encode("ascii")
        if at < 0 or 0 <= body.find(ident) < at:  # the handset first, then the ids
            return None
        ids = body.count(ident)
        body = body.replace(handset.encode("ascii"), b"%s", 1).replace(ident, b"%s")
        if _HANDSET_SENTINEL.encode("ascii") in body or ident[:1] in body:
            return None
        return len(pdu), int.from_bytes(pdu[4:8], "big"), body, ids


def as_written(at: datetime, seconds: bool) -> datetime:
    """`at` to the precision a receipt's text writes it (YYMMDDhhmm, or ...ss): the receipts
    of every run within that minute (second) share their templates."""
    return at.replace(microsecond=0) if seconds else at.replace(second=0, microsecond=0)


_Key = tuple[bytes, int, str, str, bool, datetime]
"""(sender, handset length, stat, text, malformed, submitted)."""
_Template = tuple[int, int, bytes, int]
"""(command_length, command_id, body as a %-format of the handset then each id, ids)."""


def _due(
    message_id: str,
    handset: str,
    sender: str,
    stat: str,
    submitted: datetime,
    text: str,
    malformed: bool,
) -> DueReceipt:
    return DueReceipt(
        system_id="",
        origin=None,  # type: ignore[arg-type]  # encode_receipt does not use it
        message_id=message_id,
        source=handset,
        destination=sender,
        stat=stat,
        submitted=submitted,
        text=text,
        malformed=malformed,
    )


def receiver_for(
    receipt: DueReceipt | ReceiptRun, receivers: Collection[Receiver]
) -> Receiver | None:
    """The bind the receipt came from if it can receive, else the first (by index) open
    receiving bind of its system_id, else None."""
    if receipt.origin.receiving:
        return receipt.origin
    for receiver in sorted(receivers, key=lambda r: r.index):
        if receiver.receiving and receiver.system_id == receipt.system_id:
            return receiver
    return None


class ReceiptScheduler:
    """The receipts of one server: drawn, delayed, routed, or waiting for a receiver."""

    def __init__(
        self,
        config: MockConfig,
        rng: random.Random,
        receivers: Collection[Receiver],
        released: Callable[[], None],
    ) -> None:
        """`receivers`: the open connections (a live collection); `released()`: called after
        receipts were sent or set waiting."""
        self.config = config
        self.rng = rng
        self.receivers = receivers
        self.released = released
        self.pending: dict[str, list[DueReceipt]] = {}
        """Receipts waiting for a receiver or transceiver bind of their system_id."""
        self.dropped = 0
        """Receipts due but never sent (`receipt_drop_rate`)."""
        self._stats = [(s, p) for s, p in config.receipt_mix.items() if p > 0]
        self._due: DueQueue[DueReceipt | ReceiptRun] | None = None
        self._kinds: dict[tuple[bytes, bytes], tuple[int, str]] = {}
        only = len(self._stats) == 1 and not config.receipt_drop_rate
        self._only_stat = self._stats[0][0] if only and not config.malformed_receipt_rate else None
        """The stat of every receipt when the draws cannot give another (one per receipt all
        the same, as `_outcome` makes)."""

    @property
    def scheduled(self) -> int:
        """Receipts not due yet."""
        return len(self._due) if self._due is not None else 0

    @property
    def waiting(self) -> int:
        """Receipts due, waiting for a receiver."""
        return sum(len(receipts) for receipts in self.pending.values())

    def schedule(self, origin: Receiver, part: Part, message_id: str) -> None:
        """An accepted part: its receipt, if it asked for one and the draws keep it."""
        if not self.config.receipts or not part.registered_delivery & 3:
            return
        outcome = self._outcome(part.registered_delivery & 3)
        if outcome is None:
            return
        stat, malformed = outcome
        receipt = DueReceipt(
            system_id=origin.system_id,
            origin=origin,
            message_id=message_id,
            source=part.destination.decode("ascii"),
            destination=part.source.decode("ascii"),
            stat=stat,
            submitted=datetime.now(UTC).replace(tzinfo=None),
            text=receipt_text(part),
            malformed=malformed,
        )
        self._push(self._delay_s(), receipt)

    def _push(self, delay_s: float, item: DueReceipt | ReceiptRun) -> None:
        if self._due is None:
            self._due = DueQueue(asyncio.get_running_loop(), self._release)
        self._due.push(delay_s, item)

    def schedule_run(self, origin: Receiver, last_id: int, parts: list[TakenPart]) -> None:
        """The parts of a fast-path run (their ids end at `last_id`; what the fast path hands
        over of each, `fastpath.TakenPart`): the receipts of those that asked for one and that
        the draws keep, as `schedule` would (the same draws in the same order), in one item
        (one per receipt with jitter)."""
        if not self.config.receipts:
            return
        submitted = datetime.now(UTC).replace(tzinfo=None)
        jitter = self.config.receipt_jitter_ms
        run = ReceiptRun(origin.system_id, origin, submitted, [])
        receipts = run.receipts
        kinds = self._kinds
        only = self._only_stat
        random = self.rng.random
        message_id = last_id - len(parts)
        for sender, handset, tail in parts:
            message_id += 1
            key = (sender, tail)
            kind = kinds.get(key) or self._kind(key)
            delivery, text = kind
            if not delivery:
                continue
            if only is not None:  # `_outcome` without the calls: one draw, always this stat
                random()
                if delivery == _ON_FAILURE_ONLY and only == "DELIVRD":
                    continue
                stat, malformed = only, False
            else:
                drawn = self._outcome(delivery)
                if drawn is None:
                    continue
                stat, malformed = drawn
            receipt = (message_id, handset, sender, stat, text, malformed)
            if jitter:
                self._push(self._delay_s(), ReceiptRun(run.system_id, origin, submitted, [receipt]))
            else:
                receipts.append(receipt)
        if receipts:
            self._push(self._delay_s(), run)

    def _kind(self, key: tuple[bytes, bytes]) -> tuple[int, str]:
        """(registered_delivery & 3, receipt text) of the parts of a sender and a tail (from
        the NUL ending the destination_addr), kept for the next parts."""
        m = RECEIPT_TAIL.fullmatch(key[1])
        assert m is not None  # the fast path took the part
        esm_class, delivery, coding, user_data = m.groups()
        if esm_class[0] & _UDHI:
            user_data = user_data[_FAST_UDH:]
        if len(self._kinds) >= _KIND_CACHE:
            self._kinds.clear()
        kind = self._kinds[key] = (delivery[0] & 3, _safe_text(user_data, coding[0]))
        return kind

    def flush_pending(self, receiver: Receiver) -> None:
        """A receiving bind is up: the receipts waiting for its system_id go to it."""
        waiting = self.pending.pop(receiver.system_id, None)
        if waiting:
            receiver.send_receipts(waiting)
            self.released()

    def cancel(self) -> None:
        """The server stops: receipts not due yet are never sent."""
        if self._due is not None:
            self._due.cancel()

    def _outcome(self, registered_delivery: int) -> tuple[str, bool] | None:
        """(stat, malformed) of a receipt, or None when none is sent (the draws are made in
        this order: stat, drop, malformed)."""
        config, rng = self.config, self.rng
        stat = self._draw_stat()
        if registered_delivery == _ON_FAILURE_ONLY and stat == "DELIVRD":
            return None
        if config.receipt_drop_rate and rng.random() < config.receipt_drop_rate:
            self.dropped += 1
            return None
        rate = config.malformed_receipt_rate
        return stat, bool(rate and rng.random() < rate)

    def _draw_stat(self) -> str:
        draw = self.rng.random()
        for stat, probability in self._stats:
            if draw < probability:
                return stat
            draw -= probability
        return self._stats[-1][0]

    def _delay_s(self) -> float:
        delay = self.config.receipt_delay_ms
        jitter = self.config.receipt_jitter_ms
        if jitter:
            delay = max(0.0, delay + self.rng.uniform(-jitter, jitter))
        return delay / 1000

    def _release(self, receipts: list[DueReceipt | ReceiptRun]) -> None:
        by_receiver: dict[Receiver, list[DueReceipt | ReceiptRun]] = {}
        for receipt in receipts:
            receiver = receiver_for(receipt, self.receivers)
            if receiver is not None:
                by_receiver.setdefault(receiver, []).append(receipt)
            elif isinstance(receipt, ReceiptRun):
                self.pending.setdefault(receipt.system_id, []).extend(receipt.due_receipts())
            else:
                self.pending.setdefault(receipt.system_id, []).append(receipt)
        for receiver, batch in by_receiver.items():
            receiver.send_receipts(batch)
        self.released()
