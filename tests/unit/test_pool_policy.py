"""The pool's pure decisions: allocating parts to binds and sites on message boundaries,
backoff, refusals, stalls."""

from __future__ import annotations

import random

import pytest

from broadcaster.smpp import policy
from broadcaster.smpp.constants import Status


def test_everyone_takes_all_it_can_when_demand_exceeds_capacity() -> None:
    splitter = policy.SiteSplitter([3, 1])
    assert splitter.split(1000, [64, 64]) == [64, 64]
    assert splitter.split(128, [64, 64]) == [64, 64]
    assert splitter.credit == [0.0, 0.0]  # no state change: weights did not matter


def test_weights_respected_when_every_site_has_room() -> None:
    splitter = policy.SiteSplitter([3, 1])
    totals = [0, 0]
    for _ in range(100):
        shares = splitter.split(8, [64, 64])
        assert sum(shares) == 8
        totals = [t + s for t, s in zip(totals, shares, strict=True)]
    assert totals == [600, 200]


def test_weights_hold_over_many_single_part_passes() -> None:
    splitter = policy.SiteSplitter([2, 1, 1])
    totals = [0, 0, 0]
    for _ in range(400):
        for i, share in enumerate(splitter.split(1, [10, 10, 10])):
            totals[i] += share
    assert totals == [200, 100, 100]


def test_a_full_site_gives_its_share_to_the_others() -> None:
    splitter = policy.SiteSplitter([3, 1])
    assert splitter.split(10, [0, 64]) == [0, 10]  # site 0 has no room: all to site 1
    assert splitter.split(10, [2, 64]) == [2, 8]  # site 0 takes what it can
    # No credit was hoarded meanwhile: once both have room, the split is by weight again.
    totals = [0, 0]
    for _ in range(25):
        shares = splitter.split(4, [64, 64])
        totals = [t + s for t, s in zip(totals, shares, strict=True)]
    assert totals == [75, 25]


def test_nothing_to_split() -> None:
    splitter = policy.SiteSplitter([1, 1])
    assert splitter.split(0, [5, 5]) == [0, 0]
    assert splitter.split(5, [0, 0]) == [0, 0]


def test_weights_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        policy.SiteSplitter([1, 0])
    with pytest.raises(ValueError, match="positive"):
        policy.SiteSplitter([])


def test_allocate_one_bind_takes_what_its_room_allows() -> None:
    splitter = policy.SiteSplitter([1, 1])
    assert policy.allocate(1000, [64], [1], splitter) == [64]
    assert policy.allocate(10, [64], [1], splitter) == [10]
    assert splitter.credit == [0.0, 0.0]


def test_allocate_gives_everyone_its_room_when_the_queue_is_longer() -> None:
    splitter = policy.SiteSplitter([3, 1])
    assert policy.allocate(1000, [16, 7, 30], [0, 0, 1], splitter) == [16, 7, 30]


def test_allocate_splits_by_site_weight_then_fills_binds_in_order() -> None:
    splitter = policy.SiteSplitter([3, 1])
    # Four binds, two per site: site 0 gets 3/4 of 40, its first bind fills up first.
    takes = policy.allocate(40, [20, 20, 20, 20], [0, 0, 1, 1], splitter)
    assert takes == [20, 10, 10, 0]
    totals = [0, 0]
    for _ in range(100):  # over many passes too, whatever each pass's rounding
        takes = policy.allocate(5, [64, 64], [1, 0], splitter)
        assert sum(takes) == 5
        totals = [totals[0] + takes[1], totals[1] + takes[0]]
    assert totals == [375, 125]


def test_allocate_never_holds_parts_back_for_a_full_site() -> None:
    splitter = policy.SiteSplitter([9, 1])
    # Site 0 (weight 9) can take only 2: the light site takes the rest.
    assert policy.allocate(30, [2, 50], [0, 1], splitter) == [2, 28]
    # No bind of site 0 has room at all (the pool passes only binds with room).
    assert policy.allocate(30, [50], [1], splitter) == [30]


def test_allocate_nothing_queued() -> None:
    splitter = policy.SiteSplitter([1, 1])
    assert policy.allocate(0, [5, 5], [0, 1], splitter) == [0, 0]
    assert policy.allocate(0, [5], [0], splitter) == [0]


class Queued:
    """A queued part as the allocation sees it."""

    __slots__ = ("more",)

    def __init__(self, more: bool) -> None:
        self.more = more


def queue_of(*lengths: int) -> list[Queued]:
    """Queued parts of messages of these lengths, in order."""
    return [Queued(n < length) for length in lengths for n in range(1, length + 1)]


def test_whole_messages_leave_takes_on_boundaries_alone() -> None:
    parts = queue_of(1, 2, 1, 3, 1)  # boundaries after 1, 3, 4, 7, 8 parts
    assert policy.whole_messages(parts, [1, 2, 1], [64] * 3, [False] * 3) == [1, 2, 1]
    assert policy.whole_messages(parts, [4, 4], [64] * 2, [False] * 2) == [4, 4]
    singles = queue_of(*[1] * 10)
    assert policy.whole_messages(singles, [3, 0, 7], [3, 9, 7], [False] * 3) == [3, 0, 7]


