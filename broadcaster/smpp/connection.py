"""One SMPP 3.4 ESME connection without I/O: bytes in, events out; calls in, bytes out.

In the manner of h11: no asyncio, no socket, no clock (every call that needs the time is given
`now`). The caller writes what the calls return (`bind`, `submit`, `enquire_link`, `unbind`)
and feeds what it reads to `receive_data`, which returns one `Received` per read: the final
outcome of each part answered, the parts throttled, the protocol events, and the bytes to write
in answer (enquire_link_resp, deliver_sm_resp, unbind_resp, generic_nack).

The connection owns what belongs to one TCP connection: sequence numbers (wrapping at
0x7FFFFFFF), the parts in flight by sequence number (oldest first), the bind state (a table,
`TRANSITIONS`), the frame buffer, and the facts about the peer's liveness (when it last
answered, its response latency, an enquire_link waiting for its answer).

The hot path stays flat: `submit` splices a batch of parts into one bytes object, and
`receive_data` decodes a read's worth of submit_sm_resp into plain (part, status, message_id)
tuples; only what is rare (receipts, anomalies) becomes an event object.

Errors are split as in h11: a call that is not allowed in the current state is our mistake
(`LocalProtocolError`); whatever the peer sends is data, never an exception: a PDU we cannot
use is answered and reported as an event, and a broken length field (the stream cannot be
resynchronised) is the `StreamCorrupt` event, after which the caller must drop the connection.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, Generic, Protocol, TypeAlias, TypeVar

from broadcaster.errors import SmppError, SmppProtocolError
from broadcaster.smpp import codec, policy
from broadcaster.smpp.constants import RESPONSE_BIT, TRANSIENT_STATUSES, CommandId, Status
from broadcaster.smpp.receipts import Receipt, read_receipt, read_receipt_pdu

MAX_SEQUENCE: Final = 0x7FFFFFFF
"""The last sequence number (SMPP 3.4 §5.1.4); the next one is 1 again."""
LATENCY_GAIN: Final = 0.1
"""Weight of the newest sample in the moving average of response latency."""

_SUBMIT_SM_RESP: Final = int(CommandId.SUBMIT_SM_RESP)
_DELIVER_SM: Final = int(CommandId.DELIVER_SM)
_TRANSIENT: Final = frozenset(int(s) for s in TRANSIENT_STATUSES)
_HEADER_LENGTH: Final = codec.HEADER_LENGTH
_MESSAGE_ID_END: Final = codec.HEADER_LENGTH + codec.MESSAGE_ID_SIZE
_BIND_COMMAND: Final = {
    "transmitter": int(CommandId.BIND_TRANSMITTER),
    "transceiver": int(CommandId.BIND_TRANSCEIVER),
    "receiver": int(CommandId.BIND_RECEIVER),
}
_BIND_RESP: Final = {
    "transmitter": int(CommandId.BIND_TRANSMITTER_RESP),
    "transceiver": int(CommandId.BIND_TRANSCEIVER_RESP),
    "receiver": int(CommandId.BIND_RECEIVER_RESP),
}


class Submittable(Protocol):
    """What the connection needs of a caller's part: the pool's `Part` is one."""

    templates: tuple[codec.SubmitTemplate, ...]
    """One pre-encoded submit_sm per SMSC; a connection writes its `template_index`'th."""
    destination: bytes
    submitted_at: float
    """Set by `submit` to the `now` of the latest write."""


P = TypeVar("P", bound=Submittable)

Outcome: TypeAlias = tuple[P, int, str | None]
"""(part, status, message_id): status 0 accepted (message_id as received, None when
unreadable), any other status a final failure (message_id None)."""


class LocalProtocolError(SmppError):
    """We asked the connection for something its state does not allow (a bug of the caller)."""


# --------------------------------------------------------------------------------------------
# Events: what the peer did, beyond answering parts.


@dataclass(frozen=True, slots=True)
class Event:
    """Something the peer did that the caller may act on, count or log."""


@dataclass(frozen=True, slots=True)
class BindAccepted(Event):
    """The SMSC accepted our bind: parts may be submitted."""


@dataclass(frozen=True, slots=True)
class BindRefused(Event):
    """The SMSC refused our bind (a generic_nack or another answer counts as refusal)."""

    status: int


