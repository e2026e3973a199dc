"""Subscriber rows: validation of imported CSV rows and realistic synthetic generation (pure).

A row is (msisdn, departement, commune, cell_id, lang, test_group). Validation never guesses:
a row it cannot read exactly is rejected with its line number and the reason, and the import
goes on with the valid ones. What rows are checked against is an import's `ImportRules`: the
départements, the home country's numbering plan (`domain.msisdn`: numbers are stored as E.164
digits, 33612345678, whichever way they were written) and the language codes (ISO 639-1,
`domain.languages`).

Millions of rows go to the store as `CopyBatch`es: PostgreSQL COPY text, built in big batches
(a Python object per row costs more than the database's work), with the subscriber counts per
area they add (`AreaCounter`), so that a bulk load needs no second pass to count.
"""

from __future__ import annotations

import bisect
import csv
import itertools
import operator
import random
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol, TypeVar

from broadcaster.domain.languages import ISO_639_1
from broadcaster.domain.msisdn import MobileNumbers
from broadcaster.targeting import CELL_ID, commune_departement

CSV_COLUMNS = ("msisdn", "departement", "commune", "cell_id", "lang", "test_group")
REQUIRED_COLUMNS = ("msisdn", "departement", "lang")
OPTIONAL_COLUMNS = tuple(c for c in CSV_COLUMNS if c not in REQUIRED_COLUMNS)
_COMMUNE = re.compile(r"^(97[1-6]\d{2}|2[AB]\d{3}|\d{5})$")
_CELL = CELL_ID
_TRUE = {"1", "true", "yes", "y", "t"}
_FALSE = {"0", "false", "no", "n", "f", ""}

SubscriberRow = tuple[int, str, str | None, str | None, str, bool]
_K = TypeVar("_K")
_V = TypeVar("_V")
_T = TypeVar("_T")


@dataclass(frozen=True)
class ImportRules:
    """What the rows of an import are checked against."""

    departements: frozenset[str]
    """The départements the database knows."""
    numbers: MobileNumbers
    """The home country's numbering plan: how a written number is read, and refused."""
    languages: frozenset[str] = ISO_639_1


@dataclass(frozen=True)
class Rejected:
    """A row that was not imported, and why."""

    line: int
    reason: str
    raw: str


def validate_row(record: Mapping[str, str | None], rules: ImportRules) -> SubscriberRow:
    """Return the row to store, or raise ValueError with a reason a person can act on.

    Fields are checked in column order, so a row with several problems names its first one.
    """
    msisdn = rules.numbers.normalise(_field(record, "msisdn"))
    dep = _departement(_field(record, "departement").upper(), rules.departements)
    return (
        msisdn,
        dep,
        _commune(_field(record, "commune").upper(), dep),
        _cell(_field(record, "cell_id")),
        _language(_field(record, "lang").lower(), rules.languages),
        _test_group(_field(record, "test_group").lower()),
    )


def _field(record: Mapping[str, str | None], name: str) -> str:
    """A field as written, without surrounding blanks; "" when absent."""
    return (record.get(name) or "").strip()


def _departement(code: str, known_departements: frozenset[str]) -> str:
    if code not in known_departements:
        raise ValueError(f"unknown département {code!r}")
    return code


def _commune(code: str, dep: str) -> str | None:
    if not code:
        return None
    if not _COMMUNE.match(code):
        raise ValueError(f"commune {code!r} is not an INSEE code")
    if commune_departement(code) != dep:
        raise ValueError(f"commune {code} is not in département {dep}")
    return code


def _cell(cell: str) -> str | None:
    if cell and not _CELL.match(cell):
        raise ValueError(f"cell_id {cell!r} has characters other than letters, digits and ._:-")
    return cell or None


def _language(lang: str, languages: frozenset[str]) -> str:
    if lang not in languages:
        raise ValueError(
            f"language {lang!r} is not a two-letter ISO 639-1 language code (fr, en, ar, ...)"
        )
    return lang


def _test_group(flag: str) -> bool:
    if flag not in _TRUE | _FALSE:
        raise ValueError(f"test_group {flag!r} is not one of 1/0, true/false, yes/no")
    return flag in _TRUE


