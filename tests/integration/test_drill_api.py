"""Drill endpoints over real HTTP: schedules managed with the API's role checks and audit, bad
input refused with a 4xx and nothing stored, a drill run through the API and its report."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fixtures_drills import seed_subscribers
from fixtures_smsc import StartMock
from fixtures_tokens import mint_token

from broadcaster.api.routes import ROUTES
from broadcaster.engine.worker import Worker
from broadcaster.mocksmsc import MockConfig
from broadcaster.serve import create_app
from broadcaster.settings import Settings

HOLDERS = {"olga": "operator", "abel": "approver", "root": "admin"}
MONTHLY = {
    "name": "monthly-paris",
    "cron": "0 12 * * 1#1",
    "timezone": "Europe/Paris",
    "areas": ["dep:75", "dep:13"],
    "thresholds": {"min_delivered_ratio": 0.95, "delivery_within_seconds": 120},
}


@dataclass
class Reply:
    status: int
    body: Any


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    db: asyncpg.Pool[asyncpg.Record]
    tokens: dict[str, str]

    async def call(self, method: str, path: str, as_: str | None, body: Any = None) -> Reply:
        headers = {"X-Request-Id": "drill-test-1"}
        if as_ is not None:
            headers["Authorization"] = f"Bearer {self.tokens[as_]}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        async with self.client.request(method, path, data=data, headers=headers) as response:
            return Reply(response.status, await response.json())

    async def count(self, table: str) -> int:
        async with self.db.acquire() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608


@pytest.fixture
async def api(db_dsn: str) -> AsyncIterator[Api]:
    db = await asyncpg.create_pool(db_dsn, min_size=1, max_size=6)
    tokens: dict[str, str] = {}
    async with db.acquire() as conn:
        await seed_subscribers(conn)
        for name, role in HOLDERS.items():
            _, tokens[name] = await mint_token(conn, name, role)
    settings = Settings(database_url=db_dsn, api_rate_per_second=1000.0, api_rate_burst=1000)
    client = TestClient(TestServer(create_app(settings, db), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Api(client, db, tokens)
    finally:
        await client.close()
        await db.close()


async def test_create_list_show_disable_enable_remove_with_audit(api: Api) -> None:
    created = await api.call("POST", "/v1/drill-schedules", "olga", MONTHLY)
    assert created.status == 201, created.body
    schedule = created.body["schedule"]
    assert schedule["description"].startswith("At 12:00 on the first Monday of the month")
    for fire in map(datetime.fromisoformat, schedule["upcoming"]):  # in Paris time
        assert (fire.weekday(), fire.day <= 7, fire.hour, fire.minute) == (0, True, 12, 0)
        assert fire.utcoffset() in (timedelta(hours=1), timedelta(hours=2))
    assert schedule["thresholds"]["min_delivered_ratio"] == 0.95
    sid = schedule["id"]

    listed = await api.call("GET", "/v1/drill-schedules", "abel")
    assert [s["name"] for s in listed.body["schedules"]] == ["monthly-paris"]
    shown = await api.call("GET", f"/v1/drill-schedules/{sid}", "olga")
    assert shown.status == 200
    assert shown.body["runs"] == []

    disabled = await api.call("POST", f"/v1/drill-schedules/{sid}/disable", "abel", {})
    assert disabled.status == 200
    assert disabled.body["enabled"] is False
    assert disabled.body["next_run_at"] is None
    enabled = await api.call("POST", f"/v1/drill-schedules/{sid}/enable", "abel")
    assert enabled.body["enabled"] is True
    removed = await api.call("DELETE", f"/v1/drill-schedules/{sid}", "root")
    assert removed.status == 200
    assert await api.count("drill_schedules") == 0
    gone = await api.call("GET", f"/v1/drill-schedules/{sid}", "olga")
    assert gone.status == 404

    audit = (await api.call("GET", "/v1/audit", "root")).body["entries"]
    actions = [(e["action"], e["actor"]) for e in audit if e["subject"] == f"drill_schedule:{sid}"]
    assert actions == [
        ("drill_schedule_remove", "root"),
        ("drill_schedule_enable", "abel"),
        ("drill_schedule_disable", "abel"),
        ("drill_schedule_create", "olga"),
    ]
    assert all(
        e["details"]["request_id"] == "drill-test-1"
        for e in audit
        if e["subject"] == f"drill_schedule:{sid}"
    )


@pytest.mark.parametrize(
    ("change", "status", "code", "words"),
    [
        ({"cron": "0 12 * * 1#9"}, 422, "invalid_input", "not valid"),
        ({"cron": "*/5 * * * *"}, 422, "invalid_input", "at most once an hour"),
        ({"timezone": "Europe/Pariss"}, 422, "invalid_input", "unknown time zone"),
        ({"areas": ["dep:99"]}, 422, "unknown_area", "99"),
        ({"template": "outage"}, 422, "invalid_input", "drill template"),
        ({"template": "nope"}, 422, "template_error", "unknown template"),
        ({"grace_seconds": 0}, 422, "invalid_input", "grace period must be between 60 s"),
        ({"grace_seconds": 5}, 422, "invalid_input", "would record on-time drills as missed"),
        ({"name": "Monthly Paris"}, 400, "invalid_body", "body.name"),
        ({"thresholds": {"min_delivered_ratio": 2}}, 400, "invalid_body", "thresholds"),
        ({"webhook_url": "ftp://x"}, 400, "invalid_body", "webhook_url"),
        ({"surprise": True}, 400, "invalid_body", "surprise"),
    ],
)
async def test_bad_schedules_are_refused_and_nothing_is_stored(
    api: Api, change: dict[str, Any], status: int, code: str, words: str
) -> None:
    reply = await api.call("POST", "/v1/drill-schedules", "olga", {**MONTHLY, **change})
    assert reply.status == status, reply.body
    assert reply.body["error"]["code"] == code
    assert words in reply.body["error"]["message"]
    assert await api.count("drill_schedules") == 0
    assert await api.count("broadcasts") == 0


async def test_a_duplicate_name_is_a_conflict(api: Api) -> None:
    assert (await api.call("POST", "/v1/drill-schedules", "olga", MONTHLY)).status == 201
    again = await api.call("POST", "/v1/drill-schedules", "root", MONTHLY)
    assert again.status == 409
    assert again.body["error"]["code"] == "duplicate_name"
    assert await api.count("drill_schedules") == 1


async def test_roles_are_checked_and_refusals_audited(api: Api) -> None:
    assert (await api.call("POST", "/v1/drill-schedules", None, MONTHLY)).status == 401
    denied = await api.call("POST", "/v1/drill-schedules", "abel", MONTHLY)
    assert denied.status == 403
    created = await api.call("POST", "/v1/drill-schedules", "olga", MONTHLY)
    sid = created.body["schedule"]["id"]
    for method, path in (
        ("DELETE", f"/v1/drill-schedules/{sid}"),
        ("POST", f"/v1/drill-schedules/{sid}/disable"),
    ):
        reply = await api.call(method, path, "olga")
        assert reply.status == 403, reply.body
        assert "control" in reply.body["error"]["message"]
    assert (await api.call("POST", f"/v1/drill-schedules/{sid}/run", "abel")).status == 403
    audit = (await api.call("GET", "/v1/audit", "root")).body["entries"]
    denied_ops = {e["details"]["operation"] for e in audit if e["action"] == "denied"}
    assert denied_ops == {
        "createDrillSchedule",
        "deleteDrillSchedule",
        "disableDrillSchedule",
        "runDrillSchedule",
    }
    assert await api.count("drill_schedules") == 1


async def test_run_now_then_the_report(api: Api, start_mock: StartMock) -> None:
    _mock, smsc = await start_mock(MockConfig(seed=4, receipts=True), name="smsc-a")
    sid = (await api.call("POST", "/v1/drill-schedules", "olga", MONTHLY)).body["schedule"]["id"]
    run = await api.call("POST", f"/v1/drill-schedules/{sid}/run", "olga", {})
    assert run.status == 201, run.body
    drill_id = run.body["drill_id"]
    assert run.body["broadcast"]["kind"] == "drill"
    assert run.body["broadcast"]["state"] == "approved"  # drills need no second person
    assert run.body["broadcast"]["recipients"] == 100  # the test group only
    await Worker(api.db, [smsc]).run(until_idle=True)

    report = await api.call("GET", f"/v1/drills/{drill_id}/report", "abel")
    assert report.status == 200, report.body
    assert report.body["schedule"] == "monthly-paris"
    assert report.body["thresholds"]["min_delivered_ratio"] == 0.95
    assert report.body["total"]["accepted"] == 100
    assert [s["name"] for s in report.body["by_smsc"]] == ["smsc-a"]
    assert report.body["state"] == "completed"

    runs = await api.call("GET", "/v1/drills?limit=5", "olga")
    assert [(r["broadcast_id"], r["trigger"]) for r in runs.body["runs"]] == [(drill_id, "manual")]
    audit = (await api.call("GET", "/v1/audit", "root")).body["entries"]
    started = [e for e in audit if e["action"] == "drill_start"]
    assert started[0]["actor"] == "olga"
    assert started[0]["subject"] == f"broadcast:{drill_id}"


async def test_the_report_of_something_that_is_not_a_drill_is_404(api: Api) -> None:
    assert (await api.call("GET", "/v1/drills/999/report", "olga")).status == 404
    live = await api.call(
        "POST", "/v1/broadcasts", "olga", {"areas": ["dep:75"], "template": "outage"}
    )
    assert live.status == 201
    reply = await api.call(
        "GET", f"/v1/drills/{live.body['broadcast']['broadcast_id']}/report", "olga"
    )
    assert reply.status == 404


async def test_the_openapi_document_describes_the_drill_routes(api: Api) -> None:
    document = (await api.call("GET", "/v1/openapi.json", None)).body
    drill_ops = {r.operation_id for r in ROUTES if "drills" in r.tags}
    documented = {
        op["operationId"]
        for path in document["paths"].values()
        for op in path.values()
        if "drills" in op.get("tags", [])
    }
    assert documented == drill_ops
    assert len(drill_ops) == 9
    create = document["paths"]["/v1/drill-schedules"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/DrillScheduleCreate"
    }
    assert "DrillReport" in document["components"]["schemas"]
