"""The pool's decisions, as pure functions of its state: no asyncio, no I/O, clock given.

- `allocate`: how many of the queued parts each bind with room takes in one pass.
- `whole_messages`: those takes moved to message boundaries, so that all the parts of a
  message go through one SMSC (a phone joins them by sender and reference, and each SMSC
  sends with its own sender).
- `SiteSplitter`: how many of the queued parts each SMSC (site) takes in one pass, given how
  many each can take now. Weights are respected whenever the sites have room for more than
  is queued; a site without room simply takes nothing, so its share goes to the others
  (work-conserving: a slow or dead site never holds parts back).
- `reconnect_delay`: a quick first retry after a connection that carried traffic, then
  jittered exponential backoff on repeated failures; much longer when the SMSC refused our
  credentials, so a wrong password does not hammer the operator's SMSC.
- `bind_refusal`: what a refused bind means, in words an operator can act on.
- `stall_after`: how long a bind may stay silent with parts in flight before it is given no
  more parts.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Final, Protocol

from broadcaster.smpp.constants import Status, status_name

QUICK_RECONNECT: Final = 0.002
"""Delay (seconds, jittered down to half) before reconnecting a bind whose connection carried
traffic and was lost: an SMSC that drops binds every thousand parts must not halve the rate
(issue 20: 179 msg/s when every drop counted as a failure)."""
RECONNECT_BASE: Final = 0.25
"""First delay (seconds) before reconnecting after a failure (an unreachable SMSC, a bind
refused, or dropped before it answered anything); doubled per further failure."""
RECONNECT_CAP: Final = 30.0
REFUSED_BASE: Final = 10.0
"""First delay after the SMSC refused the bind (credentials, bind limits)."""
REFUSED_CAP: Final = 300.0
STABLE_SESSION: Final = 10.0
"""A session that lived this long, or answered a part, then dropped, resets the backoff (quick
retry); one dropped sooner without answering anything counts as a failed attempt (no
hammering by a bind that connects and is dropped at once)."""
STALL_MIN: Final = 0.2
"""A bind silent this long (seconds) with parts in flight gets no new parts."""
STALL_LATENCIES: Final = 8.0
"""...or this many times its usual response latency, whichever is longer."""

CREDENTIAL_STATUSES: Final[frozenset[int]] = frozenset(
    {
        Status.ESME_RINVPASWD,
        Status.ESME_RINVSYSID,
        Status.ESME_RBINDFAIL,
        Status.ESME_RINVSYSTYP,
        Status.ESME_RALYBND,
    }
)
"""bind_resp statuses that retrying soon will not fix: back off for long."""

_REFUSAL_HINTS: Final[dict[int, str]] = {
    Status.ESME_RINVPASWD: "invalid password: check the password of this SMSC",
    Status.ESME_RINVSYSID: "unknown system_id: check the system_id of this SMSC",
    Status.ESME_RBINDFAIL: (
        "bind failed: check system_id, password and bind_mode, and that the operator has not "
        "disabled this account"
    ),
    Status.ESME_RINVSYSTYP: "invalid system_type: check the system_type of this SMSC",
    Status.ESME_RALYBND: (
        "already bound: the account's bind limit is reached; lower binds or stop the other "
        "process using it"
    ),
}


class SiteSplitter:
    """Splits each pass's queued parts between sites by weight (smooth weighted round robin).

    State is the running credit of each site, so shares come out right over many small
    passes, not just within one. A site that cannot take its share in a pass earns no credit
    for it: weights apportion traffic between sites that have room, they never hold it back.
    """

    __slots__ = ("credit", "weights")

    @property
    def site_count(self) -> int:
        return len(self.weights)

    def __init__(self, weights: Sequence[float]) -> None:
        if not weights or any(w <= 0 for w in weights):
            raise ValueError(f"site weights {list(weights)} must all be positive")
        self.weights = tuple(float(w) for w in weights)
        self.credit = [0.0] * len(weights)

    def split(self, demand: int, capacities: Sequence[int]) -> list[int]:
        """Parts each site takes now, given `demand` queued parts and each site's capacity."""
        total = sum(capacities)
        if demand >= total:
            return list(capacities)  # every site takes all it can: weights cannot matter
        allocation = [0] * len(capacities)
        open_sites = [i for i, capacity in enumerate(capacities) if capacity > 0]
        if len(open_sites) == 1:
            allocation[open_sites[0]] = demand
            return allocation
        weights = self.weights
        credit = self.credit
        for _ in range(demand):
            best = -1
            round_weight = 0.0
            for i in open_sites:
                if allocation[i] < capacities[i]:
                    credit[i] += weights[i]
                    round_weight += weights[i]
                    if best < 0 or credit[i] > credit[best]:
                        best = i
            credit[best] -= round_weight
            allocation[best] += 1
        return allocation