@dataclass(frozen=True, slots=True)
class EnquireLinkAnswered(Event):
    """Our keep-alive was answered: the peer is there."""


@dataclass(frozen=True, slots=True)
class UnbindAnswered(Event):
    """The SMSC answered our unbind: the caller may close."""


@dataclass(frozen=True, slots=True)
class UnbindRequested(Event):
    """The SMSC unbound us (already answered): the caller closes the connection."""


@dataclass(frozen=True, slots=True)
class ReceiptUnreadable(Event):
    """A delivery receipt naming no message (acknowledged all the same)."""

    text: str


@dataclass(frozen=True, slots=True)
class AlertNotified(Event):
    """An alert_notification (a handset became reachable): SMPP 3.4 defines no response."""

    source: str


@dataclass(frozen=True, slots=True)
class MoMessage(Event):
    """A subscriber's message (acknowledged; not our business)."""


@dataclass(frozen=True, slots=True)
class DeliverSmMalformed(Event):
    """A deliver_sm or data_sm we could not decode (answered with the status saying why)."""

    error: str


@dataclass(frozen=True, slots=True)
class UnknownCommand(Event):
    """A request we do not know (answered with generic_nack ESME_RINVCMDID)."""

    command_id: int
    sequence: int


@dataclass(frozen=True, slots=True)
class UnexpectedResponse(Event):
    """A response to nothing we are waiting for (bogus, or a duplicate)."""

    command_id: int
    sequence: int


@dataclass(frozen=True, slots=True)
class LateResponse(Event):
    """A submit_sm_resp for no part in flight: answered after its timeout, or bogus."""

    sequence: int


@dataclass(frozen=True, slots=True)
class GenericNack(Event):
    """The SMSC could not read one of our PDUs; if it was a part, that part's outcome is in
    the same `Received` (`named_part`)."""

    status: int
    sequence: int
    named_part: bool


@dataclass(frozen=True, slots=True)
class MessageIdUnreadable(Event):
    """A part was accepted but its message_id cannot be read: kept accepted, id None."""

    sequence: int


@dataclass(frozen=True, slots=True)
class StreamCorrupt(Event):
    """A broken length field: the stream cannot be resynchronised; drop the connection."""

    error: str


class Received(Generic[P]):
    """What one `receive_data` call found; each list in the order the PDUs came."""

    __slots__ = ("accepted", "events", "outcomes", "receipts", "replies", "throttled")

    def __init__(self) -> None:
        self.outcomes: list[Outcome[P]] = []
        """Final outcomes of parts (accepted, or failed with the status)."""
        self.throttled: list[tuple[P, int]] = []
        """(part, status) answered ESME_RTHROTTLED / ESME_RMSGQFUL: to be sent again."""
        self.accepted = 0
        """Parts accepted by submit_sm_resp (those in `outcomes` with status 0)."""
        self.receipts: list[Receipt] = []
        """Delivery receipts read (each already answered): one per part sent, so beside the
        events, not one of them (an event object each cost a third of a microsecond)."""
        self.events: list[Event] = []
        self.replies: list[bytes] = []

    @property
    def answered(self) -> int:
        """Parts answered at all (outcomes and throttled, generic_nack included)."""
        return len(self.outcomes) + len(self.throttled)

    @property
    def to_send(self) -> bytes:
        """The answers to write to the peer, in order (b"" when none)."""
        return b"".join(self.replies)


# --------------------------------------------------------------------------------------------
# The bind state machine


class ConnectionState(enum.Enum):
    """Where the bind stands; only `TRANSITIONS` moves it."""

    CONNECTING = "connecting"
    BINDING = "binding"
    BOUND = "bound"
    UNBINDING = "unbinding"
    CLOSED = "closed"


class Trigger(enum.Enum):
    """What moves the bind state: our calls (SEND_*) and what the peer does."""

    SEND_BIND = "send bind"
    BIND_ACCEPTED = "bind accepted"
    BIND_REFUSED = "bind refused"
    SEND_UNBIND = "send unbind"
    UNBIND_RECEIVED = "unbind received"
    STREAM_CORRUPT = "stream corrupt"
    CONNECTION_LOST = "connection lost"


