"""Writing and reading the subscriber index: COPY-based upserts, target counts, chunk streams."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries
from broadcaster.subscribers import SubscriberRow
from broadcaster.targeting import Target

IMPORT_COLUMNS = ("msisdn", "departement", "commune", "cell_id", "lang", "test_group")


async def upsert_subscribers(
    conn: Conn, rows: Iterable[SubscriberRow], batch: int = 200_000
) -> int:
    """COPY rows into a staging table and upsert them, one transaction per batch.

    Returns the number of rows read. Unchanged subscribers are not rewritten, so re-importing the
    same file costs reads, not writes.
    """
    total = 0
    iterator: Iterator[SubscriberRow] = iter(rows)
    while True:
        records = list(islice(iterator, batch))
        if not records:
            return total
        async with conn.transaction():
            await conn.execute(queries["create_import_table"])
            await conn.copy_records_to_table(
                "subscribers_import", records=records, columns=IMPORT_COLUMNS
            )
            await conn.execute(queries["upsert_imported"])
        total += len(records)


async def target_counts(conn: Conn, target: Target) -> dict[tuple[str, str], int]:
    """Recipients per (département, subscriber language) for a target."""
    whole = [d for d, c in target.departements.items() if c is None]
    communes = sorted(x for c in target.departements.values() if c is not None for x in c)
    rows = await conn.fetch(queries["target_counts"], whole, communes, target.test_group_only)
    return {(r["departement"], r["lang"]): r["n"] for r in rows}