def read_csv(lines: Iterable[str], rules: ImportRules) -> Iterator[SubscriberRow | Rejected]:
    """Validate a CSV stream with a header row; yields rows and rejections in file order.

    A number seen twice in one file is rejected the second time: an import says one thing per
    subscriber. (The rows `csv_batches` loads, one at a time.)
    """
    rejected: list[Rejected] = []
    for batch in csv_batches(lines, rules, rejected.append, batch_rows=1):
        yield from rejected
        rejected.clear()
        m, dep, commune, cell, lang, flag = batch.data.decode().rstrip("\n").split("\t")
        yield (int(m), dep, _or_none(commune), _or_none(cell), lang, flag == "t")
    yield from rejected


def _or_none(value: str) -> str | None:
    return None if value == _NULL else value


def csv_batches(
    lines: Iterable[str],
    rules: ImportRules,
    on_reject: Callable[[Rejected], None],
    counter: AreaCounter | None = None,
    batch_rows: int = 100_000,
) -> Iterator[CopyBatch]:
    """Validate a CSV stream with a header row into COPY batches; rejections go to `on_reject`
    (line number, reason, raw row) as they come, and the import goes on with the valid rows.

    A short row reads as if its missing trailing fields were empty.
    """
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader, [])]
    problem = _header_problem(header)
    if problem:
        # One rejection for the whole file: say that no row was read, and what the header is.
        expected = f"{', '.join(REQUIRED_COLUMNS)}, optionally {', '.join(OPTIONAL_COLUMNS)}"
        reason = f"{problem} (a header names {expected}): no row was read"
        on_reject(Rejected(1, reason, ",".join(header)))
        return
    yield from _CsvFile(header, rules).batches(reader, on_reject, counter, batch_rows)


_Canonical = tuple[_T, str]
"""A field (or two) of a row already in canonical form: its value in the row, and its COPY
text (with the tab before it). A plain tuple: the fast path reads it by index, once per row."""


class _CsvFile:
    """A CSV file being imported: where its columns are, and the field values it has shown.

    Rows already in canonical form (the common case) take a fast path: their fields are looked
    up in tables of the values seen so far (`_Memo`), each giving the `_Canonical` form of a
    value, or None for one that needs `validate_row`, which normalises the row or says why it
    cannot. Either way the row is the one `validate_row` returns.
    """

    def __init__(self, header: list[str], rules: ImportRules) -> None:
        self.header = header
        self.columns = header + [name for name in CSV_COLUMNS if name not in header]
        """The header, then the optional columns it lacks (read as empty fields)."""
        self.as_is_width = len(header) if self.columns == header else None
        """Records this wide are read as they are; None (the header lacks optional columns):
        every record is widened first."""
        self.rules = rules
        self.places = _Memo(partial(_canonical_place, rules.departements))
        self.cells = _Memo(_canonical_cell)
        self.audiences = _Memo(partial(_canonical_audience, rules.languages))

    def batches(
        self,
        reader: _CsvReader,
        on_reject: Callable[[Rejected], None],
        counter: AreaCounter | None,
        batch_rows: int,
    ) -> Iterator[CopyBatch]:
        """The file's valid rows as COPY batches; a refused record goes to `on_reject`.

        One frame on purpose, everything it needs in local variables: it runs once per
        subscriber and the import is Python-bound (one more function call per row costs 3 to 7%
        of it, measured). Its complexity is the flat list of checks of the fast path.
        """
        as_is = self.as_is_width
        at_msisdn, at_dep, at_commune, at_cell, at_lang, at_flag = map(
            self.columns.index, CSV_COLUMNS
        )
        places, cells, audiences = self.places, self.cells, self.audiences
        numbers = self.rules.numbers
        mobiles, free_digits, normalise = numbers.canonical, numbers.block_tail, numbers.normalise
        seen: set[int] = set()
        out: list[str] = []
        rows: list[SubscriberRow] = []
        for record in filter(None, reader):  # csv.reader gives [] for a blank line
            try:
                fields = record if len(record) == as_is else self.widened(record)
                number, dep, lang = fields[at_msisdn], fields[at_dep], fields[at_lang]
                place = places[dep, fields[at_commune]]
                cell = cells[fields[at_cell]]
                audience = audiences[lang, fields[at_flag]]
                if place and cell and audience:
                    # Digits only, of a block of mobile numbers written as validate_row keeps
                    # them; else the number as validate_row reads it (its first check).
                    if not (
                        number.isdigit() and number.isascii() and mobiles[number[:-free_digits]]
                    ):
                        number = str(normalise(number.strip()))
                    row = (int(number), dep, place[0], cell[0], lang, audience[0])
                    text = f"{number}{place[1]}{cell[1]}{audience[1]}"
                else:
                    row, text = self.validated(fields)
                if row[0] in seen:
                    raise ValueError(f"msisdn {row[0]} appears earlier in the file")
            except ValueError as exc:
                on_reject(Rejected(reader.line_num, str(exc), self.raw(record)))
                continue
            seen.add(row[0])
            out.append(text)
            rows.append(row)
            if len(out) >= batch_rows:
                yield _batch(out, rows, counter)
                out, rows = [], []
        if out:
            yield _batch(out, rows, counter)

    def widened(self, record: list[str]) -> list[str]:
        """The record with an empty field for each one it lacks (those of a short row, then
        those of the columns the header lacks); ValueError if it is longer than the header."""
        if len(record) > len(self.header):
            raise ValueError("more fields than the header has columns")
        return record + [""] * (len(self.columns) - len(record))

    def validated(self, fields: list[str]) -> tuple[SubscriberRow, str]:
        """The slow path: the row `validate_row` makes of the fields, and its COPY line."""
        row = validate_row(dict(zip(self.columns, fields, strict=True)), self.rules)
        return row, _copy_line(row)

    def raw(self, record: list[str]) -> str:
        """A refused record as it is reported: a short one padded with empty fields."""
        return ",".join(record) + "," * (len(self.header) - len(record))


