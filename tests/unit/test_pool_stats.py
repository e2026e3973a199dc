"""The pool's counters and health, as plain data: which anomaly counts where, what 'up' means."""

from __future__ import annotations

import pytest

from broadcaster.settings import SmscConfig
from broadcaster.smpp.connection import (
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
from broadcaster.smpp.stats import BindHealth, BindState, PoolStats, smsc_health


@pytest.mark.parametrize(
    ("event", "counter"),
    [
        (LateResponse(7), "unexpected_responses"),
        (UnexpectedResponse(0x80000103, 7), "unexpected_responses"),
        (MessageIdUnreadable(7), "malformed"),
        (DeliverSmMalformed("sm_length 200"), "malformed"),
        (StreamCorrupt("command_length 5"), "malformed"),
        (UnknownCommand(0x99, 7), "unknown_commands"),
        (GenericNack(8, 7, named_part=True), "generic_nacks"),
        (GenericNack(8, 7, named_part=False), "generic_nacks"),
        (MoMessage(), "mo_messages"),
        (ReceiptUnreadable("no id"), "unreadable_receipts"),
    ],
)
def test_each_anomaly_is_counted_once_in_its_counter(event: Event, counter: str) -> None:
    stats = PoolStats()
    stats.count(event)
    counted = {name: value for name, value in vars(stats).items() if value}
    assert counted == {counter: 1}


def bind(name: str, state: BindState, inflight: int = 0, accepted: int = 0) -> BindHealth:
    return BindHealth(
        name=name,
        state=state.value,
        inflight=inflight,
        window=64,
        rate=0.0,
        ceiling=0.0,
        accepted_per_s=1.5,
        accepted=accepted,
        failed=0,
        throttled=0,
        timeouts=0,
        reconnects=0,
        last_error=None,
        retry_in=None,
    )


def test_an_smsc_is_up_degraded_or_down_by_its_bound_binds() -> None:
    smsc = SmscConfig(name="paris", weight=3)
    up = smsc_health(
        smsc, [bind("paris#1", BindState.BOUND, 2, 10), bind("paris#2", BindState.BOUND, 3, 5)]
    )
    assert (up.state, up.binds_up, up.inflight, up.accepted, up.accepted_per_s) == (
        "up",
        2,
        5,
        15,
        3.0,
    )
    assert up.weight == 3
    stalled = smsc_health(
        smsc, [bind("paris#1", BindState.BOUND), bind("paris#2", BindState.STALLED)]
    )
    assert (stalled.state, stalled.binds_up) == ("degraded", 1)
    down = smsc_health(
        smsc, [bind("paris#1", BindState.BACKOFF), bind("paris#2", BindState.REFUSED)]
    )
    assert (down.state, down.binds_up) == ("down", 0)
