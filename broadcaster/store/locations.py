"""Location updates in bulk: lines `msisdn,cell_id,seen_at[,mcc_or_imsi]` checked in Python
(a malformed line, or one naming a cell that is not imported, goes to the rejects with its
reason; the rest is ingested) and COPYed, append-only, into `location_sightings`: no lookup, no
index, no UPDATE, so ingest runs at COPY speed. Selection sees a sighting as soon as its batch
commits (`last_seen_in`, migration 0017). `compact` later folds the sightings into `locations`
with one set-based upsert per batch (never a per-row UPDATE) and deletes them.

A number the home index does not know is a visitor: its country comes from the MCC (or the
IMSI's first three digits) when given, else from its number's country calling code
(`phonenumbers`' table), and its language from `country_languages`. The country is resolved
here for every line (a dictionary lookup); whether the number is a visitor is decided when it is
selected or compacted (against the subscriber index).
"""

from __future__ import annotations

import asyncio
import io
import re
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

StreamOutput = Callable[[bytes], Coroutine[Any, Any, None]]
BATCH = 200_000
_CELL = re.compile(r"^[A-Za-z0-9._:-]{1,32}$")
_MAX_AHEAD = timedelta(minutes=5)
MCC_COUNTRIES = {
    "202": "GR", "204": "NL", "206": "BE", "208": "FR", "212": "MC", "214": "ES", "216": "HU",
    "222": "IT", "226": "RO", "228": "CH", "230": "CZ", "232": "AT", "234": "GB", "235": "GB",
    "238": "DK", "240": "SE", "242": "NO", "244": "FI", "250": "RU", "255": "UA", "260": "PL",
    "262": "DE", "268": "PT", "270": "LU", "272": "IE", "286": "TR", "295": "LI", "302": "CA",
    "310": "US", "311": "US", "312": "US", "313": "US", "316": "US", "334": "MX", "404": "IN",
    "405": "IN", "440": "JP", "450": "KR", "460": "CN", "505": "AU", "530": "NZ", "603": "DZ",
    "604": "MA", "605": "TN", "722": "AR", "724": "BR", "730": "CL", "732": "CO",
}  # fmt: skip
"""Mobile country codes (ITU-T E.212) of the countries most visitors come from; others fall
back on the number's country calling code."""


@dataclass
class Ingest:
    read: int = 0
    written: int = 0
    """Sightings appended (pending compaction; selection sees them already)."""
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    """(line number, line, reason)."""
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Compaction:
    moved: int = 0
    """Sightings folded into `locations` (and deleted)."""
    written: int = 0
    """Locations inserted or moved (an update older than the stored one changes nothing)."""
    visitors: int = 0
    """Of those, numbers the home index does not know."""
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.moved / self.seconds if self.seconds > 0 else 0.0


_CALLING_CODES = {
    str(code): regions[0]
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items()
    if regions and regions[0] != "001"
}


def sim_country(msisdn: str, mcc: str) -> str:
    """The SIM's country: from the MCC when given, else the number's calling code; 'ZZ'."""
    if mcc and (country := MCC_COUNTRIES.get(mcc)):
        return country
    codes = _CALLING_CODES  # a prefix code (E.164): at most one of these matches
    return codes.get(msisdn[:3]) or codes.get(msisdn[:2]) or codes.get(msisdn[:1]) or "ZZ"


class _Refused(Exception):
    """A line's reason for being rejected."""


class _Parser:
    """Location lines to COPY text rows (msisdn, cell, seen_at, SIM country); the times of a
    feed, which repeat (many updates a second), are parsed once."""

    def __init__(self, now: datetime, cells: set[str]) -> None:
        self.now = now
        self.cells = cells
        self.times: dict[str, str | _Refused] = {}

    def time(self, seen: str) -> str:
        known = self.times.get(seen)
        if known is None:
            try:
                known = _parse_time(seen, self.now).isoformat()
            except _Refused as exc:
                known = exc
            if len(self.times) < 100_000:
                self.times[seen] = known
        if isinstance(known, _Refused):
            raise known
        return known

    def row(self, line: str) -> str:
        """The COPY text row of a line (no escaping needed: every field is checked), or
        _Refused with the reason."""
        fields = line.split(",")
        if not 3 <= len(fields) <= 4:
            raise _Refused("expected msisdn,cell_id,seen_at[,mcc_or_imsi]")
        number, cell = fields[0].strip(), fields[1].strip()
        if not (number.isdigit() and 8 <= len(number) <= 15 and number[0] != "0"):
            raise _Refused(
                f"msisdn {number!r} is not an international number (8-15 digits, no '+')"
            )
        if cell not in self.cells:
            malformed = not _CELL.match(cell)
            raise _Refused(
                f"cell id {cell!r} is malformed" if malformed else f"unknown cell {cell!r}"
            )
        seen_at = self.time(fields[2].strip())
        mcc = fields[3].strip() if len(fields) == 4 else ""
        if mcc and not (mcc.isdigit() and len(mcc) in (3, 14, 15)):
            raise _Refused(f"{mcc!r} is neither an MCC (3 digits) nor an IMSI (14-15 digits)")
        return f"{number}\t{cell}\t{seen_at}\t{sim_country(number, mcc[:3])}\n"


