"""Receipts and unbinds as SMSCs really send them (real PostgreSQL, the mock SMSC over TCP).

Each scenario is one broadcast through a worker; each test asserts what the SMSC saw (its
record: parts, copies per recipient, receipts sent) against what broadcaster reports
(`progress`: receipts matched to the right handset, parts possibly sent twice). The figures of
every scenario are printed as one line (`WIRE ...`), for the table in the closing note.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from fixtures_smsc import StartMock

from broadcaster.cli.check import run_checks
from broadcaster.commands.planning import create_broadcast, make_plan
from broadcaster.domain.requests import BroadcastRequest
from broadcaster.engine.worker import Worker
from broadcaster.errors import BindError
from broadcaster.importer import seed_synthetic
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.settings import Settings, SmscConfig
from broadcaster.smpp.pool import SmppPool
from broadcaster.store import broadcasts as store_broadcasts
from broadcaster.store import workers as store_workers
from broadcaster.store.database import create_pool


@pytest.fixture
async def db(db_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(db_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def _broadcast(
    db: asyncpg.Pool, db_dsn: str, smscs: list[SmscConfig], people: int = 8_000
) -> tuple[int, int, dict[str, Any], list[asyncpg.Record]]:
    """Seed, plan, send through a worker until idle: (broadcast, parts, progress, receipts)."""
    broadcast_id, parts, status, rows, _pool = await _send(db, db_dsn, smscs, people)
    return broadcast_id, parts, status, rows


async def _send(
    db: asyncpg.Pool, db_dsn: str, smscs: list[SmscConfig], people: int = 8_000
) -> tuple[int, int, dict[str, Any], list[asyncpg.Record], SmppPool]:
    """`_broadcast`, and the worker's pool (its counters and health) after the run."""
    async with db.acquire() as conn:
        await seed_synthetic(conn, people, seed=3)
    request = BroadcastRequest(areas=("dep:75", "dep:13"), template="outage", variables={})
    settings = Settings(database_url=db_dsn, chunk_size=500)
    async with db.acquire() as conn:
        plan = await make_plan(conn, settings, request)
        broadcast_id = await create_broadcast(conn, settings, request, plan)
    worker = Worker(db, smscs)
    runs = await worker.run(until_idle=True)
    assert [r.state for r in runs] == ["completed"]
    async with db.acquire() as conn:
        status = await store_broadcasts.progress(conn, broadcast_id)
        rows = await conn.fetch("SELECT match, msisdn, reported_msisdn FROM receipts")
    assert worker.pool is not None
    return broadcast_id, plan.parts, status, rows, worker.pool


def _seen_twice(mock: MockSmsc) -> int:
    """Copies beyond one that the SMSC received, over all recipients."""
    return sum(len(texts) - 1 for texts in mock.record.messages.values())


def _line(name: str, parts: int, rows: list[asyncpg.Record], seen: int, reported: int) -> None:
    right = sum(
        1 for r in rows if r["match"] == "matched" and str(r["msisdn"]) == r["reported_msisdn"]
    )
    print(
        f"WIRE {name}: parts={parts} receipts_recorded={len(rows)} matched_right={right}"
        f" duplicates_seen={seen} duplicates_reported={reported}"
    )


@pytest.mark.parametrize(
    ("name", "knobs"),
    [
        ("data_sm text+TLV", {"receipt_pdu": "data_sm"}),
        ("data_sm TLV only", {"receipt_pdu": "data_sm", "receipt_text": False}),
        ("deliver_sm TLV only", {"receipt_text": False}),
        (
            "data_sm text only, decimal ids",
            {
                "receipt_pdu": "data_sm",
                "receipt_tlv": False,
                "receipt_decimal_ids": True,
            },
        ),
    ],
)
async def test_receipts_by_data_sm_or_tlv_only_all_land_on_the_right_people(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, name: str, knobs: dict[str, Any]
) -> None:
    mock, smsc = await start_mock(MockConfig(seed=7, receipts=True, **knobs), window=32)
    _, parts, status, rows = await _broadcast(db, db_dsn, [smsc])
    assert mock.record.parts_received == parts
    assert mock.receipts_sent == parts
    _line(name, parts, rows, _seen_twice(mock), status["possibly_sent_twice"])
    assert len(rows) == parts  # not one receipt lost (data_sm used to get a generic_nack)
    assert all(r["match"] == "matched" for r in rows)
    assert all(str(r["msisdn"]) == r["reported_msisdn"] for r in rows)
    assert status["receipts"]["DELIVRD"]["count"] == parts
    assert _seen_twice(mock) == 0 == status["possibly_sent_twice"]


