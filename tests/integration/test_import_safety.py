"""What an import lets through is what gets sent: numbers as the mobiles they are, languages
that exist, and an import that fails half-way leaves nothing behind (issue 18, items 9, 14, 16).
Each test sends to what was imported and reads the mock SMSC's record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.commands.context import Context
from broadcaster.commands.sending import execute
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.errors import InputError
from broadcaster.importer import import_csv
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings
from broadcaster.store.database import create_pool

TESTER = Caller(name="test", role="admin", interface="cli")
HEADER = "msisdn,departement,lang\n"


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def _send_outage(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, *areas: str
) -> dict[str, list[str]]:
    """Send the outage text to `areas` through a fresh mock SMSC; its record, per number."""
    mock, smsc = await start_mock(MockConfig(seed=1))
    settings = Settings(database_url=db_dsn, smscs=(smsc,))
    request = BroadcastRequest(areas=list(areas), template="outage", variables={})
    _, report = await execute(Context(db=db, settings=settings), TESTER, (smsc,), request)
    assert report["state"] == "completed"
    return mock.record.messages


async def test_numbers_go_to_the_mobiles_meant_and_unknown_languages_to_nobody(
    db_dsn: str, db: asyncpg.Pool, start_mock: StartMock, tmp_path: Path
) -> None:
    source = tmp_path / "subscribers.csv"
    source.write_text(
        HEADER
        + "612345678,75,en\n"  # 0612345678 as a spreadsheet leaves it
        + "+330612345682,75,en\n"  # +33 (0)6 12 34 56 82
        + "06 12 34 56 83,75,en\n"
        + "0690123456,971,en\n"  # Guadeloupe, in France's national plan
        + "590690123457,971,en\n"
        + "33612345684,75,xx\n"  # no such language: once sent in French
        + "33700000001,75,en\n"  # no such mobile range
        + "0112345678,75,en\n",  # a fixed line
        encoding="utf-8",
    )
    result = await import_csv(Settings(database_url=db_dsn), source, None)
    assert (result.imported, result.rejected) == (5, 3)
    assert result.reject_file is not None
    rejects = result.reject_file.read_text(encoding="utf-8").splitlines()[1:]
    assert [line.split(",")[0] for line in rejects] == ["7", "8", "9"]
    assert "'xx' is not a two-letter ISO 639-1 language code" in rejects[0]
    assert "'33700000001' reads as +33 700000001, a number in no range in use" in rejects[1]
    assert "+33112345678, a fixed-line number, not a mobile one" in rejects[2]

    received = await _send_outage(db, db_dsn, start_mock, "dep:75", "dep:971")
    assert sorted(received) == [
        "33612345678",
        "33612345682",
        "33612345683",
        "590690123456",
        "590690123457",
    ]
    assert all(len(texts) == 1 and "emergency" in texts[0] for texts in received.values())


async def test_an_upsert_that_fails_half_way_leaves_the_index_as_it_was(
    db_dsn: str, db: asyncpg.Pool, start_mock: StartMock, tmp_path: Path
) -> None:
    """A byte that is not UTF-8 at row 200,000 of an upsert once committed the first 100,000
    rows and reported only an error: now nothing is written, and the message says so."""
    base = tmp_path / "base.csv"
    base.write_text(HEADER + "33612345678,75,fr\n", encoding="utf-8")
    assert (await import_csv(Settings(database_url=db_dsn), base, None)).imported == 1
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(
        HEADER.encode()
        + b"".join(b"336%08d,75,en\n" % i for i in range(200_000))
        + "33699999999,75,fr\nCréteil\n".encode("latin-1")
    )
    with pytest.raises(InputError) as caught:
        await import_csv(Settings(database_url=db_dsn), bad, None)
    assert str(caught.value) == (
        f"{bad} is not UTF-8 text: line 200,003 has the byte(s) e9; nothing was imported. "
        "Save it as UTF-8 (CSV UTF-8 in a spreadsheet) and import it again"
    )
    async with db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subscribers") == 1
        assert (
            await conn.fetchval("SELECT sum(n) FROM subscriber_counts WHERE kind = 'departement'")
            == 1
        )
    received = await _send_outage(db, db_dsn, start_mock, "dep:75")
    assert list(received) == ["33612345678"]
    assert "Préfecture" in received["33612345678"][0]  # still French: the upsert changed nothing


async def test_a_byte_order_mark_is_not_part_of_the_header(
    db_dsn: str, db: asyncpg.Pool, start_mock: StartMock, tmp_path: Path
) -> None:
    source = tmp_path / "excel.csv"
    source.write_bytes(("\ufeff" + HEADER + "0612345678,75,fr\r\n").encode("utf-8"))
    result = await import_csv(Settings(database_url=db_dsn), source, None)
    assert (result.imported, result.rejected) == (1, 0)
    assert list(await _send_outage(db, db_dsn, start_mock, "dep:75")) == ["33612345678"]