def _parse_time(seen: str, now: datetime) -> datetime:
    try:
        seen_at = datetime.fromisoformat(seen)
    except ValueError:
        raise _Refused(f"seen_at {seen!r} is not an ISO 8601 time") from None
    if seen_at.tzinfo is None:
        seen_at = seen_at.replace(tzinfo=UTC)
    if seen_at > now + _MAX_AHEAD:
        raise _Refused(f"seen_at {seen!r} is in the future")
    return seen_at


def parse_line(line: str, now: datetime, cells: set[str]) -> tuple[int, str, datetime, str] | str:
    """(msisdn, cell, seen_at, SIM country) of a line, or the reason it is refused; `cells`:
    the imported cell ids."""
    try:
        number, cell, seen, country = _Parser(now, cells).row(line).rstrip("\n").split("\t")
    except _Refused as exc:
        return str(exc)
    return int(number), cell, datetime.fromisoformat(seen), country


def _batches(lines: Iterable[str], result: Ingest, size: int, cells: set[str]) -> Iterator[bytes]:
    """COPY text of `size` valid lines at a time; the rejects into `result`."""
    parser = _Parser(datetime.now(UTC), cells)
    row = parser.row
    batch: list[str] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or (n == 1 and line.lower().startswith("msisdn")):
            continue
        result.read += 1
        try:
            batch.append(row(line))
        except _Refused as exc:
            result.rejects.append((n, line, str(exc)))
            continue
        if len(batch) >= size:
            yield "".join(batch).encode()
            result.written += len(batch)
            batch = []
    if batch:
        yield "".join(batch).encode()
        result.written += len(batch)


async def ingest(conn: Conn, lines: Iterable[str], batch_size: int = BATCH) -> Ingest:
    """Append location lines to the sightings, a COPY (and a commit) per batch; see the module.
    Times go as ISO 8601 with their offset (a naive one was taken as UTC)."""
    result = Ingest()
    started = time.perf_counter()
    cells = {r["cell_id"] for r in await conn.fetch(queries["all_cell_ids"])}
    batches = _batches(lines, result, batch_size, cells)
    # The next batch is checked in a thread while this one is COPYed: the check (Python) and
    # the COPY (the server) overlap. Only that thread touches `batches` and `result` meanwhile.
    following = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
    while (data := await following) is not None:
        following = asyncio.ensure_future(asyncio.to_thread(next, batches, None))
        async with conn.transaction():
            await conn.execute(queries["location_batch_settings"])
            await conn.copy_to_table(
                "location_sightings",
                source=io.BytesIO(data),
                columns=("msisdn", "cell_id", "seen_at", "country"),
            )
    if result.written:
        await conn.execute(queries["analyze_sightings"])
    result.seconds = time.perf_counter() - started
    return result


async def compact(conn: Conn, batch_size: int = BATCH) -> Compaction:
    """Fold the pending sightings into `locations`, a batch per transaction (one set-based
    upsert each), until none is left; one compaction at a time (an advisory lock: a second
    caller returns at once, having moved nothing)."""
    result = Compaction()
    started = time.perf_counter()
    async with conn.transaction():
        if not await conn.fetchval(queries["lock_location_compaction"]):
            return result
    try:
        while True:
            async with conn.transaction():
                await conn.execute(queries["location_batch_settings"])
                row = await conn.fetchrow(queries["compact_locations"], batch_size)
            assert row is not None
            result.moved += row["moved"]
            result.written += row["written"]
            result.visitors += row["visitors"]
            if row["moved"] < batch_size:
                break
        if result.moved:
            await conn.execute(queries["analyze_sightings"])
    finally:
        await conn.execute(queries["unlock_location_compaction"])
    result.seconds = time.perf_counter() - started
    return result


async def pending(conn: Conn) -> int:
    """Sightings not yet compacted."""
    return int(await conn.fetchval(queries["pending_sightings"]))


async def synth_lines(
    conn: Conn, share: float, visitors: int, hours: float, output: StreamOutput
) -> None:
    """Synthetic location lines (CSV, no header) for demos and load tests: `share` (0-1) of
    the subscribers each in a random cell of their département, and `visitors` foreign numbers
    in random cells, seen within the last `hours`."""
    sql = queries["synth_locations"].rstrip().rstrip(";")
    await conn.copy_from_query(sql, share * 100, visitors, hours, format="csv", output=output)