class _CsvReader(Protocol):
    """What `_CsvFile.batches` needs of a csv.reader."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...


class _Memo(dict[_K, _V]):
    """A dict that works out a missing value once: the fast path's tables of the values seen
    (thousands of them for millions of rows)."""

    def __init__(self, work_out: Callable[[_K], _V]) -> None:
        super().__init__()
        self._work_out = work_out

    def __missing__(self, key: _K) -> _V:
        value = self[key] = self._work_out(key)
        return value


def _canonical_place(
    known_departements: frozenset[str], place: tuple[str, str]
) -> _Canonical[str | None] | None:
    """A known département and no commune, or one of its communes written as an INSEE code."""
    dep, commune = place
    if dep not in known_departements:
        return None
    if not commune:
        return (None, f"\t{dep}\t{_NULL}")
    if not _COMMUNE.match(commune) or commune_departement(commune) != dep:
        return None
    return (commune, f"\t{dep}\t{commune}")


def _canonical_cell(cell: str) -> _Canonical[str | None] | None:
    """No cell, or a cell id as `validate_row` keeps it."""
    if not cell:
        return (None, f"\t{_NULL}")
    return (cell, f"\t{cell}") if _CELL.match(cell) else None


def _canonical_audience(
    languages: frozenset[str], fields: tuple[str, str]
) -> _Canonical[bool] | None:
    """A language as `validate_row` keeps it, and a test_group spelling taken as it is."""
    lang, flag_text = fields
    flag = _FLAGS.get(flag_text)
    if flag is None or lang not in languages:
        return None
    return (flag, f"\t{lang}\t{'t' if flag else 'f'}\n")


def _header_problem(header: list[str]) -> str | None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        separated = any(sep in name for name in header for sep in (";", "\t", "|"))
        return f"header lacks column(s) {', '.join(missing)}" + (
            "; its fields seem separated by ';', a tab or '|': the file must be comma-separated "
            "(a spreadsheet's 'CSV (comma delimited)')"
            if separated
            else ""
        )
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if unknown:
        return f"header has unknown column(s) {', '.join(unknown)}"
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        return f"header repeats column(s) {', '.join(repeated)}"
    return None


_FLAGS = {"": False, "0": False, "1": True, "false": False, "true": True, "f": False, "t": True}
"""test_group spellings taken as they are; any other goes through `validate_row`."""


# --- COPY batches and area counts ----------------------------------------------------------------

COPY_COLUMNS = ("msisdn", "departement", "commune", "cell_id", "lang", "test_group")
"""The columns of a CopyBatch's rows, in order."""
_NULL = "\\N"


