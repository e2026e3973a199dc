"""Subscriber numbers as people write them, read against real numbering plans (pure).

An import must never turn what a person wrote into somebody else's number. `MobileNumbers`
reads a number for a home country with phonenumbers and says which mobile number it is
(E.164 digits, as the store keeps them: 33612345678), or why it cannot say:

- `+33 6 12 34 56 78`, `0033612345678`: international, nothing to guess;
- `06 12 34 56 78`, `06.12.34.56.78`: national, in the home country's plan (for France that plan
  also holds the overseas départements: 0690 12 34 56 is +590 690 12 34 56, in Guadeloupe);
- `33612345678`, the stored form: international without its `+`; `612345678` (a spreadsheet's
  leftover of 0612345678): national without its leading 0. Digits alone are read both ways, and
  refused as ambiguous when both readings are real numbers;
- a national 0 written after the country code (`+33 0 6...`) is dropped, as phonenumbers does.

Refused, with the reason: anything but digits (and spaces, dots, hyphens, a leading +), a number
that no plan has, a number that is not a mobile one (fixed line, premium rate...).

Speed: a full phonenumbers check costs tens of µs and an import reads ~200k numbers a second.
The verdict for a number depends only on its first digits: each pattern of a plan lets its last
digits be any digit (see `digit_patterns`). So numbers are grouped in *blocks* that share their
length and all but their last digits; a block is decided once, with phonenumbers, when it is
provably decided the same way for all its numbers, and every later number of that block costs a
dictionary lookup. Blocks that cannot be proven uniform are checked number by number.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import phonenumbers
from phonenumbers import PhoneMetadata, PhoneNumber, PhoneNumberDesc, PhoneNumberType

from broadcaster.domain.digit_patterns import digit_pattern
from broadcaster.errors import ConfigError

SHARED_PLANS: dict[str, tuple[str, ...]] = {"FR": ("FR", "GP", "MQ", "GF", "RE", "YT")}
"""Home countries whose national numbers also reach other regions of phonenumbers: France's
ten-digit plan holds the overseas départements (0690... Guadeloupe, 0696... Martinique, 0694...
Guyane, 0692/0693... La Réunion, 0639... Mayotte), which phonenumbers files under their own
country codes. Any other home country's plan is its own."""

_K = TypeVar("_K")
_V = TypeVar("_V")
MOBILE_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_SEPARATORS = str.maketrans("", "", " .-")
_SHAPE = re.compile(r"\+?[0-9]{1,20}")
_TYPE_NAMES = {
    PhoneNumberType.FIXED_LINE: "fixed-line",
    PhoneNumberType.TOLL_FREE: "toll-free",
    PhoneNumberType.PREMIUM_RATE: "premium-rate",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.VOIP: "VoIP",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "company (UAN)",
    PhoneNumberType.VOICEMAIL: "voicemail",
}
_DESCS = (
    "general_desc",
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)
"""Every description phonenumbers may consult to tell whether a number is valid and its type."""


@dataclass(frozen=True)
class _Reading:
    """One way to read a written number: a country code, and where in the compact text the
    national significant number starts (it runs to the end)."""

    country_code: int
    start: int


@dataclass(frozen=True)
class _Accept:
    """A block's verdict: each of its numbers is the mobile `prefix + text[start:]`."""

    prefix: str
    start: int


_Verdict = _Accept | int | None
"""For a block: its numbers' verdict; a smaller block length (int) to decide with instead; or
None: check each number on its own."""


