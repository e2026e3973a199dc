"""Subscriber rows: validation of imported CSV rows and realistic synthetic generation (pure).

A row is (msisdn, departement, commune, cell_id, lang, test_group). Validation never guesses:
a row it cannot read exactly is rejected with its line number and the reason, and the import
goes on with the valid ones.

Millions of rows go to the store as `CopyBatch`es: PostgreSQL COPY text, built in big batches
(a Python object per row costs more than the database's work), with the subscriber counts per
area they add (`AreaCounter`), so that a bulk load needs no second pass to count.
"""

from __future__ import annotations

import csv
import itertools
import operator
import random
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from broadcaster.targeting import CELL_ID, commune_departement

CSV_COLUMNS = ("msisdn", "departement", "commune", "cell_id", "lang", "test_group")
REQUIRED_COLUMNS = ("msisdn", "departement", "lang")
_MSISDN = re.compile(r"^\+?([1-9]\d{7,14})$")
_COMMUNE = re.compile(r"^(97[1-6]\d{2}|2[AB]\d{3}|\d{5})$")
_LANG = re.compile(r"^[a-z]{2}$")
_CELL = CELL_ID
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
    subscriber. (The rows `csv_batches` loads, one at a time.)
    """
    rejected: list[Rejected] = []
    for batch in csv_batches(lines, known_departements, rejected.append, batch_rows=1):
        yield from rejected
        rejected.clear()
        m, dep, commune, cell, lang, flag = batch.data.decode().rstrip("\n").split("\t")
        yield (int(m), dep, _or_none(commune), _or_none(cell), lang, flag == "t")
    yield from rejected


def _or_none(value: str) -> str | None:
    return None if value == _NULL else value


def csv_batches(
    lines: Iterable[str],
    known_departements: set[str],
    on_reject: Callable[[Rejected], None],
    counter: AreaCounter | None = None,
    batch_rows: int = 100_000,
) -> Iterator[CopyBatch]:
    """Validate a CSV stream with a header row into COPY batches; rejections go to `on_reject`
    (line number, reason, raw row) as they come, and the import goes on with the valid rows.

    Rows already in canonical form (the common case) take a fast path that remembers which
    communes, cells and languages it has seen valid; any other goes through `validate_row`,
    which normalises it or says why it cannot.
    """
    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader, [])]
    problem = _header_problem(header)
    if problem:
        on_reject(Rejected(1, problem, ",".join(header)))
        return
    width = len(header)
    at = {name: header.index(name) for name in header}
    i_msisdn, i_dep, i_lang = at["msisdn"], at["departement"], at["lang"]
    i_commune, i_cell, i_flag = at.get("commune"), at.get("cell_id"), at.get("test_group")
    commune_of: dict[str, str | None] = {"": None}  # valid commune -> its département
    good_cells: set[str] = {""}
    good_langs: set[str] = set()
    seen: set[int] = set()
    out: list[str] = []
    rows: list[SubscriberRow] = []
    for record in reader:
        if not record:
            continue  # a blank line
        if len(record) != width:
            if len(record) > width:
                on_reject(
                    Rejected(
                        reader.line_num,
                        "more fields than the header has columns",
                        ",".join(record),
                    )
                )
                continue
            record = record + [""] * (width - len(record))
        number = record[i_msisdn]
        dep = record[i_dep]
        lang = record[i_lang]
        commune = "" if i_commune is None else record[i_commune]
        cell = "" if i_cell is None else record[i_cell]
        flag = _FLAGS.get("" if i_flag is None else record[i_flag])
        if commune not in commune_of:
            commune_of[commune] = commune_departement(commune) if _COMMUNE.match(commune) else "?"
        if cell not in good_cells and _CELL.match(cell):
            good_cells.add(cell)
        if lang not in good_langs and len(lang) == 2 and _LANG.match(lang):
            good_langs.add(lang)
        if (
            flag is not None
            and 8 <= len(number) <= 15
            and number.isdigit()
            and number.isascii()
            and number[0] != "0"
            and dep in known_departements
            and lang in good_langs
            and (not commune or commune_of[commune] == dep)
            and cell in good_cells
        ):
            row: SubscriberRow = (int(number), dep, commune or None, cell or None, lang, flag)
            text = (
                f"{number}\t{dep}\t{commune or _NULL}\t{cell or _NULL}\t{lang}\t"
                f"{'t' if flag else 'f'}\n"
            )
        else:
            try:
                row = validate_row(dict(zip(header, record, strict=True)), known_departements)
            except ValueError as exc:
                on_reject(Rejected(reader.line_num, str(exc), ",".join(record)))
                continue
            text = _copy_line(row)
        if row[0] in seen:
            on_reject(
                Rejected(
                    reader.line_num,
                    f"msisdn {row[0]} appears earlier in the file",
                    ",".join(record),
                )
            )
            continue
        seen.add(row[0])
        out.append(text)
        rows.append(row)
        if len(out) >= batch_rows:
            yield _batch(out, rows, counter)
            out, rows = [], []
    if out:
        yield _batch(out, rows, counter)


def _header_problem(header: list[str]) -> str | None:
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        return f"header lacks column(s) {', '.join(missing)}"
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


# Synthetic subscribers: French mobile numbers 336xxxxxxxx and 337xxxxxxxx, drawn by an affine
# permutation of [0, 2e8) so millions of distinct numbers cost no memory and look random.
_MOBILE_BASE = 33_600_000_000
_MOBILE_SPAN = 200_000_000
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
    langs = [lang for lang, _ in LANGUAGE_MIX]
    cum_weights = list(itertools.accumulate(w for _, w in LANGUAGE_MIX))
    offset = rng.randrange(_MOBILE_SPAN)
    i = start
    for dep, n in zip(deps, shares, strict=True):
        if n == 0:
            continue
        width = 3 if len(dep) == 2 else 2
        communes = [
            f"{dep}{k:0{width}d}"
            for k in range(1, min(max(1, min(600, n // 50)), 10**width - 1) + 1)
        ]
        cells = [f"C{dep}{k:03d}" for k in range(1, CELLS_PER_DEPARTEMENT + 1)]
        msisdns = sorted(
            _MOBILE_BASE + (j * _STRIDE + offset) % _MOBILE_SPAN for j in range(i, i + n)
        )
        i += n
        flags = [False] * n
        flags[0] = True
        for position in rng.sample(range(n), int(n * TEST_GROUP_SHARE + rng.random())):
            flags[position] = True
        # Drawn for the whole département, so that the data does not depend on the slicing.
        drawn = (
            rng.choices(range(len(communes)), k=n),
            rng.choices(range(len(cells)), k=n),
            rng.choices(range(len(langs)), cum_weights=cum_weights, k=n),
        )
        if counter is not None:
            counter.add_drawn(dep, (communes, cells, langs), drawn, flags)
        in_communes = list(map(communes.__getitem__, drawn[0]))
        in_cells = list(map(cells.__getitem__, drawn[1]))
        speaking = list(map(langs.__getitem__, drawn[2]))
        for lo in range(0, n, slice_rows):
            hi = min(n, lo + slice_rows)
            yield _Columns(
                dep,
                msisdns[lo:hi],
                in_communes[lo:hi],
                in_cells[lo:hi],
                speaking[lo:hi],
                flags[lo:hi],
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
