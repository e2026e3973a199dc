"""What the API lets through reaches phones, and nothing else does: the app and a worker run
in-process against the mock SMSC over TCP; the mock's record is what subscribers received.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fixtures_tokens import mint_token

from broadcaster.engine.worker import Worker
from broadcaster.mocksmsc import MockSmsc
from broadcaster.serve import create_app
from broadcaster.settings import Settings, SmscConfig

CAP_DIR = Path(__file__).resolve().parent.parent / "data" / "cap"
# dep:75: fr, en, es, de speakers (one each) and two fr speakers in the test group.
SUBSCRIBERS = [
    (33600000001, "75", "75056", "fr", False),
    (33600000002, "75", "75056", "en", False),
    (33600000003, "75", "75056", "es", False),
    (33600000004, "75", "75056", "de", False),
    (33600000005, "75", "75056", "fr", True),
    (33600000006, "75", "75056", "fr", True),
]


@dataclass
class Lab:
    client: TestClient[web.Request, web.Application]
    db: asyncpg.Pool[asyncpg.Record]
    smsc: SmscConfig
    mock: MockSmsc
    tokens: dict[str, str]

    async def post(
        self, path: str, as_: str, body: Any = None, raw: bytes | None = None, xml: bool = False
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.tokens[as_]}"}
        if xml:
            headers["Content-Type"] = "application/cap+xml"
        elif body is not None:
            raw = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        async with self.client.post(path, data=raw, headers=headers) as response:
            return response.status, await response.json()

    async def run_worker(self) -> None:
        """Run every runnable broadcast to its end, as `serve`'s worker would."""
        await Worker(self.db, (self.smsc,)).run(until_idle=True)

    def received(self) -> dict[str, list[str]]:
        return dict(self.mock.record.messages)