@dataclass(frozen=True)
class CopyBatch:
    """Rows in PostgreSQL COPY text format (columns COPY_COLUMNS), ready to stream."""

    data: bytes
    rows: int


@dataclass(frozen=True)
class _Drawn:
    dep: str
    names: tuple[Sequence[str], Sequence[str], Sequence[str]]
    drawn: tuple[array[int], array[int], array[int]]
    flagged: list[int]


AreaKey = tuple[str, str | None, str, bool]  # (departement, commune or cell, lang, test_group)
_COMMUNE_KEY = operator.itemgetter(1, 2, 4, 5)
_CELL_KEY = operator.itemgetter(1, 3, 4, 5)


class AreaCounter:
    """Subscribers per (département, commune | cell, language, test group) of the rows seen.

    Rows given as drawn indices (synthesis) are only noted, compactly, and counted by
    `settle()`: a bulk load runs it while the server rebuilds the indexes, so that counting
    does not slow the stream down.
    """

    def __init__(self) -> None:
        self.communes: Counter[AreaKey] = Counter()
        self.cells: Counter[AreaKey] = Counter()
        self._pending: list[_Drawn] = []

    def add_rows(self, rows: Sequence[SubscriberRow]) -> None:
        self.communes.update(map(_COMMUNE_KEY, rows))
        self.cells.update(map(_CELL_KEY, rows))

    def add_drawn(
        self,
        dep: str,
        names: tuple[Sequence[str], Sequence[str], Sequence[str]],
        drawn: tuple[Sequence[int], Sequence[int], Sequence[int]],
        flags: Sequence[bool],
    ) -> None:
        """Rows given as indices into (communes, cells, langs) names, counted later."""
        arrays = (array("H", drawn[0]), array("H", drawn[1]), array("H", drawn[2]))
        flagged = [i for i, flag in enumerate(flags) if flag]
        self._pending.append(_Drawn(dep, names, arrays, flagged))

    def settle(self) -> None:
        """Count the rows noted by `add_drawn` (integer keys: several times faster than tuples
        of strings). Thread-safe against nothing: call it when no batch is being produced."""
        while self._pending:
            job = self._pending.pop()
            communes, cells, langs = job.names
            in_communes, in_cells, speaking = job.drawn
            width = 2 * len(langs)
            lang_flag = list(map(operator.mul, speaking, itertools.repeat(2)))
            for position in job.flagged:
                lang_flag[position] += 1
            for table, index, counts in (
                (communes, in_communes, self.communes),
                (cells, in_cells, self.cells),
            ):
                keys = map(
                    operator.add, map(operator.mul, index, itertools.repeat(width)), lang_flag
                )
                for key, n in Counter(keys).items():
                    area, rest = divmod(key, width)
                    lang, flag = divmod(rest, 2)
                    counts[(job.dep, table[area], langs[lang], bool(flag))] += n

    def rows(self) -> Iterator[tuple[str, str, str, str, bool, int]]:
        """(kind, departement, area, lang, test_group, n) rows for `subscriber_counts`."""
        self.settle()
        whole: Counter[tuple[str, str, bool]] = Counter()
        for (dep, commune, lang, test), n in sorted(self.communes.items(), key=_key_order):
            whole[(dep, lang, test)] += n
            if commune is not None:
                yield ("commune", dep, commune, lang, test, n)
        for (dep, cell, lang, test), n in sorted(self.cells.items(), key=_key_order):
            if cell is not None:
                yield ("cell", dep, cell, lang, test, n)
        for (dep, lang, test), n in sorted(whole.items()):
            yield ("departement", dep, "", lang, test, n)