def allocate(
    demand: int, rooms: Sequence[int], sites: Sequence[int], splitter: SiteSplitter
) -> list[int]:
    """Parts each bind takes this pass: `demand` parts are queued, bind i has room for
    `rooms[i]` (window and pacing tokens) and belongs to site `sites[i]`.

    Sites share the demand by weight (`splitter`, whose credit this updates); within a site,
    binds take their site's share in the order given (the pool rotates it from pass to pass).
    Nobody takes more than its room, and nothing is held back while some bind has room.
    """
    if len(rooms) == 1:
        room = rooms[0]
        return [room if room < demand else demand]
    capacities = [0] * splitter.site_count
    for room, site in zip(rooms, sites, strict=True):
        capacities[site] += room
    shares = splitter.split(demand, capacities)
    takes: list[int] = []
    for room, site in zip(rooms, sites, strict=True):
        share = shares[site]
        take = room if room < share else share
        shares[site] = share - take
        takes.append(take)
    return takes


class Chained(Protocol):
    """A queued part, as `whole_messages` sees it: the pool's `Part` is one."""

    @property
    def more(self) -> bool:
        """The next queued part belongs to the same message."""


def whole_messages(
    parts: Sequence[Chained], takes: Sequence[int], limits: Sequence[int], idle: Sequence[bool]
) -> list[int]:
    """`takes` (from `allocate`: bind i takes the next `takes[i]` of `parts`, in bind order)
    moved to message boundaries, so that each bind takes whole messages.

    Pacing tokens are lent, the window is not. A bind finishes the message its take ends
    in, beyond its take if need be: the take counts tokens, and a pacer can lend the rest of
    a message (its buckets go below zero, the next parts wait: the rate holds, the SMSC sees
    one message at once, as from any sender of long texts). Without that loan a message
    longer than a bind's bucket (one part deep under ~95 parts/s) would never leave. The
    window (`limits[i]`, the bind's free window) is never exceeded: a strict SMSC refuses the
    part beyond it with ESME_RMSGQFUL, and the pacer would slow down for nothing. A message
    that does not fit is left to the next bind, or to the next pass once answers free room.
    Only a message longer than a whole window, which could never fit, is taken whole by a
    bind with nothing in flight (`idle[i]`): the SMSC may refuse the parts beyond its
    window, and the pool retries those on the same SMSC.

    A message still being submitted when `parts` ends, ends there (callers submit a
    message's parts in one go, so this only happens to a caller that does not).
    """
    adjusted: list[int] = []
    queued = len(parts)
    start = 0
    for take, limit, empty in zip(takes, limits, idle, strict=True):
        end = min(start + take, queued)
        if end > start and parts[end - 1].more:
            end = _message_end(parts, end - 1)
            if end - start > limit:
                first = _message_start(parts, start, end - 1)
                if first > start or not empty:
                    end = first
        taken = end - start
        adjusted.append(taken)
        start += taken
    return adjusted


def _message_end(parts: Sequence[Chained], index: int) -> int:
    """Just past the last part of the message that `parts[index]` belongs to."""
    last = len(parts) - 1
    while index < last and parts[index].more:
        index += 1
    return index + 1


def _message_start(parts: Sequence[Chained], start: int, index: int) -> int:
    """The first part of the message that `parts[index]` belongs to (`start` is a
    message's first part)."""
    while index > start and parts[index - 1].more:
        index -= 1
    return index


def reconnect_delay(attempt: int, *, refused: bool, rng: random.Random | None = None) -> float:
    """Seconds to wait before bind attempt `attempt + 1` after `attempt` consecutive failures
    (0: the connection was lost after carrying traffic, a quick retry).

    Exponential with "equal jitter" (half fixed, half random), so binds that fell together do
    not reconnect together.
    """
    base, cap = (REFUSED_BASE, REFUSED_CAP) if refused else (RECONNECT_BASE, RECONNECT_CAP)
    if attempt <= 0 and not refused:
        base = QUICK_RECONNECT
    delay = min(cap, base * 2.0 ** (max(attempt, 1) - 1))
    return delay * (rng or random).uniform(0.5, 1.0)


def bind_refusal(status: int) -> tuple[bool, str]:
    """(refused for good reason, explanation) of a bind_resp error status.

    `refused` is True for the statuses a quick retry will not fix (credentials, bind limits):
    the pool then backs off for long and says so.
    """
    hint = _REFUSAL_HINTS.get(status)
    if hint is not None:
        return True, f"{status_name(status)}: {hint}"
    return False, f"{status_name(status)} (SMSC-specific): retrying with backoff"


def stall_after(latency: float) -> float:
    """Silence (seconds, with parts in flight) after which a bind gets no new parts."""
    return max(STALL_MIN, STALL_LATENCIES * latency)