_CONNECTING, _BINDING, _BOUND, _UNBINDING, _CLOSED = ConnectionState
TRANSITIONS: Final[dict[ConnectionState, dict[Trigger, ConnectionState]]] = {
    _CONNECTING: {Trigger.SEND_BIND: _BINDING, Trigger.CONNECTION_LOST: _CLOSED},
    _BINDING: {
        Trigger.BIND_ACCEPTED: _BOUND,
        Trigger.BIND_REFUSED: _CLOSED,
        Trigger.UNBIND_RECEIVED: _UNBINDING,
        Trigger.STREAM_CORRUPT: _CLOSED,
        Trigger.CONNECTION_LOST: _CLOSED,
    },
    _BOUND: {
        Trigger.SEND_UNBIND: _UNBINDING,
        Trigger.UNBIND_RECEIVED: _UNBINDING,
        Trigger.STREAM_CORRUPT: _CLOSED,
        Trigger.CONNECTION_LOST: _CLOSED,
    },
    _UNBINDING: {
        Trigger.UNBIND_RECEIVED: _UNBINDING,
        Trigger.STREAM_CORRUPT: _CLOSED,
        Trigger.CONNECTION_LOST: _CLOSED,
    },
    _CLOSED: {Trigger.CONNECTION_LOST: _CLOSED},
}
"""State -> trigger -> next state. A call of ours not listed for the current state raises
`LocalProtocolError`; a peer's trigger not listed leaves the state as it is (a confused SMSC
is answered, never obeyed into an impossible state)."""


# --------------------------------------------------------------------------------------------
# The connection

_Handler: TypeAlias = Callable[["Received[P]", bytes, codec.Header, float], None]
"""(received, pdu, its header, now): what to do with one PDU other than submit_sm_resp."""


