"""The broadcast state machine as a table: which action moves which state where (pure).

    draft -> pending_approval -> approved -> running <-> paused
    running -> completed | cancelled | expired | failed
    paused -> completed (only when a pause lands after the last chunk was done)

A live broadcast above the approval threshold waits in pending_approval for a second person;
drills and small live sends are approved at creation. Cancel works from every non-final state;
expiry is applied by whoever notices it first (a worker, a status read).
"""

from __future__ import annotations

from typing import Final, Literal

from broadcaster.errors import InputError

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
RUNNABLE: Final[frozenset[str]] = frozenset({"approved", "running"})
"""States a worker may pick a broadcast up in."""

TRANSITIONS: Final[dict[Action, tuple[frozenset[str], State]]] = {
    "submit": (frozenset({"draft"}), "pending_approval"),
    "approve": (frozenset({"draft", "pending_approval"}), "approved"),
    "start": (frozenset({"approved", "running"}), "running"),
    "pause": (frozenset({"approved", "running"}), "paused"),
    "resume": (frozenset({"paused"}), "approved"),
    "cancel": (
        frozenset({"draft", "pending_approval", "approved", "running", "paused"}),
        "cancelled",
    ),
    "complete": (frozenset({"running", "paused"}), "completed"),
    "expire": (
        frozenset({"draft", "pending_approval", "approved", "running", "paused"}),
        "expired",
    ),
    "fail": (frozenset({"approved", "running", "paused"}), "failed"),
}


def transition(action: Action) -> tuple[list[str], State]:
    """(states the action applies to, the state it leads to)."""
    sources, target = TRANSITIONS[action]
    return sorted(sources), target


def refuse(action: Action, broadcast_id: int, current: str) -> InputError:
    """The error for an action that does not apply to the broadcast's current state."""
    sources, _ = TRANSITIONS[action]
    return InputError(
        f"cannot {action} broadcast {broadcast_id}: it is {current}"
        + (f" (only from {', '.join(sorted(sources))})" if current not in FINAL else "")
    )
