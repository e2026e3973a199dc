"""The parts a process had accepted, remembered for their receipts (engine/sent_parts.py)."""

from __future__ import annotations

from broadcaster.engine.sent_parts import MAX_AGE_S, SentParts

NOW = 1010.0
"""Ten seconds after the parts below were submitted."""


def _sent(msisdn: int, smsc: str = "a") -> tuple[str, int, int, int, float, str | None]:
    return (smsc, 7, msisdn, 1, 1000.0, "75")


def test_a_final_receipt_takes_its_part_and_forgets_it_an_intermediate_one_leaves_it() -> None:
    parts = SentParts()
    parts.add("A1", _sent(1))
    assert parts.take("A1", "a", final=False, now=NOW) == _sent(1)  # ENROUTE: more to come
    assert parts.take("A1", "a", final=True, now=NOW) == _sent(1)  # DELIVRD
    assert parts.take("A1", "a", final=True, now=NOW) is None  # a duplicate: to the database
    assert len(parts) == 0


def test_an_id_of_another_smsc_or_never_given_is_not_taken() -> None:
    parts = SentParts()
    parts.add("A1", _sent(1, smsc="a"))
    assert parts.take("A1", "b", final=True, now=NOW) is None
    assert parts.take("B2", "a", final=True, now=NOW) is None
    assert parts.take("A1", "a", final=True, now=NOW) == _sent(1)  # still there for its own SMSC


def test_an_id_given_again_stands_for_the_later_part() -> None:
    """An SMSC that restarts reuses ids: the database's lookup picks the latest submission."""
    parts = SentParts(capacity=4)
    parts.add("A1", _sent(1))
    parts.add("B2", _sent(2))  # A1 moves to the previous generation
    parts.add("A1", _sent(3))
    assert parts.take("A1", "a", final=True, now=NOW) == _sent(3)
    assert parts.take("A1", "a", final=True, now=NOW) is None  # a copy: not the earlier part's


def test_memory_is_bounded_the_oldest_generation_is_dropped() -> None:
    parts = SentParts(capacity=10)
    for n in range(1_000):
        parts.add(f"{n:X}", _sent(n))
        assert len(parts) <= 10
    assert parts.take(f"{999:X}", "a", final=True, now=NOW) == _sent(999)
    assert parts.take(f"{995:X}", "a", final=True, now=NOW) == _sent(995)  # the previous five
    assert parts.take(f"{994:X}", "a", final=True, now=NOW) is None  # dropped with its generation
    assert parts.take("0", "a", final=True, now=NOW) is None


def test_a_part_submitted_too_long_ago_is_left_to_the_database() -> None:
    """Another worker may have been given its id since (an SMSC that restarted): the database
    knows every process's submissions, memory only this one's."""
    parts = SentParts()
    parts.add("A1", _sent(1))
    assert parts.take("A1", "a", final=False, now=1000.0 + MAX_AGE_S + 1) is None
    assert len(parts) == 0  # and forgotten


def test_a_lost_bind_forgets_the_parts_of_its_smsc_only() -> None:
    parts = SentParts(capacity=4)
    parts.add("A1", _sent(1, smsc="a"))
    parts.add("B2", _sent(2, smsc="b"))
    parts.add("C3", _sent(3, smsc="a"))  # A1 and B2 in the previous generation
    parts.forget("a")
    assert parts.take("A1", "a", final=True, now=NOW) is None
    assert parts.take("C3", "a", final=True, now=NOW) is None
    assert parts.take("B2", "b", final=True, now=NOW) == _sent(2, smsc="b")


def test_a_part_submitted_after_the_bound_is_left_to_the_database_and_kept() -> None:
    """A receipt received a while ago (held, then matched in memory once its SMSC's form was
    settled) answers no part submitted after it was received (plus the clock slack): its id
    may have been given again since. The later part stays remembered for its own receipt."""
    parts = SentParts()
    parts.add("A1", _sent(1))  # submitted at 1000.0
    assert parts.take("A1", "a", final=True, now=NOW, submitted_by=999.0) is None
    assert len(parts) == 1
    assert parts.take("A1", "a", final=True, now=NOW, submitted_by=1000.0) == _sent(1)
