"""Location updates in bulk: lines `msisdn,cell_id,seen_at[,mcc_or_imsi]` checked in Python,
COPYed into a staging table and applied with one set-based upsert per batch (never a per-row
UPDATE). A malformed line, or one naming a cell that is not imported, goes to the rejects with
its reason; the rest is ingested.

A number the home index does not know is a visitor: its country comes from the MCC (or the
IMSI's first three digits) when given, else from its number's country calling code
(`phonenumbers`' table), and its language from `country_languages`.
"""

from __future__ import annotations

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
    """Locations inserted or moved (an update older than the stored one changes nothing)."""
    visitors: int = 0
    rejects: list[tuple[int, str, str]] = field(default_factory=list)
    """(line number, line, reason)."""
    seconds: float = 0.0

    @property
    def per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


def parse_line(line: str, now: datetime) -> tuple[int, str, datetime, str] | str:
    """(msisdn, cell, seen_at, mcc) of a line, or the reason it is refused."""
    fields = line.split(",")
    if not 3 <= len(fields) <= 4:
        return "expected msisdn,cell_id,seen_at[,mcc_or_imsi]"
    number, cell, seen = fields[0].strip(), fields[1].strip(), fields[2].strip()
    if not (number.isdigit() and 8 <= len(number) <= 15 and number[0] != "0"):
        return f"msisdn {number!r} is not an international number (8-15 digits, no '+')"
    if not _CELL.match(cell):
        return f"cell id {cell!r} is malformed"
    try:
        seen_at = datetime.fromisoformat(seen)
    except ValueError:
        return f"seen_at {seen!r} is not an ISO 8601 time"
    if seen_at.tzinfo is None:
        seen_at = seen_at.replace(tzinfo=UTC)
    if seen_at > now + _MAX_AHEAD:
        return f"seen_at {seen!r} is in the future"
    mcc = fields[3].strip() if len(fields) == 4 else ""
    if mcc and not (mcc.isdigit() and len(mcc) in (3, 14, 15)):
        return f"{mcc!r} is neither an MCC (3 digits) nor an IMSI (14-15 digits)"
    return int(number), cell, seen_at, mcc[:3]


def _batches(
    lines: Iterable[str], result: Ingest, size: int
) -> Iterator[list[tuple[int, int, str, datetime, str]]]:
    now = datetime.now(UTC)
    batch: list[tuple[int, int, str, datetime, str]] = []
    for n, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or (n == 1 and line.lower().startswith("msisdn")):
            continue
        result.read += 1
        parsed = parse_line(line, now)
        if isinstance(parsed, str):
            result.rejects.append((n, line, parsed))
            continue
        batch.append((n, *parsed))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


async def ingest(conn: Conn, lines: Iterable[str], batch_size: int = BATCH) -> Ingest:
    """Apply location lines in batches (one transaction each); see the module."""
    result = Ingest()
    started = time.perf_counter()
    await _lookups(conn)
    for batch in _batches(lines, result, batch_size):
        async with conn.transaction():
            await conn.execute(queries["location_batch_settings"])
            await conn.execute(queries["create_location_staging"])
            await conn.copy_records_to_table(
                "location_staging",
                records=[(n, m, c, s, mcc or None) for n, m, c, s, mcc in batch],
                columns=("line", "msisdn", "cell_id", "seen_at", "mcc"),
            )
            await conn.execute(queries["analyze_location_staging"])
            unknown = await conn.fetch(queries["unknown_location_cells"])
            text = {n: f"{m},{c},{s.isoformat()}" for n, m, c, s, _ in batch} if unknown else {}
            result.rejects += [
                (r["line"], text[r["line"]], f"unknown cell {r['cell_id']!r}") for r in unknown
            ]
            row = await conn.fetchrow(queries["apply_locations"])
            assert row is not None
            result.written += row["written"]
            result.visitors += row["visitors"]
    result.rejects.sort()
    result.seconds = time.perf_counter() - started
    return result


async def _lookups(conn: Conn) -> None:
    """This session's country tables (MCC, calling code), from the library: always current."""
    await conn.execute(queries["create_country_lookups"])
    if await conn.fetchval(queries["calling_codes_loaded"]):
        return
    await conn.copy_records_to_table(
        "calling_codes",
        records=[
            (str(code), regions[0])
            for code, regions in COUNTRY_CODE_TO_REGION_CODE.items()
            if regions and regions[0] != "001"
        ],
    )
    await conn.copy_records_to_table("mcc_countries", records=list(MCC_COUNTRIES.items()))


async def synth_lines(
    conn: Conn, share: float, visitors: int, hours: float, output: StreamOutput
) -> None:
    """Synthetic location lines (CSV, no header) for demos and load tests: `share` (0-1) of
    the subscribers each in a random cell of their département, and `visitors` foreign numbers
    in random cells, seen within the last `hours`."""
    sql = queries["synth_locations"].rstrip().rstrip(";")
    await conn.copy_from_query(sql, share * 100, visitors, hours, format="csv", output=output)
