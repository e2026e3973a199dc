"""The broadcast state machine as a table: which action moves which state where (pure).

    draft -> pending_approval -> approved -> running <-> paused
    running -> completed | cancelled | expired | failed
    paused -> completed (only when a pause lands after the last chunk was done)

A live broadcast above the approval threshold waits in pending_approval for a second person;
drills and small live sends are approved at creation. Cancel works from every non-final state;
expiry is applied by whoever notices it first (a worker, a status read).

This table is the only list of states: the store's SQL takes the allowed source states of each
change as parameters from it (`store.broadcasts.apply`), and the sets below (`FINAL`,
`RUNNABLE`, `ACTIVE`) are what every reader compares with.
"""

from __future__ import annotations

from typing import Final, Literal

from broadcaster.errors import ConflictError

State = Literal[
    "draft",
    "pending_approval",
    "approved",
    "running",
    "paused",
    "completed",
    "cancelled",
    "expired",
    "failed",
]
Action = Literal[
    "submit", "approve", "start", "pause", "resume", "cancel", "complete", "expire", "fail"
]

FINAL: Final[frozenset[str]] = frozenset({"completed", "cancelled", "expired", "failed"})
"""States nothing leaves."""
ACTIVE: Final[frozenset[str]] = frozenset(
    {"draft", "pending_approval", "approved", "running", "paused"}
)
"""Every state that is not final: a broadcast that may still send or be stopped."""
RUNNABLE: Final[frozenset[str]] = frozenset({"approved", "running"})
"""States a worker may pick a broadcast up in."""
HALTED: Final[frozenset[str]] = frozenset({"paused", "cancelled", "expired", "failed"})
"""States in which a running runner stops submitting at once."""

TRANSITIONS: Final[dict[Action, tuple[frozenset[str], State]]] = {
    "submit": (frozenset({"draft"}), "pending_approval"),
    "approve": (frozenset({"draft", "pending_approval"}), "approved"),
    "start": (RUNNABLE, "running"),
    "pause": (RUNNABLE, "paused"),
    "resume": (frozenset({"paused"}), "approved"),
    "cancel": (ACTIVE, "cancelled"),
    "complete": (frozenset({"running", "paused"}), "completed"),
    "expire": (ACTIVE, "expired"),
    "fail": (frozenset({"approved", "running", "paused"}), "failed"),
}


def transition(action: Action) -> tuple[list[str], State]:
    """(states the action applies to, the state it leads to)."""
    sources, target = TRANSITIONS[action]
    return sorted(sources), target


def applies(action: Action, state: str) -> bool:
    """Whether `action` may be taken from `state`."""
    return state in TRANSITIONS[action][0]


def refuse(action: Action, broadcast_id: int, current: str) -> ConflictError:
    """The error for an action that does not apply to the broadcast's current state."""
    sources, _ = TRANSITIONS[action]
    return ConflictError(
        f"cannot {action} broadcast {broadcast_id}: it is {current}"
        + (f" (only from {', '.join(sorted(sources))})" if current not in FINAL else "")
        + (f"; {APPROVE_WHERE.format(id=broadcast_id)}" if current == "pending_approval" else "")
    )


APPROVE_WHERE = (
    "a second person approves it in the console (Approvals) or with POST "
    "/v1/broadcasts/{id}/approve and an approver's token"
)
"""Where a broadcast awaiting approval is approved (the CLI does not: its user is one person)."""


def waiting_for(
    state: str, workers_alive: int, ahead: list[int], broadcast_id: int | str = "ID"
) -> str | None:
    """What a broadcast that is not sending waits for, in words (None: it is not waiting):
    a second person, a worker (saying when none is running), or more urgent broadcasts."""
    if state == "pending_approval":
        return "approval by a second person (an approver or an admin): " + APPROVE_WHERE.format(
            id=broadcast_id
        )
    if state != "approved":
        return None
    if not workers_alive:
        return (
            "a worker: none is running (start `broadcaster worker` or `broadcaster serve`; "
            "nothing is sent until one runs)"
        )
    if ahead:
        listed = ", ".join(str(i) for i in ahead)
        return f"more urgent broadcasts to finish first: {listed}"
    return "a worker to pick it up"