def test_a_take_ending_inside_a_message_finishes_it_on_lent_tokens() -> None:
    parts = queue_of(2, 3, 1, 2)
    # The first bind's take of 1 ends inside the 2-part message: it takes both parts; the
    # second bind's 3 parts start after them (the whole 3-part message).
    assert policy.whole_messages(parts, [1, 3], [64, 64], [False, False]) == [2, 3]
    # A take of 3 ends inside the second message: the bind takes it all, 5 parts; the next
    # bind then starts at the single part and finishes the last message.
    assert policy.whole_messages(parts, [3, 2], [64, 64], [False, False]) == [5, 3]
    # Whatever the takes, no bind starts or ends inside a message.
    boundaries = {0, 2, 5, 6, 8}
    for first in range(9):
        for second in range(9):
            takes = policy.whole_messages(parts, [first, second], [64, 64], [False, False])
            assert takes[0] in boundaries
            assert takes[0] + takes[1] in boundaries
            assert takes[0] <= first + 2  # lent at most the rest of one message
            assert takes[0] + takes[1] <= 8


def test_the_window_is_never_exceeded_a_message_that_does_not_fit_waits() -> None:
    parts = queue_of(1, 3, 1)
    # Window room 2: the single part fits, the 3-part message does not: left to the next bind.
    assert policy.whole_messages(parts, [2, 4], [2, 64], [False, False]) == [1, 4]
    # No bind has room for it: nobody takes it, nor anything behind it (order is kept).
    assert policy.whole_messages(parts, [2, 2], [2, 2], [False, False]) == [1, 0]
    assert policy.whole_messages(queue_of(3, 1), [1, 1], [2, 2], [False, False]) == [0, 0]
    # A take of 1 with a room of exactly 3 takes the message.
    assert policy.whole_messages(queue_of(3, 1), [1, 1], [3, 3], [False, False]) == [3, 1]


def test_a_message_longer_than_a_whole_window_goes_to_an_idle_bind() -> None:
    parts = queue_of(3, 1)
    # Window of 2 parts: a busy bind never takes the 3-part message, an idle one does.
    assert policy.whole_messages(parts, [1, 1], [1, 2], [False, True]) == [0, 3]
    # Only as its first message: an idle bind does not start it after other messages.
    assert policy.whole_messages(queue_of(1, 3), [2], [2], [True]) == [1]


def test_a_message_still_being_submitted_ends_with_the_queue() -> None:
    parts = [Queued(True), Queued(True)]  # its last part is not queued yet
    assert policy.whole_messages(parts, [1], [64], [False]) == [2]
    assert policy.whole_messages([], [5, 5], [64, 64], [True, True]) == [0, 0]


def test_reconnect_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(1)
    delays = [policy.reconnect_delay(n, refused=False, rng=rng) for n in range(1, 12)]
    for n, delay in enumerate(delays, 1):
        full = min(policy.RECONNECT_CAP, policy.RECONNECT_BASE * 2 ** (n - 1))
        assert full / 2 <= delay <= full
    assert delays[0] < 0.3
    assert max(delays) <= policy.RECONNECT_CAP
    # Two binds that fell together do not come back together.
    assert policy.reconnect_delay(3, refused=False, rng=rng) != policy.reconnect_delay(
        3, refused=False, rng=rng
    )


def test_a_connection_lost_after_carrying_traffic_is_retried_at_once() -> None:
    """No failure yet (the lost connection answered parts): a quick retry, far below the
    backoff of a failed attempt, so an SMSC dropping binds every 1,000 parts costs little."""
    rng = random.Random(3)
    quick = [policy.reconnect_delay(0, refused=False, rng=rng) for _ in range(20)]
    assert all(policy.QUICK_RECONNECT / 2 <= d <= policy.QUICK_RECONNECT for d in quick)
    assert max(quick) < policy.reconnect_delay(1, refused=False, rng=rng)
    assert policy.reconnect_delay(0, refused=True, rng=rng) >= policy.REFUSED_BASE / 2


def test_a_refused_bind_waits_much_longer() -> None:
    rng = random.Random(2)
    first = policy.reconnect_delay(1, refused=True, rng=rng)
    assert first >= policy.REFUSED_BASE / 2
    assert policy.reconnect_delay(50, refused=True, rng=rng) <= policy.REFUSED_CAP


@pytest.mark.parametrize(
    ("status", "refused", "words"),
    [
        (Status.ESME_RINVPASWD, True, "check the password"),
        (Status.ESME_RINVSYSID, True, "check the system_id"),
        (Status.ESME_RBINDFAIL, True, "bind failed"),
        (Status.ESME_RALYBND, True, "bind limit"),
        (Status.ESME_RSYSERR, False, "retrying"),
        (0x0000040B, False, "0x0000040B"),
    ],
)
def test_bind_refusals_are_explained(status: int, refused: bool, words: str) -> None:
    is_refused, why = policy.bind_refusal(status)
    assert is_refused is refused
    assert words in why


def test_stall_threshold_follows_latency() -> None:
    assert policy.stall_after(0.001) == policy.STALL_MIN
    assert policy.stall_after(0.5) == pytest.approx(4.0)