@pytest.fixture
async def lab(db_dsn: str, mock_smsc: tuple[MockSmsc, SmscConfig]) -> AsyncIterator[Lab]:
    mock, smsc = mock_smsc
    settings = Settings(database_url=db_dsn, api_approval_threshold=2)
    db = await asyncpg.create_pool(db_dsn, min_size=2, max_size=8)
    tokens: dict[str, str] = {}
    async with db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO subscribers (msisdn, departement, commune, lang, test_group) "
            "VALUES ($1, $2, $3, $4, $5)",
            SUBSCRIBERS,
        )
        for name, role in (("alice", "operator"), ("bob", "approver")):
            _, tokens[name] = await mint_token(conn, name, role)
    client = TestClient(TestServer(create_app(settings, db), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Lab(client, db, smsc, mock, tokens)
    finally:
        await client.close()
        await db.close()


async def test_refused_requests_send_nothing(lab: Lab) -> None:
    refused = [
        await lab.post("/v1/broadcasts", "alice", {"areas": "dep:75", "template": "outage"}),
        await lab.post(
            "/v1/broadcasts", "alice", {"areas": ["dep:75"], "template": "outage", "urgent": True}
        ),
        await lab.post("/v1/broadcasts", "alice", {"areas": ["dep:00"], "template": "outage"}),
        await lab.post("/v1/broadcasts", "bob", {"areas": ["dep:75"], "template": "outage"}),
        await lab.post("/v1/cap", "alice", raw=(CAP_DIR / "bomb.xml").read_bytes(), xml=True),
        await lab.post("/v1/cap", "alice", raw=(CAP_DIR / "malformed.xml").read_bytes(), xml=True),
    ]
    assert [status for status, _ in refused] == [400, 400, 422, 403, 400, 400]
    # A live broadcast waiting for its second person is not sent either.
    status, pending = await lab.post(
        "/v1/broadcasts", "alice", {"areas": ["dep:75"], "template": "outage"}
    )
    assert status == 201
    assert pending["broadcast"]["state"] == "pending_approval"
    await lab.run_worker()
    assert lab.mock.record.parts_received == 0
    assert lab.received() == {}


async def test_a_cap_alert_reaches_each_subscriber_in_their_language(lab: Lab) -> None:
    status, created = await lab.post(
        "/v1/cap", "alice", raw=(CAP_DIR / "alert_actual.xml").read_bytes(), xml=True
    )
    assert status == 201, created
    broadcast_id = created["broadcast_id"]
    await lab.run_worker()
    assert lab.received() == {}  # pending: 6 recipients > 2
    status, approved = await lab.post(f"/v1/broadcasts/{broadcast_id}/approve", "bob")
    assert status == 200, approved
    await lab.run_worker()
    received = lab.received()
    french = (
        "Les numéros 15, 17, 18 et 112 sont perturbés. En cas d'urgence appelez le 01 99 00 75 00."
    )
    english = (
        "Emergency numbers 15, 17, 18 and 112 are disrupted. In an emergency call 01 99 00 75 00."
    )
    assert received == {
        "33600000001": [french],
        "33600000002": [english],
        "33600000003": [french],  # no Spanish <info>: the French text
        "33600000004": [french],
        "33600000005": [french],
        "33600000006": [french],
    }


async def test_a_cap_exercise_reaches_only_the_test_group_with_the_marker(lab: Lab) -> None:
    status, created = await lab.post(
        "/v1/cap", "alice", raw=(CAP_DIR / "exercise.xml").read_bytes(), xml=True
    )
    assert status == 201, created
    await lab.run_worker()
    received = lab.received()
    assert sorted(received) == ["33600000005", "33600000006"]
    for texts in received.values():
        assert texts == ["EXERCICE - Test de la chaîne d'alerte par SMS. Aucune action nécessaire."]


async def test_a_cap_cancel_before_approval_means_nothing_is_ever_sent(lab: Lab) -> None:
    status, _ = await lab.post(
        "/v1/cap", "alice", raw=(CAP_DIR / "alert_actual.xml").read_bytes(), xml=True
    )
    assert status == 201
    status, cancelled = await lab.post(
        "/v1/cap", "alice", raw=(CAP_DIR / "cancel.xml").read_bytes(), xml=True
    )
    assert status == 200, cancelled
    assert cancelled["cancelled"] == [1]
    await lab.run_worker()
    assert lab.received() == {}


async def _cells_and_locations(lab: Lab) -> None:
    """Cell IN inside polygon_only.xml's 48.85-48.87 x 2.33-2.36, OUT outside; 33600000001 and
    a German visitor seen in IN an hour ago, 33600000002 in OUT."""
    from datetime import UTC, datetime, timedelta

    from broadcaster.domain.cells import parse_cell
    from broadcaster.store.cells import import_cells
    from broadcaster.store.locations import ingest

    square = "POLYGON(({0} {1}, {2} {1}, {2} {3}, {0} {3}, {0} {1}))"
    cells = [
        {"cell_id": "IN", "technology": "4G", "lat": "48.86", "lon": "2.34",
         "coverage": square.format(2.335, 48.855, 2.345, 48.865)},
        {"cell_id": "OUT", "technology": "4G", "lat": "48.80", "lon": "2.20",
         "coverage": square.format(2.195, 48.795, 2.205, 48.805)},
    ]  # fmt: skip
    seen = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    async with lab.db.acquire() as conn:
        await import_cells(conn, [(n, parse_cell(c)) for n, c in enumerate(cells, 2)])
        done = await ingest(
            conn,
            [f"33600000001,IN,{seen}", f"33600000002,OUT,{seen}", f"4915100000001,IN,{seen}"],
        )
    assert done.written == 3


async def test_a_cap_polygon_alert_reaches_who_is_inside_once(lab: Lab) -> None:
    await _cells_and_locations(lab)
    status, created = await lab.post(
        "/v1/cap", "alice", raw=(CAP_DIR / "polygon_only.xml").read_bytes(), xml=True
    )
    assert status == 201, created
    broadcast_id = created["broadcast_id"]
    if created["broadcast"]["state"] == "pending_approval":
        status, approved = await lab.post(f"/v1/broadcasts/{broadcast_id}/approve", "bob")
        assert status == 200, approved
    await lab.run_worker()
    text = "Appelez le 01 99 00 75 00."
    assert lab.received() == {"33600000001": [text], "4915100000001": [text]}


async def test_the_dry_run_shows_the_geographic_preview(lab: Lab) -> None:
    await _cells_and_locations(lab)
    polygon = "polygon:48.85,2.33 48.87,2.33 48.87,2.36 48.85,2.36 48.85,2.33"
    body = {"areas": [polygon], "template": "outage", "dry_run": True, "freshness_hours": 2}
    status, answer = await lab.post("/v1/broadcasts", "alice", body)
    assert status == 200, answer
    preview = answer["preview"]
    assert preview["recipients"] == 2
    presence = preview["presence"]
    assert (presence["mode"], presence["cells"], presence["present"]) == ("auto", 1, 2)
    assert (presence["stale"], presence["visitors"], presence["window_hours"]) == (0, 1, 2)
    assert presence["visitors_by_country"] == [{"country": "DE", "language": "de", "numbers": 1}]
    assert presence["shapes"][0]["overspill"] == 0  # IN lies inside the polygon
    refused = [
        await lab.post("/v1/broadcasts", "alice", {**body, "areas": [polygon[:-11]]}),
        await lab.post("/v1/broadcasts", "alice", {**body, "areas": ["circle:48.86,2.34,0"]}),
        await lab.post("/v1/broadcasts", "alice", {**body, "mode": "everywhere"}),
    ]
    assert [status for status, _ in refused] == [422, 422, 400]
    assert lab.mock.record.parts_received == 0