def _key_order(item: tuple[AreaKey, int]) -> tuple[str, str, str, bool]:
    dep, area, lang, test = item[0]
    return (dep, area or "", lang, test)


def copy_batches(
    rows: Iterable[SubscriberRow | Rejected],
    on_reject: Callable[[Rejected], None],
    counter: AreaCounter | None = None,
    batch_rows: int = 100_000,
) -> Iterator[CopyBatch]:
    """Valid rows as COPY text batches; rejections go to `on_reject` as they come."""
    lines: list[str] = []
    kept: list[SubscriberRow] = []
    for item in rows:
        if isinstance(item, Rejected):
            on_reject(item)
            continue
        lines.append(_copy_line(item))
        kept.append(item)
        if len(lines) >= batch_rows:
            yield _batch(lines, kept, counter)
            lines, kept = [], []
    if lines:
        yield _batch(lines, kept, counter)


def _copy_line(row: SubscriberRow) -> str:
    msisdn, dep, commune, cell, lang, test = row
    return f"{msisdn}\t{dep}\t{commune or _NULL}\t{cell or _NULL}\t{lang}\t{'t' if test else 'f'}\n"


def _batch(lines: list[str], rows: list[SubscriberRow], counter: AreaCounter | None) -> CopyBatch:
    if counter is not None:
        counter.add_rows(rows)
    return CopyBatch("".join(lines).encode(), len(lines))


# Synthetic subscribers: French mobile numbers (+33 6 and +33 7, in the ranges phonenumbers has
# for mobiles, so that an import takes them back), drawn by an affine permutation of
# [0, _MOBILE_SPAN) so millions of distinct numbers cost no memory and look random.
_MOBILE_BLOCKS = (*range(600, 639), *range(640, 690), 695, 698, 699, *range(730, 800))
"""The first three digits of France's mobile numbers after 33: each is a block of a million."""
_BLOCK = 1_000_000
_MOBILE_SPAN = len(_MOBILE_BLOCKS) * _BLOCK
_DRAWN_SPAN = 200_000_000
"""The range the permutation's offset is drawn from (as it always was: the draws after it, hence
every synthetic subscriber's département, commune, cell and language, stay as they were)."""
_STRIDE = 122_949_829  # coprime with the span: i -> (i * stride + offset) mod span is a bijection
LANGUAGE_MIX = (("fr", 0.90), ("en", 0.04), ("es", 0.03), ("de", 0.02), ("ar", 0.01))
TEST_GROUP_SHARE = 0.001
CELLS_PER_DEPARTEMENT = 199


@dataclass(frozen=True)
class _Columns:
    """A slice of one département's synthetic subscribers, column by column, in msisdn order."""

    dep: str
    msisdns: list[int]
    communes: list[str]
    cells: list[str]
    langs: list[str]
    flags: list[bool]

    def sliced(self, rows: int) -> Iterator[_Columns]:
        """These columns, `rows` at a time."""
        for lo in range(0, len(self.msisdns), rows):
            hi = lo + rows
            yield _Columns(
                self.dep,
                self.msisdns[lo:hi],
                self.communes[lo:hi],
                self.cells[lo:hi],
                self.langs[lo:hi],
                self.flags[lo:hi],
            )


def synth_rows(
    count: int,
    populations: Mapping[str, int],
    seed: int = 1,
    start: int = 0,
) -> Iterator[SubscriberRow]:
    """`count` synthetic subscribers, spread over départements in proportion to population.

    Every département gets at least one test-group subscriber when it gets any, so drills can be
    tried everywhere. `start` offsets the number sequence so successive calls never collide.
    Within a département the numbers come in increasing order (so does the heap a bulk load
    writes, which makes its index builds and range scans cheap).
    """
    for cols in _synth_columns(count, populations, seed, start, 100_000, None):
        yield from zip(
            cols.msisdns,
            [cols.dep] * len(cols.msisdns),
            cols.communes,
            cols.cells,
            cols.langs,
            cols.flags,
            strict=True,
        )


