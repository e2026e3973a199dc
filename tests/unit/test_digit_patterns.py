"""The numbering-plan patterns are read safely: a free tail never frees a digit that matters, and
a prefix that may start a match is never said not to (checked against every pattern phonenumbers
ships, with its example numbers)."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import phonenumbers
import pytest
from phonenumbers import PhoneMetadata

from broadcaster.domain.digit_patterns import digit_pattern
from broadcaster.domain.msisdn import _DESCS


@pytest.mark.parametrize(
    ("pattern", "tail", "widest"),
    [
        (r"(?:6(?:[0-24-8]\d|3[0-8]|9[589])|7[3-9]\d)\d{6}", 6, 9),  # France, mobile
        (r"[1-9]\d{8}", 8, 9),
        (r"836(?:0[0-36-9]|[1-9]\d)\d{4}|8(?:1[2-9]|2[2-47-9])\d{6}", 4, 9),
        (r"69(?:0\d\d|1(?:2[2-9]|3[0-5]))\d{4}", 4, 9),
        (r"\d{2,4}", 2, 4),
        (r"1\d?", 0, 2),  # an optional digit at the end: nothing is free
        (r"(?:1\d)+", 1, None),
        (r"[^0]5\d{3}", 3, 5),
        (r"00", 0, 2),
    ],
)
def test_free_tails_and_widths(pattern: str, tail: int, widest: int | None) -> None:
    read = digit_pattern(pattern)
    assert (read.free_tail, read.max_width) == (tail, widest)


def test_prefixes_that_may_start_a_match() -> None:
    premium = digit_pattern(r"836(?:0[0-36-9]|[1-9]\d)\d{4}|8(?:1[2-9]|2[2-47-9])\d{6}")
    assert premium.may_start("")
    assert premium.may_start("8360")
    assert premium.may_start("812")
    assert premium.may_start("836075")
    assert not premium.may_start("836045")  # 836 0 then 4: not in [0-36-9]
    assert not premium.may_start("6")
    assert premium.may_start("8364")  # 836 then [1-9]\d
    assert not premium.may_start("810")  # neither 836 nor 81[2-9]
    assert not premium.may_start("811")
    assert not premium.may_start("8121234567")  # longer than any match
    assert digit_pattern(r"(?:12)*3").may_start("121212")


@pytest.mark.parametrize("pattern", [r"\w{3}", r"6(?=1)\d", r"\d{2,}?", r"[a-z]", r"(12", "1{x}"])
def test_unknown_syntax_frees_nothing_and_may_start_anything(pattern: str) -> None:
    read = digit_pattern(pattern)
    assert read.tree is None
    assert (read.free_tail, read.max_width) == (0, None)
    assert read.may_start("999")


def _shipped_examples() -> Iterator[tuple[str, str]]:
    """(pattern, example number) of every description phonenumbers ships."""
    for code, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            metadata = (
                PhoneMetadata.metadata_for_nongeo_region(code)
                if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
                else PhoneMetadata.metadata_for_region(region)
            )
            for name in _DESCS if metadata is not None else ():
                desc = getattr(metadata, name)
                if desc is not None and desc.national_number_pattern and desc.example_number:
                    yield desc.national_number_pattern, desc.example_number


def test_every_shipped_pattern_is_read_and_its_claims_hold() -> None:
    rng = random.Random(18)
    examples = list(_shipped_examples())
    assert len(examples) > 1000
    for pattern, example in examples:
        read = digit_pattern(pattern)
        assert read.tree is not None, pattern
        compiled = re.compile(pattern)
        assert compiled.fullmatch(example), (pattern, example)
        assert all(read.may_start(example[:k]) for k in range(len(example) + 1)), pattern
        keep = len(example) - read.free_tail
        assert keep >= 0, pattern
        for _ in range(20):
            # Any digits in the free tail: the example still matches...
            changed = example[:keep] + "".join(rng.choices("0123456789", k=read.free_tail))
            assert compiled.fullmatch(changed), (pattern, example, changed)
            # ...and a near miss (a digit changed before the tail) is decided by its head alone.
            if keep:
                at = rng.randrange(keep)
                miss = changed[:at] + rng.choice("0123456789") + changed[at + 1 :]
                other = miss[:keep] + "".join(rng.choices("0123456789", k=read.free_tail))
                assert bool(compiled.fullmatch(miss)) == bool(compiled.fullmatch(other)), pattern
                if not read.may_start(miss[:keep]):
                    assert not compiled.fullmatch(miss), (pattern, miss)