async def test_an_smsc_initiated_unbind_is_answered_and_the_answers_in_flight_are_kept(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    # The SMSC unbinds after every 100th part on a connection, with 30 answers still delayed.
    config = MockConfig(seed=8, receipts=True, unbind_after=100, latency_ms=20)
    mock, smsc = await start_mock(config, window=32, binds=1)
    _, parts, status, rows = await _broadcast(db, db_dsn, [smsc])
    seen, reported = _seen_twice(mock), status["possibly_sent_twice"]
    _line("SMSC-initiated unbind", parts, rows, seen, reported)
    assert mock.unbinds_sent >= 2
    assert mock.unbinds_answered == mock.unbinds_sent  # every unbind got its unbind_resp
    assert mock.record.parts_received == parts
    assert reported >= seen  # reported bounds what the SMSC saw from above
    assert seen == 0  # answers in flight were waited for, not re-sent
    assert len(rows) == parts
    assert all(r["match"] == "matched" and str(r["msisdn"]) == r["reported_msisdn"] for r in rows)


async def test_empty_message_ids_are_counted_as_an_smsc_problem_and_claim_nothing(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    mock, smsc = await start_mock(
        MockConfig(seed=9, receipts=True, empty_message_ids=True), window=32
    )
    broadcast_id, parts, status, rows, pool = await _send(db, db_dsn, [smsc])
    (health,) = pool.health()
    assert pool.stats.empty_message_ids == health.empty_message_ids == parts
    assert health.problems == [
        f"{parts:,} parts accepted with no message_id (their receipts cannot be matched)"
    ]
    _line("empty message ids", parts, rows, _seen_twice(mock), status["possibly_sent_twice"])
    assert mock.record.parts_received == parts
    assert status["receipts"] == {}  # no delivery claimed for parts whose id is unknown
    assert status["receipts_unattributed"]["unmatched"] == parts
    # A worker's heartbeat carries it: `status` (and `check`) show it while the worker lives.
    receivers = sum(h.receivers_up for h in pool.health())
    async with db.acquire() as conn:
        await store_workers.heartbeat(
            conn, "w1", [], receivers, [f"smsc {health.name}: {p}" for p in health.problems]
        )
        status = await store_broadcasts.progress(conn, broadcast_id)
    assert status["smsc_problems"] == [f"smsc {health.name}: {health.problems[0]}"]
    assert status["receipts_awaited"] == parts  # none of them will ever be matched
    findings = await run_checks(Settings(database_url=db_dsn), bind_timeout=1.0)
    assert [f.detail for f in findings if f.check == "smsc health"] == [
        f"reported by a running worker: smsc {health.name}: {health.problems[0]}"
    ]


@pytest.mark.parametrize(("receivers", "receipts"), [(1, True), (0, False)])
async def test_an_account_split_into_transmitter_and_receiver_binds_gets_its_receipts(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock, receivers: int, receipts: bool
) -> None:
    # The operator's account: transmitter binds send, receiver binds get receipts; no transceiver.
    config = MockConfig(seed=10, receipts=True, bind_modes=("transmitter", "receiver"))
    mock, smsc = await start_mock(config, window=32, bind_mode="transmitter", receivers=receivers)
    _, parts, status, rows = await _broadcast(db, db_dsn, [smsc])
    _line(
        f"transmitter + {receivers} receiver bind(s)",
        parts,
        rows,
        _seen_twice(mock),
        status["possibly_sent_twice"],
    )
    assert mock.record.parts_received == parts
    if receipts:
        assert len(rows) == parts
        assert all(
            r["match"] == "matched" and str(r["msisdn"]) == r["reported_msisdn"] for r in rows
        )
        assert status["receipts"]["DELIVRD"]["count"] == parts
    else:  # nobody bound to receive: the SMSC had none to send, nothing is claimed
        assert rows == [] and status["receipts"] == {}


async def test_a_configuration_where_no_bind_can_send_is_refused_before_any_bind() -> None:
    with pytest.raises(BindError, match="no SMSC can send: every bind of \\['rx'\\] is a receiver"):
        SmppPool([SmscConfig(name="rx", bind_mode="receiver")], lambda *args: None)


async def test_transient_errors_are_retried_a_bounded_number_of_times_permanent_ones_not(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    # ESME_RSYSERR on 30% of submits (transient), ESME_RINVDSTADR on 2% (permanent).
    config = MockConfig(seed=11, errors={0x08: 0.3, 0x0B: 0.02})
    mock, smsc = await start_mock(config, window=16, binds=1, retry_limit=2)
    _, parts, status, _rows, pool = await _send(db, db_dsn, [smsc])
    retried = pool.stats.retried_by_status
    async with db.acquire() as conn:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    recorded = {r["status"]: r["n"] for r in rows}  # parts, by final status
    print(f"WIRE retry policy: parts={parts} retried={retried} final={recorded}")
    assert sum(recorded.values()) == parts
    # What the SMSC answered is what broadcaster counted: each 0x08 was retried or final.
    assert mock.statuses[0x08] == retried[0x08] + recorded.get(0x08, 0)
    # A part fails with 0x08 only after 1 + retry_limit answers of 0x08.
    assert recorded.get(0x08, 0) * 3 <= mock.statuses[0x08]
    # A permanent error fails at once: never retried.
    assert 0x0B not in retried
    assert recorded[0x0B] == mock.statuses[0x0B]
    assert recorded[0] == mock.record.parts_received == mock.statuses[0]
    assert pool.stats.failed_by_status.get(0x08, 0) == recorded.get(0x08, 0)
    assert _seen_twice(mock) == 0 == status["possibly_sent_twice"]


async def test_responses_slower_than_the_timeout_are_reported_as_possibly_sent_twice(
    db: asyncpg.Pool, db_dsn: str, start_mock: StartMock
) -> None:
    # Every response takes 0.4 s; broadcaster waits 0.25 s, then sends the part again.
    config = MockConfig(seed=12, receipts=True, latency_ms=400)
    mock, smsc = await start_mock(config, window=64, binds=1, response_timeout_s=0.25)
    _, parts, status, rows = await _broadcast(db, db_dsn, [smsc], people=2_000)
    seen, reported = _seen_twice(mock), status["possibly_sent_twice"]
    _line("responses slower than the timeout", parts, rows, seen, reported)
    assert seen > 0  # the SMSC did get copies
    assert reported >= seen  # and broadcaster says so (bounded from above)
    matched_right = [r for r in rows if r["match"] == "matched"]
    assert all(str(r["msisdn"]) == r["reported_msisdn"] for r in matched_right)