class MobileNumbers:
    """Reads subscriber numbers for one home country (see the module's docstring)."""

    def __init__(self, home_country: str) -> None:
        home = PhoneMetadata.metadata_for_region(home_country.upper())
        if home is None:
            raise ConfigError(
                f"home_country {home_country!r} is not a country phonenumbers knows (FR, BE, ...)"
            )
        self.home_country = home_country.upper()
        plan = SHARED_PLANS.get(self.home_country, (self.home_country,))
        self._plan_codes = tuple(dict.fromkeys(_country_code(region) for region in plan))
        self._national_prefix = home.national_prefix or ""
        idd = home.international_prefix or "00"
        self._idd = re.compile(idd)
        self._idd_width = digit_pattern(idd).max_width or 4
        self.block_tail = max(1, _mobile_tail(home))
        """The digits a block leaves free for the home country's mobiles (6 for France)."""
        self._levels: dict[int, _Memo[str, _Verdict]] = {}
        self.canonical = _Memo(self._canonical_block)
        """Block (a number without its last `block_tail` digits) -> whether every number of
        it, written as ASCII digits alone, is already a mobile number in E.164 digits: the
        import's fast path asks this of `number[:-block_tail]`."""

    def normalise(self, text: str) -> int:
        """The mobile number `text` means, as E.164 digits; ValueError with a reason if none."""
        compact = text.translate(_SEPARATORS)
        if not _SHAPE.fullmatch(compact):
            raise ValueError(
                f"msisdn {text!r} is not a phone number: digits only, with an optional leading + "
                "and spaces, dots or hyphens between them"
            )
        tail = self.block_tail
        while 0 < tail < len(compact):
            verdict = self._level(tail)[compact[:-tail]]
            if isinstance(verdict, _Accept):
                return int(verdict.prefix + compact[verdict.start :])
            if verdict is None:
                break
            tail = verdict
        return self._read_alone(text, compact)

    # --- blocks ----------------------------------------------------------------------------------

    def _level(self, tail: int) -> _Memo[str, _Verdict]:
        level = self._levels.get(tail)
        if level is None:
            level = self._levels[tail] = _Memo(lambda block: self._block_verdict(block, tail))
        return level

    def _canonical_block(self, block: str) -> bool:
        if not block or not block.isdigit():
            return False
        verdict = self._level(self.block_tail)[block]
        return isinstance(verdict, _Accept) and verdict.prefix == block[: verdict.start]

    def _block_verdict(self, block: str, tail: int) -> _Verdict:
        """The verdict for every number `block` + `tail` digits, if provably the same for all."""
        sample = block + "0" * tail
        readings, looked = self._readings(sample)
        provable = min(
            [len(sample) - looked, *(self._free_digits(r, sample, tail) for r in readings)]
        )
        if provable < tail:
            return provable if provable > 0 else None
        valid = [(r, kind) for r in readings if (kind := self._kind(r, sample)) is not None]
        if len(valid) != 1 or valid[0][1] not in MOBILE_TYPES:
            return None  # refused: each number is read alone, to say why
        reading = valid[0][0]
        return _Accept(str(reading.country_code), reading.start)

    def _free_digits(self, reading: _Reading, sample: str, tail: int) -> int:
        """How many trailing digits of the reading no pattern that may decide it looks at, the
        patterns that may match numbers of the block (its last `tail` digits unknown)."""
        national = sample[reading.start :]
        length = len(national)
        known = national[: max(0, length - tail)]
        free = length
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(reading.country_code, ())
        for metadata in map(lambda r: _metadata(r, reading.country_code), regions):
            if metadata is None:
                continue
            if len(regions) > 1 and metadata.leading_digits:  # chooses among the regions
                width = digit_pattern(metadata.leading_digits).max_width
                free = min(free, 0 if width is None else max(0, length - width))
            for desc in _descs(metadata, length):
                pattern = digit_pattern(desc.national_number_pattern or "")
                if pattern.free_tail < free and pattern.may_start(known):
                    free = pattern.free_tail
        return free

    # --- one number ------------------------------------------------------------------------------

    def _readings(self, compact: str) -> tuple[list[_Reading], int]:
        """The ways to read a compact number, and how many of its first characters chose them."""
        if compact.startswith("+"):
            return self._international(compact, 1)
        idd = self._idd.match(compact)
        if idd:
            readings, looked = self._international(compact, idd.end())
            return readings, max(looked, self._idd_width)
        prefix = self._national_prefix
        if prefix and compact.startswith(prefix):
            national = [_Reading(code, len(prefix)) for code in self._plan_codes]
            return national, max(len(prefix), self._idd_width)
        readings, looked = self._international(compact, 0)
        readings += [_Reading(code, 0) for code in self._plan_codes]
        return readings, max(looked, len(prefix), self._idd_width)

    def _international(self, compact: str, at: int) -> tuple[list[_Reading], int]:
        """A country code at `at`, then the number; also without a national prefix written after
        the code (+33 0 6...). Country codes are prefix-free: the first one found is it."""
        for width in (1, 2, 3):
            code = int(compact[at : at + width] or "0")
            if compact[at : at + 1] != "0" and code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
                start = at + width
                readings = [_Reading(code, start)]
                prefix = _national_prefix(code)
                if prefix and compact.startswith(prefix, start):
                    readings.append(_Reading(code, start + len(prefix)))
                return readings, start + len(prefix)
        return [], at + 3

    def _kind(self, reading: _Reading, compact: str) -> int | None:
        """The reading's type of number (PhoneNumberType) if phonenumbers finds it valid."""
        national = compact[reading.start :]
        if not national.strip("0"):
            return None
        zeros = len(national) - len(national.lstrip("0"))
        number = PhoneNumber(
            country_code=reading.country_code,
            national_number=int(national),
            italian_leading_zero=zeros > 0 or None,
            number_of_leading_zeros=zeros or None,
        )
        if not phonenumbers.is_valid_number(number):
            return None
        kind: int = phonenumbers.number_type(number)
        return kind

    def _read_alone(self, text: str, compact: str) -> int:
        """The slow path: this number checked on its own, with the reason when it is refused."""
        readings, _ = self._readings(compact)
        valid = {
            f"{r.country_code}{compact[r.start :]}": kind
            for r in readings
            if (kind := self._kind(r, compact)) is not None
        }
        if not valid:
            explicit = compact.startswith("+") or self._idd.match(compact) is not None
            coded = [
                r
                for r in readings
                if r.start > 0 and (explicit or r.country_code in self._plan_codes)
            ]
            if coded:  # its country is clear: the number, not its form, is wrong
                shown = f"+{coded[0].country_code} {compact[coded[-1].start :]}"
                raise ValueError(
                    f"msisdn {text!r} reads as {shown}, a number in no range in use (a typo, or "
                    "an unallocated range): check it"
                )
            raise ValueError(
                f"msisdn {text!r} is not a valid phone number; write it in international form "
                f"(33612345678, +33 6 12 34 56 78) or as a national number of {self.home_country}"
            )
        if not any(kind in MOBILE_TYPES for kind in valid.values()):
            number, kind = next(iter(valid.items()))  # the home country's reading comes first
            name = _TYPE_NAMES.get(kind, "non-mobile")
            raise ValueError(
                f"msisdn {text!r} reads as +{number}, a {name} number, not a mobile one"
            )
        if len(valid) > 1:
            numbers = " or ".join(f"+{number}" for number in valid)
            raise ValueError(
                f"msisdn {text!r} is ambiguous: {numbers}; write it with + and its country code, "
                "or as a national number with its leading 0"
            )
        return int(next(iter(valid)))


