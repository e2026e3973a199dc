"""A drill never reaches the public: the engine refuses a drill whose target is not the test
group, or whose stream yields a non-test subscriber, before submitting it; a drill template
without the exercise marker, or a live template, is refused before anything is stored."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from fixtures_drills import seed_subscribers
from fixtures_smsc import StartMock

from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.drills.runs import load_report
from broadcaster.drills.schedules import DrillSpec, ScheduleRequest, create_schedule
from broadcaster.engine.worker import Worker
from broadcaster.errors import InputError, TemplateError
from broadcaster.mocksmsc import MockConfig
from broadcaster.settings import Settings
from broadcaster.store.database import create_pool
from broadcaster.store.queries import queries

NOW = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool[asyncpg.Record]]:
    pool = await create_pool(db_dsn, min_size=2, max_size=6)
    async with pool.acquire() as conn:
        await seed_subscribers(conn)
    yield pool
    await pool.close()


async def _drill(db: asyncpg.Pool[asyncpg.Record], settings: Settings) -> int:
    request = BroadcastRequest(
        areas=("dep:75", "dep:13"), template="drill", variables={}, kind="drill"
    )
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        assert plan.target.test_group_only
        return await create_broadcast(conn, settings, request, plan)


async def _public(db: asyncpg.Pool[asyncpg.Record]) -> set[str]:
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT msisdn FROM subscribers WHERE NOT test_group")
    return {str(r["msisdn"]) for r in rows}


async def test_a_drill_whose_target_is_not_the_test_group_is_refused_and_sends_nothing(
    db: asyncpg.Pool[asyncpg.Record], db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1, receipts=True))
    drill_id = await _drill(db, Settings(database_url=db_dsn))
    async with db.acquire() as conn:  # as a bug or a hand-edited row would leave it
        await conn.execute(
            "UPDATE broadcasts SET target = jsonb_set(target, '{test_group_only}', 'false') "
            "WHERE id = $1",
            drill_id,
        )
    runs = await Worker(db, [smsc]).run(until_idle=True)
    assert [r.state for r in runs] == ["failed"]
    assert mock.record.parts_received == 0
    async with db.acquire() as conn:
        reason = await conn.fetchval(queries["drill_engine_refusal"], drill_id)
        report = await load_report(conn, drill_id)
    assert "not restricted to the test group" in reason
    assert not report.passed
    assert "not restricted to the test group" in report.failures[0].message


async def test_a_drill_stream_that_yields_a_public_subscriber_is_stopped_before_it(
    db: asyncpg.Pool[asyncpg.Record],
    db_dsn: str,
    start_mock: StartMock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1))
    drill_id = await _drill(db, Settings(database_url=db_dsn, chunk_size=25))
    # Break the stream's test-group filter, as a faulty query or index would.
    broken = queries["stream_chunk_drill"].replace(
        "(NOT $5::boolean OR s.test_group)", "($5::boolean OR true)"
    )
    assert broken != queries["stream_chunk_drill"]
    monkeypatch.setitem(queries._load(), "stream_chunk_drill", broken)
    runs = await Worker(db, [smsc]).run(until_idle=True)
    assert runs[-1].state == "failed"
    assert not set(mock.record.messages) & await _public(db)  # no public subscriber reached
    async with db.acquire() as conn:
        reason = await conn.fetchval(queries["drill_engine_refusal"], drill_id)
        state = await conn.fetchval("SELECT state FROM broadcasts WHERE id = $1", drill_id)
    assert state == "failed"
    assert "is not in the test group" in reason


async def test_a_drill_reaches_only_the_test_group(
    db: asyncpg.Pool[asyncpg.Record], db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=1))
    await _drill(db, Settings(database_url=db_dsn, chunk_size=25))
    runs = await Worker(db, [smsc]).run(until_idle=True)
    assert runs[-1].state == "completed"
    assert len(mock.record.messages) == 100
    assert not set(mock.record.messages) & await _public(db)


@pytest.fixture
def unmarked_templates(tmp_path: Path) -> Path:
    """The catalogue, with a French drill text that lost its exercise marker."""
    directory = tmp_path / "templates"
    shutil.copytree(Settings().templates_dir, directory)
    (directory / "drill.fr.j2").write_text(
        "Préfecture de {{ prefecture }}: ceci est un test d'alerte par SMS.", encoding="utf-8"
    )
    return directory


async def test_a_drill_template_without_the_exercise_marker_is_refused(
    db: asyncpg.Pool[asyncpg.Record], db_dsn: str, unmarked_templates: Path
) -> None:
    settings = Settings(database_url=db_dsn, templates_dir=unmarked_templates)
    request = ScheduleRequest(
        name="monthly", cron="0 12 * * 1#1", timezone="Europe/Paris", drill=DrillSpec(("dep:75",))
    )
    async with db.acquire() as conn:
        with pytest.raises(TemplateError, match="exercise marker 'EXERCICE'"):
            await create_schedule(conn, settings, request, NOW)
        with pytest.raises(TemplateError, match="exercise marker"):
            await make_plan(conn, settings, DrillSpec(("dep:75",)).request("test"))
        assert await conn.fetchval("SELECT count(*) FROM drill_schedules") == 0


async def test_a_live_template_cannot_be_a_drill(
    db: asyncpg.Pool[asyncpg.Record], db_dsn: str
) -> None:
    request = ScheduleRequest(
        name="monthly",
        cron="0 12 * * 1#1",
        timezone="Europe/Paris",
        drill=DrillSpec(("dep:75",), template="outage"),
    )
    async with db.acquire() as conn:
        with pytest.raises(InputError, match="a drill must use a drill template"):
            await create_schedule(conn, Settings(database_url=db_dsn), request, NOW)
        assert await conn.fetchval("SELECT count(*) FROM drill_schedules") == 0
