"""Subscriber numbers are read as a person means them, for a home country, or refused with the
reason; a block of numbers decided at once is decided as each of its numbers would be."""

from __future__ import annotations

import random

import phonenumbers
import pytest
from phonenumbers import PhoneNumberFormat, PhoneNumberType

from broadcaster.domain.msisdn import MOBILE_TYPES, MobileNumbers
from broadcaster.errors import ConfigError

FRANCE = MobileNumbers("FR")


@pytest.mark.parametrize(
    ("written", "number"),
    [
        ("33612345678", 33612345678),  # as the store keeps it
        ("+33612345678", 33612345678),
        ("+33 6 12 34 56 78", 33612345678),
        ("0033612345678", 33612345678),
        ("0612345678", 33612345678),
        ("06 12 34 56 78", 33612345678),
        ("06.12.34.56.78", 33612345678),
        ("06-12-34-56-78", 33612345678),
        ("612345678", 33612345678),  # what a spreadsheet leaves of 0612345678
        ("+330612345682", 33612345682),  # a national 0 after the country code
        ("330612345682", 33612345682),
        ("0799123456", 33799123456),
        # The overseas départements, international and national.
        ("590690123456", 590690123456),  # Guadeloupe
        ("+590 690 12 34 56", 590690123456),
        ("0690123456", 590690123456),
        ("596696123456", 596696123456),  # Martinique
        ("0696123456", 596696123456),
        ("594694123456", 594694123456),  # Guyane
        ("262692123456", 262692123456),  # La Réunion
        ("0693123456", 262693123456),
        ("262639011234", 262639011234),  # Mayotte
        ("0639011234", 262639011234),
        # Abroad, with + or in international form.
        ("+32470123456", 32470123456),
        ("447400123456", 447400123456),
        ("+687791234", 687791234),
    ],
)
def test_numbers_are_read_as_meant(written: str, number: int) -> None:
    assert FRANCE.normalise(written) == number


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("33612a45678", "'33612a45678' is not a phone number: digits only"),
        ("０６12345678", "is not a phone number"),  # full-width digits
        ("٣٣٦١٢٣٤٥٦٧٨", "is not a phone number"),
        ("+", "is not a phone number"),
        ("", "is not a phone number"),
        # Its country clear (written with it, or national), the number itself is wrong: said
        # so, not "write it in international form" of a number written that way already.
        ("33700000001", "'33700000001' reads as +33 700000001, a number in no range in use"),
        ("+33 7 12 34 56 78", "reads as +33 712345678, a number in no range in use"),
        ("12345", "is not a valid phone number; write it in international form"),
        ("+330612345", "reads as +33 612345, a number in no range in use"),
        ("0639123456", "reads as +33 639123456, a number in no range"),  # not Mayotte's ranges
        ("33112345678", "'33112345678' reads as +33112345678, a fixed-line number, not a mobile"),
        ("0112345678", "reads as +33112345678, a fixed-line number"),
        ("0899123456", "reads as +33899123456, a premium-rate number"),
        ("0800123456", "a toll-free number"),
        (
            "687791234",  # New Caledonia's mobile, or France's 06 87 79 12 34 without its 0
            "'687791234' is ambiguous: +687791234 or +33687791234; write it with + and its",
        ),
    ],
)
def test_what_cannot_be_trusted_is_refused_with_the_reason(written: str, reason: str) -> None:
    with pytest.raises(ValueError, match="msisdn") as caught:
        FRANCE.normalise(written)
    assert reason in str(caught.value)


def test_another_home_country_reads_its_own_national_numbers() -> None:
    belgium = MobileNumbers("be")
    assert belgium.home_country == "BE"
    assert belgium.normalise("0470 12 34 56") == 32470123456
    assert belgium.normalise("+33612345678") == 33612345678
    with pytest.raises(ValueError, match=r"reads as \+32 690123456, a number in no range in use"):
        belgium.normalise("0690123456")  # France's plan holds Guadeloupe; Belgium's does not


def test_an_unknown_home_country_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="home_country 'XX' is not a country phonenumbers"):
        MobileNumbers("XX")


def test_canonical_blocks_are_the_fast_path_of_stored_numbers() -> None:
    numbers = MobileNumbers("FR")
    assert numbers.block_tail == 6  # France's mobiles: the last six digits never matter
    assert numbers.canonical["33612"] is True
    assert numbers.canonical["33700"] is False  # no such mobile range
    assert numbers.canonical["33112"] is False  # fixed line
    assert numbers.canonical["0612"] is False  # national: valid, but not as written
    assert numbers.canonical[""] is False  # every number of six digits or fewer
    assert numbers.canonical["590690"] is False  # decided by longer blocks: not this fast path
    assert numbers.normalise("590690123456") == 590690123456


def _samples(rng: random.Random) -> list[str]:
    """Numbers written every which way: mobiles of many countries, near misses, noise."""
    regions = ["FR", "GP", "MQ", "GF", "RE", "YT", "BE", "DE", "GB", "US", "NC", "PF", "IT", "MA"]
    written = []
    for region in regions:
        for kind in (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is None:
                continue
            e164 = phonenumbers.format_number(example, PhoneNumberFormat.E164)[1:]
            national = phonenumbers.national_significant_number(example)
            for _ in range(40):
                keep = rng.randrange(len(e164) - 2, len(e164) + 1) - rng.randrange(6)
                digits = e164[:keep] + "".join(rng.choices("0123456789", k=len(e164) - keep))
                nsn = digits[len(digits) - len(national) :]
                written += [digits, "+" + digits, "0" + nsn, nsn, "00" + digits]
    written += ["".join(rng.choices("0123456789", k=rng.randrange(5, 16))) for _ in range(500)]
    return written


@pytest.mark.parametrize("seed", range(3))
def test_blocks_decide_as_each_number_would(seed: int) -> None:
    rng = random.Random(seed)
    numbers = MobileNumbers("FR")
    for text in _samples(rng):
        try:
            expected: int | str = numbers._read_alone(text, text)
        except ValueError as exc:
            expected = str(exc)
        try:
            got: int | str = numbers.normalise(text)
        except ValueError as exc:
            got = str(exc)
        assert got == expected, text
        if text.isdigit() and numbers.canonical[text[: -numbers.block_tail]]:
            assert got == int(text), text
    assert len(numbers.canonical) > 10  # the fast path was asked


def _mobile_per_phonenumbers(text: str) -> int | None:
    """E.164 digits of the mobile number phonenumbers parses from `text`, if it is one."""
    try:
        parsed = phonenumbers.parse(text)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    if phonenumbers.number_type(parsed) not in MOBILE_TYPES:
        return None
    return int(phonenumbers.format_number(parsed, PhoneNumberFormat.E164)[1:])


def test_international_numbers_agree_with_phonenumbers() -> None:
    rng = random.Random(7)
    outcomes = []
    for text in _samples(rng):
        if not text.startswith("+") or len(text) < 4:
            continue
        try:
            got: int | str = FRANCE.normalise(text)
        except ValueError as exc:
            got = "ambiguous" if "ambiguous" in str(exc) else "refused"
        expected = _mobile_per_phonenumbers(text)
        if got != "ambiguous":  # refused where phonenumbers picks one of two readings
            assert got == (expected or "refused"), text
        outcomes.append(got)
    assert sum(isinstance(o, int) for o in outcomes) > 100
    assert outcomes.count("refused") > 100