class SmppConnection(Generic[P]):
    """The ESME side of one SMPP 3.4 connection to an SMSC; see the module docstring."""

    def __init__(
        self,
        *,
        system_id: str,
        password: str,
        system_type: str = "",
        bind_mode: str = "transceiver",
        window: int = 64,
        response_timeout: float = 5.0,
        template_index: int = 0,
        now: float = 0.0,
        last_sequence: int = 0,
    ) -> None:
        if bind_mode not in _BIND_COMMAND:
            raise ValueError(f"bind_mode {bind_mode!r} is not one of {sorted(_BIND_COMMAND)}")
        if not 0 <= last_sequence <= MAX_SEQUENCE:
            raise ValueError(f"last_sequence {last_sequence} is outside 0..{MAX_SEQUENCE}")
        self.system_id = system_id
        self.password = password
        self.system_type = system_type
        self.bind_mode = bind_mode
        self.window = window
        self.response_timeout = response_timeout
        self.template_index = template_index
        """Which of a part's `templates` this connection writes (its SMSC's number)."""
        self.state = ConnectionState.CONNECTING
        self.inflight: dict[int, P] = {}
        """Parts written and not answered, by sequence number, oldest first."""
        self.last_received = now
        """When the peer last sent anything."""
        self.waiting_since = now
        """When the last part was answered, or the first part was sent into an empty window."""
        self.latency = 0.0
        """Moving average of submit_sm_resp latency, seconds."""
        self.stall_after = policy.STALL_MIN
        """Silence (seconds, with parts in flight) after which the peer counts as stalled."""
        self.enquire_sent_at: float | None = None
        """When our unanswered enquire_link was sent (None: none waiting)."""
        self._sequence = last_sequence
        self._bind_sequence = 0
        self._unbind_sequence = 0
        self._frames = codec.FrameBuffer()
        self._requests: dict[int, _Handler[P]] = {
            int(CommandId.DELIVER_SM): self._on_deliver_sm,
            int(CommandId.ENQUIRE_LINK): self._on_enquire_link,
            int(CommandId.UNBIND): self._on_unbind,
            int(CommandId.DATA_SM): self._on_data_sm,
            int(CommandId.ALERT_NOTIFICATION): self._on_alert_notification,
        }
        self._responses: dict[int, _Handler[P]] = {
            int(CommandId.ENQUIRE_LINK_RESP): self._on_enquire_link_resp,
            int(CommandId.GENERIC_NACK): self._on_generic_nack,
            int(CommandId.UNBIND_RESP): self._on_unbind_resp,
        }

    # -- state -------------------------------------------------------------------------------

    def _send(self, trigger: Trigger) -> None:
        """Our call: move the state, or refuse the call if the table does not allow it."""
        following = TRANSITIONS[self.state].get(trigger)
        if following is None:
            raise LocalProtocolError(f"cannot {trigger.value} while {self.state.value}")
        self.state = following

    def _peer(self, trigger: Trigger) -> None:
        """The peer's doing: move the state if the table allows it, else leave it."""
        self.state = TRANSITIONS[self.state].get(trigger, self.state)

    def _next_sequence(self) -> int:
        self._sequence = self._sequence + 1 if self._sequence < MAX_SEQUENCE else 1
        return self._sequence

    # -- calls in, bytes out -----------------------------------------------------------------

    def bind(self) -> bytes:
        """The bind PDU to write first."""
        self._send(Trigger.SEND_BIND)
        self._bind_sequence = self._next_sequence()
        return codec.encode_bind(
            _BIND_COMMAND[self.bind_mode],
            self._bind_sequence,
            system_id=self.system_id,
            password=self.password,
            system_type=self.system_type,
        )

    def submit(self, parts: Sequence[P], now: float) -> bytes:
        """The submit_sm PDUs of `parts`, in one bytes object; each part is now in flight.

        The caller checked `room`. This is the hot path: one splice per part, nothing else.
        """
        if self.state is not ConnectionState.BOUND:
            raise LocalProtocolError(f"cannot submit while {self.state.value}")
        if self.bind_mode == "receiver":
            raise LocalProtocolError("cannot submit on a receiver bind")
        inflight = self.inflight
        if not inflight:
            self.waiting_since = now
        index = self.template_index
        seq = self._sequence
        chunks: list[bytes] = []
        append = chunks.append
        for part in parts:
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
            part.submitted_at = now
            inflight[seq] = part
            append(part.templates[index].encode(seq, part.destination))
        self._sequence = seq
        return b"".join(chunks)

    def enquire_link(self, now: float) -> bytes:
        """A keep-alive; `stalled` says when it has gone unanswered too long."""
        if self.state is not ConnectionState.BOUND:
            raise LocalProtocolError(f"cannot enquire_link while {self.state.value}")
        self.enquire_sent_at = now
        return codec.encode_enquire_link(self._next_sequence())

    def unbind(self) -> bytes:
        """The polite end: an unbind; `UnbindAnswered` comes when the SMSC agrees."""
        self._send(Trigger.SEND_UNBIND)
        self._unbind_sequence = self._next_sequence()
        return codec.encode_unbind(self._unbind_sequence)

    def connection_lost(self) -> list[P]:
        """The transport is gone: the parts still in flight (oldest first), for the caller
        to send again or record."""
        self._peer(Trigger.CONNECTION_LOST)
        orphans = list(self.inflight.values())
        self.inflight.clear()
        return orphans

    def expire(self, now: float, timeout: float) -> list[P]:
        """Remove and return the parts in flight for longer than `timeout` (oldest first)."""
        expired: list[P] = []
        inflight = self.inflight
        for sequence, part in list(inflight.items()):
            if now - part.submitted_at <= timeout:
                break
            del inflight[sequence]
            expired.append(part)
        return expired

    # -- liveness ----------------------------------------------------------------------------

    def oldest_inflight_sent(self) -> float | None:
        """When the oldest part in flight was written (None: nothing in flight)."""
        for part in self.inflight.values():
            return part.submitted_at
        return None

    def silent(self, now: float) -> bool:
        """True when no part was answered for longer than the stall threshold."""
        return now - self.waiting_since > self.stall_after

    def stalled(self, now: float) -> bool:
        """True when the SMSC seems not to answer: parts in flight and nothing back for too
        long, or a keep-alive unanswered for as long. Such a connection gets no new parts."""
        if self.inflight and now - self.waiting_since > self.stall_after:
            return True
        sent = self.enquire_sent_at
        return sent is not None and now - sent > self.stall_after

    @property
    def receive_only(self) -> bool:
        """A receiver bind: receipts come in, no part may go out."""
        return self.bind_mode == "receiver"

    def room(self, now: float) -> int:
        """Parts the window admits now: 0 unless bound (not as a receiver) and answering."""
        if self.state is not ConnectionState.BOUND or self.bind_mode == "receiver":
            return 0
        inflight = len(self.inflight)
        room = self.window - inflight
        if room <= 0:
            return 0
        if inflight and now - self.waiting_since > self.stall_after:
            return 0  # silent with parts in flight: send nothing more until it answers
        if self.enquire_sent_at is not None and now - self.enquire_sent_at > self.stall_after:
            return 0  # a keep-alive unanswered: the same
        return room

    # -- bytes in, events out ----------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> Received[P]:
        """Everything the PDUs completed by `data` say, and the answers to write."""
        self.last_received = now
        received: Received[P] = Received()
        try:
            pdus = self._frames.feed(data)
        except SmppProtocolError as exc:
            self._corrupt(received, exc)
            return received
        inflight = self.inflight
        outcomes = received.outcomes
        unpack = codec.HEADER_FIELDS.unpack_from
        transient = _TRANSIENT
        find = bytes.find
        latest: P | None = None
        accepted = 0
        for pdu in pdus:
            command_id, status, sequence = unpack(pdu, 4)
            if command_id != _SUBMIT_SM_RESP:
                if command_id != _DELIVER_SM or not self._on_receipt(received, pdu, sequence):
                    self._on_other(received, pdu, command_id, status, sequence, now)
                continue
            part = inflight.pop(sequence, None)
            if part is None:
                received.events.append(LateResponse(sequence))
                continue
            latest = part
            if status == 0:
                # message_id: a C-string right after the header (what decode_submit_sm_resp
                # reads, inlined without its checks: this runs once per part).
                nul = find(pdu, b"\0", _HEADER_LENGTH, _MESSAGE_ID_END)
                if nul > 0:
                    outcomes.append((part, 0, pdu[_HEADER_LENGTH:nul].decode("latin-1")))
                else:  # accepted, but the id is unreadable: keep it accepted
                    outcomes.append((part, 0, None))
                    received.events.append(MessageIdUnreadable(sequence))
                accepted += 1
            elif status in transient:
                received.throttled.append((part, status))
            else:
                outcomes.append((part, status, None))
        if latest is not None:
            self._answered(latest, now)
        received.accepted = accepted
        if self._frames.error is not None:
            self._corrupt(received, self._frames.error)
        return received

    def _answered(self, latest: P, now: float) -> None:
        """Parts were answered, the last one `latest`: the peer is alive; learn its latency."""
        self.waiting_since = now
        sample = now - latest.submitted_at
        latency = self.latency
        self.latency = latency + LATENCY_GAIN * (sample - latency) if latency else sample
        self.stall_after = min(policy.stall_after(self.latency), self.response_timeout)

    def _corrupt(self, received: Received[P], exc: SmppProtocolError) -> None:
        self._peer(Trigger.STREAM_CORRUPT)
        received.events.append(StreamCorrupt(str(exc)))

    def _on_other(
        self,
        received: Received[P],
        pdu: bytes,
        command_id: int,
        status: int,
        sequence: int,
        now: float,
    ) -> None:
        """Any PDU but submit_sm_resp, by the tables of requests and responses."""
        if not command_id & RESPONSE_BIT:
            handler = self._requests.get(command_id, self._on_unknown_request)
        elif sequence == self._bind_sequence and self.state is ConnectionState.BINDING:
            handler = self._on_bind_resp
        else:
            handler = self._responses.get(command_id, self._on_unexpected_response)
        handler(received, pdu, codec.Header(len(pdu), command_id, status, sequence), now)

    def _on_bind_resp(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        status = header.status
        if header.command_id != _BIND_RESP[self.bind_mode] and status == 0:
            status = int(Status.ESME_RINVCMDID)  # a generic_nack or another answer to our bind
        if status != 0:
            self._peer(Trigger.BIND_REFUSED)
            received.events.append(BindRefused(status))
            return
        self._peer(Trigger.BIND_ACCEPTED)
        self.waiting_since = now
        received.events.append(BindAccepted())

    def _on_enquire_link_resp(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        self.enquire_sent_at = None
        received.events.append(EnquireLinkAnswered())

    def _on_unbind_resp(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        if header.sequence != self._unbind_sequence:
            self._on_unexpected_response(received, pdu, header, now)
            return
        received.events.append(UnbindAnswered())

    def _on_generic_nack(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        """If it names a part, that part's outcome: throttled, or failed with its status."""
        status, sequence = header.status, header.sequence
        part = self.inflight.pop(sequence, None)
        received.events.append(GenericNack(status, sequence, named_part=part is not None))
        if part is None:
            return
        self.waiting_since = now
        if status in _TRANSIENT:
            received.throttled.append((part, status))
        else:
            received.outcomes.append((part, status or Status.ESME_RUNKNOWNERR, None))

    def _on_unexpected_response(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        received.events.append(UnexpectedResponse(header.command_id, header.sequence))

    def _on_enquire_link(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        received.replies.append(codec.encode_enquire_link_resp(header.sequence))

    def _on_unbind(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        self._peer(Trigger.UNBIND_RECEIVED)
        received.replies.append(codec.encode_unbind_resp(header.sequence))
        received.events.append(UnbindRequested())

    def _on_unknown_request(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        received.replies.append(codec.encode_generic_nack(header.sequence, Status.ESME_RINVCMDID))
        received.events.append(UnknownCommand(header.command_id, header.sequence))

    def _on_receipt(self, received: Received[P], pdu: bytes, sequence: int) -> bool:
        """`_on_deliver_sm` of a receipt as SMSCs write them (`read_receipt_pdu`, else
        `codec.decode_receipt_fields`), the same reply and event in a fraction of the time
        (one per part sent); False, having done nothing, for any other deliver_sm."""
        usual = read_receipt_pdu(pdu)
        if usual is not None:  # the usual receipt, in one match
            received.replies.append(codec.encode_deliver_sm_resp(sequence, 0))
            received.receipts.append(usual)
            return True
        fields = codec.decode_receipt_fields(pdu)
        if fields is None:
            return False
        received.replies.append(codec.encode_deliver_sm_resp(sequence, 0))
        source, data_coding, user_data, tlvs = fields
        _receipt_read(received, read_receipt(user_data, data_coding, tlvs, source))
        return True

    def _on_deliver_sm(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        """Acknowledge a deliver_sm; a receipt becomes an event; never drop the bind over it."""
        try:
            message = codec.decode_short_message_pdu(pdu)
        except SmppProtocolError as exc:
            received.events.append(DeliverSmMalformed(str(exc)))
            received.replies.append(
                codec.encode_deliver_sm_resp(header.sequence, exc.command_status)
            )
            return
        received.replies.append(codec.encode_deliver_sm_resp(header.sequence, 0))
        if not message.is_receipt:
            received.events.append(MoMessage())
            return
        receipt = read_receipt(
            message.user_data, message.data_coding, message.tlvs, message.source_addr
        )
        _receipt_read(received, receipt)

    def _on_data_sm(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        """Acknowledge a data_sm with data_sm_resp; a receipt (TLVs, or text in
        message_payload) becomes an event, exactly as one sent by deliver_sm."""
        try:
            message = codec.decode_data_sm(pdu)
        except SmppProtocolError as exc:
            received.events.append(DeliverSmMalformed(str(exc)))
            received.replies.append(codec.encode_data_sm_resp(header.sequence, exc.command_status))
            return
        received.replies.append(codec.encode_data_sm_resp(header.sequence, 0))
        if not message.is_receipt:
            received.events.append(MoMessage())
            return
        receipt = read_receipt(
            message.user_data, message.data_coding, message.tlvs, message.source_addr
        )
        _receipt_read(received, receipt)

    def _on_alert_notification(
        self, received: Received[P], pdu: bytes, header: codec.Header, now: float
    ) -> None:
        """No answer at all (SMPP 3.4 §4.12.1): never a generic_nack."""
        source = ""
        nul = pdu.find(b"\0", _HEADER_LENGTH + 2)
        if nul > 0:
            source = pdu[_HEADER_LENGTH + 2 : nul].decode("latin-1")
        received.events.append(AlertNotified(source))


def _receipt_read(received: Received[P], receipt: Receipt | str) -> None:
    """A receipt read (`read_receipt`) to `received.receipts`, or the text of one naming no
    message to its events."""
    if isinstance(receipt, str):
        received.events.append(ReceiptUnreadable(receipt))
    else:
        received.receipts.append(receipt)
