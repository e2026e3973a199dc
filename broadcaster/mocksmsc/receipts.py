"""Delivery receipts: which accepted part gets one, with which stat and when, the bind it goes
to, and its deliver_sm.

A part that asked for a receipt (registered_delivery 1: always, 2: on failure only) gets a stat
drawn from `receipt_mix`; it may be dropped (`receipt_drop_rate`) or made unmatchable
(`malformed_receipt_rate`), and is due `receipt_delay_ms` ± `receipt_jitter_ms` later. When
due it goes to the bind the part came on if that one can receive, else to the first open
receiver or transceiver bind of the same system_id, else it waits (`pending`) for one to bind.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

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

    def send_receipts(self, receipts: list[DueReceipt]) -> None: ...


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


def receipt_text(part: Part) -> str:
    """The first 20 characters of the part's text, those not safe in a receipt as dots."""
    text = decode_short_message(part.user_data, part.data_coding)[:20]
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


def receiver_for(receipt: DueReceipt, receivers: Collection[Receiver]) -> Receiver | None:
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
        self._due: DueQueue[DueReceipt] | None = None

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
        if self._due is None:
            self._due = DueQueue(asyncio.get_running_loop(), self._release)
        self._due.push(self._delay_s(), receipt)

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

    def _release(self, receipts: list[DueReceipt]) -> None:
        by_receiver: dict[Receiver, list[DueReceipt]] = {}
        for receipt in receipts:
            receiver = receiver_for(receipt, self.receivers)
            if receiver is None:
                self.pending.setdefault(receipt.system_id, []).append(receipt)
            else:
                by_receiver.setdefault(receiver, []).append(receipt)
        for receiver, batch in by_receiver.items():
            receiver.send_receipts(batch)
        self.released()
