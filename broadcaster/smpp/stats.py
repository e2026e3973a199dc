"""What the pool tells progress displays, metrics and reports: counters and health.

Plain data, and the pure functions that fill it: `PoolStats` (cumulative counters, protocol
anomalies counted by `PoolStats.count`), `BindHealth` per bind (its `BindState`) and
`SmscHealth` per SMSC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from broadcaster.settings import SmscConfig
from broadcaster.smpp.connection import (
    AlertNotified,
    DeliverSmMalformed,
    Event,
    GenericNack,
    LateResponse,
    MessageIdUnreadable,
    MoMessage,
    ReceiptUnreadable,
    StreamCorrupt,
    UnexpectedResponse,
    UnknownCommand,
)


class BindState(enum.Enum):
    """Where a configured bind stands, across its connections (what `health()` shows)."""

    CONNECTING = "connecting"
    BOUND = "bound"
    STALLED = "stalled"
    """Bound, but silent with parts in flight: it gets no new parts until it answers."""
    BACKOFF = "backoff"
    """Lost or unreachable: waiting before the next attempt."""
    REFUSED = "refused"
    """The SMSC refused the bind (credentials, bind limit): waiting long before retrying."""
    CLOSED = "closed"


@dataclass
class PoolStats:
    """Counters for progress displays, metrics and reports (all cumulative)."""

    submitted: int = 0
    """Parts handed to `submit()` (each counted once, whatever its retries)."""
    sent: int = 0
    """submit_sm PDUs written, retries included."""
    accepted: int = 0
    failed: int = 0
    cancelled: int = 0
    """Queued parts dropped by `cancel()` (no outcome reported for them)."""
    not_sent: int = 0
    """Parts of a halted or expired lane not written again (throttled, timed out or lost in
    flight after the halt, or still queued at the deadline): reported `NOT_SENT`."""
    possible_duplicates: int = 0
    """Copies beyond one that the SMSC may have received, over every part reported (a part
    resent after a lost connection or a response timeout and then accepted counts 1)."""
    throttled: int = 0
    """ESME_RTHROTTLED / ESME_RMSGQFUL replies; each throttled part was sent again (unless
    its lane had halted: then counted in `not_sent`)."""
    requeued_inflight: int = 0
    """Parts in flight on a lost connection or past their response timeout, queued to be sent
    again: the SMSC may have accepted them, so each is a possible duplicate."""
    timeouts: int = 0
    """Parts that got no response within the SMSC's response_timeout_s."""
    split_messages: int = 0
    """Multi-part messages that may arrive incomplete: parts of theirs waiting to be sent
    again through the SMSC that carried the rest were released to the other SMSCs, because
    that one stayed without a bind for longer than its response_timeout_s."""
    reconnects: int = 0
    """Bound sessions lost (then reconnected with backoff)."""
    bind_failures: int = 0
    """Connection or bind attempts that failed (refusals included)."""
    stalls: int = 0
    """Binds dropped because they stopped answering."""
    malformed: int = 0
    unexpected_responses: int = 0
    unknown_commands: int = 0
    """Requests from the SMSC we do not know; each answered with generic_nack."""
    generic_nacks: int = 0
    receipts: int = 0
    unreadable_receipts: int = 0
    mo_messages: int = 0
    alert_notifications: int = 0
    """alert_notification PDUs (SMPP 3.4: no response); counted, nothing else to do."""
    failed_by_status: dict[int, int] = field(default_factory=dict)
    retried_by_status: dict[int, int] = field(default_factory=dict)
    """Transient errors (`SmscConfig.retry_statuses`) after which the part was sent again."""
    empty_message_ids: int = 0
    """Parts accepted with an empty or unreadable message_id: an SMSC fault that makes their
    receipts unmatchable (shown in health, `check`, `status`, metrics)."""

    def count(self, event: Event) -> None:
        """Count a protocol anomaly a session noted."""
        match event:
            case LateResponse() | UnexpectedResponse():
                self.unexpected_responses += 1
            case MessageIdUnreadable() | DeliverSmMalformed() | StreamCorrupt():
                self.malformed += 1
            case UnknownCommand():
                self.unknown_commands += 1
            case GenericNack():
                self.generic_nacks += 1
            case MoMessage():
                self.mo_messages += 1
            case ReceiptUnreadable():
                self.unreadable_receipts += 1
            case AlertNotified():
                self.alert_notifications += 1


@dataclass(frozen=True)
class BindHealth:
    name: str
    state: str
    inflight: int
    window: int
    rate: float
    """Current pacing rate, parts/s (0: not paced)."""
    ceiling: float
    """Contracted parts/s (0: none)."""
    accepted_per_s: float
    accepted: int
    failed: int
    throttled: int
    timeouts: int
    reconnects: int
    last_error: str | None
    retry_in: float | None
    retried: int = 0
    """Parts sent again after a transient error (`SmscConfig.retry_statuses`)."""
    empty_message_ids: int = 0
    """Parts accepted without a usable message_id (an SMSC fault)."""
    mode: str = "transceiver"


@dataclass(frozen=True)
class SmscHealth:
    """One SMSC (site) for a progress display: `state` is "up" (every bind bound), "degraded"
    (some) or "down" (none)."""

    name: str
    state: str
    weight: int
    binds_up: int
    binds: tuple[BindHealth, ...]
    accepted_per_s: float
    inflight: int
    accepted: int
    failed: int
    throttled: int
    empty_message_ids: int = 0
    """Parts accepted without a usable message_id: their receipts cannot be matched."""
    receivers_up: int = 0
    """Binds up that can get receipts (transceivers and receivers)."""

    @property
    def problems(self) -> list[str]:
        """What is wrong with this SMSC beyond binds being down, in words (for check/status)."""
        found: list[str] = []
        if self.empty_message_ids:
            found.append(
                f"{self.empty_message_ids:,} parts accepted with no message_id "
                "(their receipts cannot be matched)"
            )
        return found


def smsc_health(smsc: SmscConfig, binds: list[BindHealth]) -> SmscHealth:
    """One SMSC's health from its binds': up when all are bound, down when none is."""
    up = sum(1 for b in binds if b.state == BindState.BOUND.value)
    return SmscHealth(
        name=smsc.name,
        state="up" if up == len(binds) else "degraded" if up else "down",
        weight=smsc.weight,
        binds_up=up,
        binds=tuple(binds),
        accepted_per_s=round(sum(b.accepted_per_s for b in binds), 1),
        inflight=sum(b.inflight for b in binds),
        accepted=sum(b.accepted for b in binds),
        failed=sum(b.failed for b in binds),
        throttled=sum(b.throttled for b in binds),
        empty_message_ids=sum(b.empty_message_ids for b in binds),
        receivers_up=sum(
            1 for b in binds if b.state == BindState.BOUND.value and b.mode != "transmitter"
        ),
    )
