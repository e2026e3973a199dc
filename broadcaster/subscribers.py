"""Subscriber rows: validation of imported CSV rows and realistic synthetic generation (pure).

A row is (msisdn, departement, commune, cell_id, lang, test_group). Validation never guesses:
a row it cannot read exactly is rejected with its line number and the reason, and the import
goes on with the valid ones.
"""

from __future__ import annotations

import csv
import random
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from broadcaster.targeting import commune_departement

CSV_COLUMNS = ("msisdn", "departement", "commune", "cell_id", "lang", "test_group")
REQUIRED_COLUMNS = ("msisdn", "departement", "lang")
_MSISDN = re.compile(r"^\+?([1-9]\d{7,14})$")
_COMMUNE = re.compile(r"^(97[1-6]\d{2}|2[AB]\d{3}|\d{5})$")
_LANG = re.compile(r"^[a-z]{2}$")
_CELL = re.compile(r"^[A-Za-z0-9._:-]{1,32}$")
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}

SubscriberRow = tuple[int, str, str | None, str | None, str, bool]


@dataclass(frozen=True)
class Rejected:
    """A row that was not imported, and why."""

    line: int
    reason: str
    raw: str


def validate_row(record: Mapping[str, str | None], known_departements: set[str]) -> SubscriberRow:
    """Return the row to store, or raise ValueError with a reason a person can act on."""
    raw_msisdn = (record.get("msisdn") or "").strip().replace(" ", "")
    match = _MSISDN.match(raw_msisdn)
    if not match:
        raise ValueError(
            f"msisdn {raw_msisdn!r} is not an international number "
            "(8 to 15 digits, country code first, e.g. 33612345678)"
        )
    msisdn = int(match.group(1))
    dep = (record.get("departement") or "").strip().upper()
    if dep not in known_departements:
        raise ValueError(f"unknown département {dep!r}")
    commune = (record.get("commune") or "").strip().upper() or None
    if commune is not None:
        if not _COMMUNE.match(commune):
            raise ValueError(f"commune {commune!r} is not an INSEE code")
        if commune_departement(commune) != dep:
            raise ValueError(f"commune {commune} is not in département {dep}")
    cell = (record.get("cell_id") or "").strip() or None
    if cell is not None and not _CELL.match(cell):
        raise ValueError(f"cell_id {cell!r} has characters other than letters, digits and ._:-")
    lang = (record.get("lang") or "").strip().lower()
    if not _LANG.match(lang):
        raise ValueError(f"language {lang!r} is not a two-letter code (fr, en, ...)")
    flag = (record.get("test_group") or "").strip().lower()
    if flag not in _TRUE | _FALSE:
        raise ValueError(f"test_group {flag!r} is not one of 1/0, true/false, yes/no")
    return (msisdn, dep, commune, cell, lang, flag in _TRUE)


def read_csv(
    lines: Iterable[str], known_departements: set[str]
) -> Iterator[SubscriberRow | Rejected]:
    """Validate a CSV stream with a header row; yields rows and rejections in file order.

    A number seen twice in one file is rejected the second time: an import says one thing per
    subscriber.
    """
    reader = csv.DictReader(lines)
    header = reader.fieldnames or []
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        yield Rejected(1, f"header lacks column(s) {', '.join(missing)}", ",".join(header))
        return
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        yield Rejected(1, f"header has unknown column(s) {', '.join(unknown)}", ",".join(header))
        return
    seen: set[int] = set()
    for record in reader:
        line = reader.line_num
        raw = ",".join(str(v) for v in record.values() if v is not None)
        if None in record:
            yield Rejected(line, "more fields than the header has columns", raw)
            continue
        try:
            row = validate_row(record, known_departements)
        except ValueError as exc:
            yield Rejected(line, str(exc), raw)
            continue
        if row[0] in seen:
            yield Rejected(line, f"msisdn {row[0]} appears earlier in the file", raw)
            continue
        seen.add(row[0])
        yield row


# Synthetic subscribers: French mobile numbers 336xxxxxxxx and 337xxxxxxxx, drawn by an affine
# permutation of [0, 2e8) so millions of distinct numbers cost no memory and look random.
_MOBILE_BASE = 33_600_000_000
_MOBILE_SPAN = 200_000_000
_STRIDE = 122_949_829  # coprime with the span: i -> (i * stride + offset) mod span is a bijection
LANGUAGE_MIX = (("fr", 0.90), ("en", 0.04), ("es", 0.03), ("de", 0.02), ("ar", 0.01))
TEST_GROUP_SHARE = 0.001


def synth_rows(
    count: int,
    populations: Mapping[str, int],
    seed: int = 1,
    start: int = 0,
) -> Iterator[SubscriberRow]:
    """`count` synthetic subscribers, spread over départements in proportion to population.

    Every département gets at least one test-group subscriber when it gets any, so drills can be
    tried everywhere. `start` offsets the number sequence so successive calls never collide.
    """
    if count < 0 or count + start > _MOBILE_SPAN:
        raise ValueError(f"can synthesise between 0 and {_MOBILE_SPAN} subscribers")
    rng = random.Random(seed)
    deps = sorted(populations)
    shares = _apportion(count, [populations[d] for d in deps])
    langs = [lang for lang, _ in LANGUAGE_MIX]
    weights = [w for _, w in LANGUAGE_MIX]
    offset = rng.randrange(_MOBILE_SPAN)
    i = start
    for dep, n in zip(deps, shares, strict=True):
        communes = max(1, min(600, n // 50))
        prefix = dep
        width = 3 if len(prefix) == 2 else 2
        drawn = rng.choices(langs, weights, k=n)
        for k in range(n):
            msisdn = _MOBILE_BASE + (i * _STRIDE + offset) % _MOBILE_SPAN
            i += 1
            commune = f"{prefix}{rng.randrange(1, min(communes, 10**width - 1) + 1):0{width}d}"
            yield (
                msisdn,
                dep,
                commune,
                f"C{dep}{rng.randrange(1, 200):03d}",
                drawn[k],
                k == 0 or rng.random() < TEST_GROUP_SHARE,
            )


def _apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainder method)."""
    whole = sum(weights)
    if whole <= 0:
        raise ValueError("populations must be positive")
    exact = [total * w / whole for w in weights]
    shares = [int(x) for x in exact]
    rest = total - sum(shares)
    for idx in sorted(range(len(weights)), key=lambda j: exact[j] - shares[j], reverse=True)[:rest]:
        shares[idx] += 1
    return shares
