"""The parts a process had accepted, remembered for their receipts (engine/sent_parts.py)."""

from __future__ import annotations

from broadcaster.engine.sent_parts import SentParts


def _sent(msisdn: int, smsc: str = "a") -> tuple[str, int, int, int, float, str | None]:
    return (smsc, 7, msisdn, 1, 1000.0, "75")


def test_a_final_receipt_takes_its_part_and_forgets_it_an_intermediate_one_leaves_it() -> None:
    parts = SentParts()
    parts.add("A1", _sent(1))
    assert parts.take("A1", "a", final=False) == _sent(1)  # ENROUTE: more to come
    assert parts.take("A1", "a", final=True) == _sent(1)  # DELIVRD
    assert parts.take("A1", "a", final=True) is None  # a duplicate: the database's to match
    assert len(parts) == 0


def test_an_id_of_another_smsc_or_never_given_is_not_taken() -> None:
    parts = SentParts()
    parts.add("A1", _sent(1, smsc="a"))
    assert parts.take("A1", "b", final=True) is None
    assert parts.take("B2", "a", final=True) is None
    assert parts.take("A1", "a", final=True) == _sent(1)  # still there for its own SMSC


def test_an_id_given_again_stands_for_the_later_part() -> None:
    """An SMSC that restarts reuses ids: the database's lookup picks the latest submission."""
    parts = SentParts(capacity=4)
    parts.add("A1", _sent(1))
    parts.add("B2", _sent(2))  # A1 moves to the previous generation
    parts.add("A1", _sent(3))
    assert parts.take("A1", "a", final=True) == _sent(3)
    assert parts.take("A1", "a", final=True) is None  # a copy: not the earlier part's


def test_memory_is_bounded_the_oldest_generation_is_dropped() -> None:
    parts = SentParts(capacity=10)
    for n in range(1_000):
        parts.add(f"{n:X}", _sent(n))
        assert len(parts) <= 10
    assert parts.take(f"{999:X}", "a", final=True) == _sent(999)
    assert parts.take(f"{995:X}", "a", final=True) == _sent(995)  # the previous five
    assert parts.take(f"{994:X}", "a", final=True) is None  # dropped with its generation
    assert parts.take("0", "a", final=True) is None