class _Memo(dict[_K, _V]):
    """A dict that works out a missing value once."""

    def __init__(self, work_out: Callable[[_K], _V]) -> None:
        super().__init__()
        self._work_out = work_out

    def __missing__(self, key: _K) -> _V:
        value = self[key] = self._work_out(key)
        return value


def _metadata(region: str, country_code: int) -> PhoneMetadata | None:
    if region == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
        return PhoneMetadata.metadata_for_nongeo_region(country_code)
    return PhoneMetadata.metadata_for_region(region)


def _country_code(region: str) -> int:
    metadata = PhoneMetadata.metadata_for_region(region)
    if metadata is None or metadata.country_code is None:
        raise ConfigError(f"phonenumbers has no country code for region {region}")
    return metadata.country_code


def _national_prefix(country_code: int) -> str:
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = _metadata(region, country_code)
    return (metadata.national_prefix or "") if metadata is not None else ""


def _descs(metadata: PhoneMetadata, length: int) -> Iterator[PhoneNumberDesc]:
    """The descriptions phonenumbers would match a national number of `length` digits against."""
    for name in _DESCS:
        desc = getattr(metadata, name)
        if desc is None or not desc.national_number_pattern:
            continue
        if desc.possible_length and length not in desc.possible_length:
            continue
        yield desc


def _mobile_tail(metadata: PhoneMetadata) -> int:
    mobile = metadata.mobile
    if mobile is None or not mobile.national_number_pattern:
        return 0
    return digit_pattern(mobile.national_number_pattern).free_tail