def synth_batches(
    count: int,
    populations: Mapping[str, int],
    seed: int = 1,
    start: int = 0,
    counter: AreaCounter | None = None,
    batch_rows: int = 250_000,
) -> Iterator[CopyBatch]:
    """The same subscribers as `synth_rows`, as COPY text batches (about 1.5M rows/s)."""
    for cols in _synth_columns(count, populations, seed, start, batch_rows, counter):
        n = len(cols.msisdns)
        text = "\n".join(
            map(
                "\t".join,
                zip(
                    map(str, cols.msisdns),
                    [cols.dep] * n,
                    cols.communes,
                    cols.cells,
                    cols.langs,
                    ["t" if f else "f" for f in cols.flags],
                    strict=True,
                ),
            )
        )
        yield CopyBatch((text + "\n").encode(), n)


def _synth_columns(
    count: int,
    populations: Mapping[str, int],
    seed: int,
    start: int,
    slice_rows: int,
    counter: AreaCounter | None,
) -> Iterator[_Columns]:
    if count < 0 or start < 0 or count + start > _MOBILE_SPAN:
        raise ValueError(f"can synthesise between 0 and {_MOBILE_SPAN} subscribers")
    rng = random.Random(seed)
    deps = sorted(populations)
    shares = _apportion(count, [populations[d] for d in deps])
    offset = rng.randrange(_DRAWN_SPAN) % _MOBILE_SPAN
    first = start
    for dep, n in zip(deps, shares, strict=True):
        if n == 0:
            continue
        msisdns = _mobile_numbers(
            sorted((j * _STRIDE + offset) % _MOBILE_SPAN for j in range(first, first + n))
        )
        first += n
        yield from _synth_departement(rng, dep, msisdns, counter).sliced(slice_rows)


def _mobile_numbers(positions: list[int]) -> list[int]:
    """The mobile numbers at these sorted positions of the blocks, in the same order."""
    numbers: list[int] = []
    low = 0
    for index, block in enumerate(_MOBILE_BLOCKS):
        high = bisect.bisect_left(positions, (index + 1) * _BLOCK, low)
        shift = 33_000_000_000 + (block - index) * _BLOCK
        numbers += map(operator.add, positions[low:high], itertools.repeat(shift))
        low = high
    return numbers


def _synth_departement(
    rng: random.Random, dep: str, msisdns: list[int], counter: AreaCounter | None
) -> _Columns:
    """One département's subscribers, drawn whole, so that the data does not depend on how it
    is sliced (the draws come from `rng` in a fixed order: test group, communes, cells,
    languages)."""
    n = len(msisdns)
    communes = _synth_communes(dep, n)
    cells = [f"C{dep}{k:03d}" for k in range(1, CELLS_PER_DEPARTEMENT + 1)]
    flags = [False] * n
    flags[0] = True  # every département gets a test-group subscriber
    for position in rng.sample(range(n), int(n * TEST_GROUP_SHARE + rng.random())):
        flags[position] = True
    drawn = (
        rng.choices(range(len(communes)), k=n),
        rng.choices(range(len(cells)), k=n),
        rng.choices(range(len(_SYNTH_LANGS)), cum_weights=_SYNTH_CUM_WEIGHTS, k=n),
    )
    if counter is not None:
        counter.add_drawn(dep, (communes, cells, _SYNTH_LANGS), drawn, flags)
    return _Columns(
        dep,
        msisdns,
        list(map(communes.__getitem__, drawn[0])),
        list(map(cells.__getitem__, drawn[1])),
        list(map(_SYNTH_LANGS.__getitem__, drawn[2])),
        flags,
    )


def _synth_communes(dep: str, n: int) -> list[str]:
    """INSEE-shaped codes for a département of `n` subscribers: one per 50, 1 to 600 of them."""
    width = 3 if len(dep) == 2 else 2
    how_many = min(max(1, min(600, n // 50)), 10**width - 1)
    return [f"{dep}{k:0{width}d}" for k in range(1, how_many + 1)]


_SYNTH_LANGS = [lang for lang, _ in LANGUAGE_MIX]
_SYNTH_CUM_WEIGHTS = list(itertools.accumulate(w for _, w in LANGUAGE_MIX))


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
