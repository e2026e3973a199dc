"""The HTTP API against a real PostgreSQL, served on 127.0.0.1 (aiohttp test server, no worker).

Covers the authorisation matrix (each role x each endpoint), the two-person rule, token
revocation, idempotent retries, CAP samples, bad bodies (each a 4xx with a reason, nothing
stored), the rate limit, the audit trail and the OpenAPI document against the router.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fixtures_tokens import mint_token
from multidict import CIMultiDict

from broadcaster.afteraction.html import render_html
from broadcaster.afteraction.text import render_text
from broadcaster.api.openapi import document
from broadcaster.api.routes import ROUTES
from broadcaster.domain.tokens import hash_token
from broadcaster.serve import create_app
from broadcaster.settings import Settings

CAP_DIR = Path(__file__).resolve().parent.parent / "data" / "cap"
THRESHOLD = 3
# (msisdn, département, commune, language, test group): dep:75 has 9 subscribers (4 in the
# test group), dep:92 has 2. Live dep:75 needs approval (9 > 3); live dep:92 does not.
SUBSCRIBERS = [
    (33600000001, "75", "75056", "fr", False),
    (33600000002, "75", "75056", "fr", False),
    (33600000003, "75", "75056", "en", False),
    (33600000004, "75", "75056", "es", False),
    (33600000005, "75", "75056", "de", False),
    (33600000006, "75", "75056", "fr", True),
    (33600000007, "75", "75056", "fr", True),
    (33600000008, "75", "75056", "en", True),
    (33600000009, "75", "75056", "fr", True),
    (33600000010, "92", "92012", "fr", False),
    (33600000011, "92", "92012", "en", False),
]
HOLDERS = {
    "alice": "operator",
    "olga": "operator",
    "bob": "approver",
    "carol": "approver",
    "root": "admin",
    "spare": "operator",
}
AS_ROLE = {"operator": "alice", "approver": "bob", "admin": "root"}
LIVE_75 = {"areas": ["dep:75"], "template": "outage"}
LIVE_92 = {"areas": ["dep:92"], "template": "outage"}
DRILL_75 = {"areas": ["dep:75"], "template": "drill", "kind": "drill"}


@dataclass
class Reply:
    status: int
    body: Any
    headers: CIMultiDict[str]

    @property
    def error(self) -> dict[str, Any]:
        assert isinstance(self.body, dict), self.body
        assert "error" in self.body, self.body
        error: dict[str, Any] = self.body["error"]
        return error


@dataclass
class Api:
    client: TestClient[web.Request, web.Application]
    db: asyncpg.Pool[asyncpg.Record]
    tokens: dict[str, str]
    token_ids: dict[str, int] = field(default_factory=dict)

    async def call(
        self,
        method: str,
        path: str,
        *,
        as_: str | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> Reply:
        sent = dict(headers or {})
        if token is None and as_ is not None:
            token = self.tokens[as_]
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            data = json.dumps(json_body)
            sent.setdefault("Content-Type", "application/json")
        async with self.client.request(method, path, data=data, headers=sent) as response:
            text = await response.text()
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            return Reply(response.status, body, CIMultiDict(response.headers))

    async def create(self, body: dict[str, Any], as_: str = "alice") -> int:
        reply = await self.call("POST", "/v1/broadcasts", as_=as_, json_body=body)
        assert reply.status == 201, reply.body
        return int(reply.body["broadcast"]["broadcast_id"])

    async def cap(self, name: str, as_: str = "alice", raw: bytes | None = None) -> Reply:
        return await self.call(
            "POST",
            "/v1/cap",
            as_=as_,
            data=raw if raw is not None else (CAP_DIR / name).read_bytes(),
            headers={"Content-Type": "application/cap+xml"},
        )

    async def count(self, table: str) -> int:
        async with self.db.acquire() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608

    async def state(self, broadcast_id: int) -> str:
        async with self.db.acquire() as conn:
            return str(
                await conn.fetchval("SELECT state FROM broadcasts WHERE id = $1", broadcast_id)
            )


async def seed(db: asyncpg.Pool[asyncpg.Record]) -> tuple[dict[str, str], dict[str, int]]:
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    async with db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO subscribers (msisdn, departement, commune, lang, test_group) "
            "VALUES ($1, $2, $3, $4, $5)",
            SUBSCRIBERS,
        )
        for name, role in HOLDERS.items():
            row, tokens[name] = await mint_token(conn, name, role)
            ids[name] = row["id"]
    return tokens, ids


ApiFactory = Callable[..., Awaitable[Api]]


@pytest.fixture
async def make_api(db_dsn: str) -> AsyncIterator[ApiFactory]:
    """Factory: `await make_api(**settings)` serves an app on 127.0.0.1 over `db_dsn`."""
    opened: list[tuple[TestClient[web.Request, web.Application], asyncpg.Pool[asyncpg.Record]]]
    opened = []
    seeded: list[tuple[dict[str, str], dict[str, int]]] = []

    async def make(**overrides: Any) -> Api:
        values: dict[str, Any] = {
            "database_url": db_dsn,
            "api_approval_threshold": THRESHOLD,
            "api_rate_per_second": 1000.0,
            "api_rate_burst": 1000,
        }
        values.update(overrides)
        db = await asyncpg.create_pool(db_dsn, min_size=1, max_size=8)
        client = TestClient(TestServer(create_app(Settings(**values), db), host="127.0.0.1"))
        opened.append((client, db))
        await client.start_server()
        if not seeded:
            seeded.append(await seed(db))
        tokens, ids = seeded[0]
        return Api(client, db, tokens, ids)

    yield make
    for client, db in opened:
        await client.close()
        await db.close()


@pytest.fixture
async def api(make_api: ApiFactory) -> Api:
    return await make_api()


# -- the authorisation matrix -----------------------------------------------------------------

ALLOWED = 0  # the role may: the status is the operation's success status
Setup = Callable[[Api], Awaitable[dict[str, Any]]]


async def _nothing(api: Api) -> dict[str, Any]:
    return {}


async def _pending(api: Api) -> dict[str, Any]:
    return {"id": await api.create(LIVE_75, as_="olga")}


async def _approved(api: Api) -> dict[str, Any]:
    return {"id": await api.create(LIVE_92, as_="olga")}


async def _paused(api: Api) -> dict[str, Any]:
    broadcast_id = await api.create(LIVE_92, as_="olga")
    reply = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/pause", as_="carol")
    assert reply.status == 200, reply.body
    return {"id": broadcast_id}


async def _spare_token(api: Api) -> dict[str, Any]:
    return {"id": api.token_ids["spare"]}


async def _pending_token(api: Api) -> dict[str, Any]:
    """A token another admin minted for someone else: it waits for a second admin."""
    async with api.db.acquire() as conn:
        row, _ = await mint_token(conn, "newcomer", "operator", created_by="admin2", pending=True)
    return {"id": row["id"]}


# operation -> (method, path, body, setup, success status, roles allowed)
MATRIX: dict[str, tuple[str, str, Any, Setup, int, set[str]]] = {
    "healthz": ("GET", "/healthz", None, _nothing, 200, {"none", "operator", "approver", "admin"}),
    "readyz": ("GET", "/readyz", None, _nothing, 503, {"none", "operator", "approver", "admin"}),
    "metrics": ("GET", "/metrics", None, _nothing, 200, {"none", "operator", "approver", "admin"}),
    "openapi": (
        "GET",
        "/v1/openapi.json",
        None,
        _nothing,
        200,
        {"none", "operator", "approver", "admin"},
    ),
    "listBroadcasts": (
        "GET",
        "/v1/broadcasts",
        None,
        _approved,
        200,
        {"operator", "approver", "admin"},
    ),
    "createBroadcast": ("POST", "/v1/broadcasts", LIVE_92, _nothing, 201, {"operator", "admin"}),
    "getBroadcast": (
        "GET",
        "/v1/broadcasts/{id}",
        None,
        _approved,
        200,
        {"operator", "approver", "admin"},
    ),
    "getReport": (
        "GET",
        "/v1/broadcasts/{id}/report",
        None,
        _approved,
        200,
        {"operator", "approver", "admin"},
    ),
    "exportNotReached": (
        "GET",
        "/v1/broadcasts/{id}/not-reached",
        None,
        _approved,
        200,
        {"approver", "admin"},
    ),
    "approveBroadcast": (
        "POST",
        "/v1/broadcasts/{id}/approve",
        None,
        _pending,
        200,
        {"approver", "admin"},
    ),
    "cancelBroadcast": (
        "POST",
        "/v1/broadcasts/{id}/cancel",
        {"reason": "test"},
        _approved,
        200,
        {"approver", "admin"},
    ),
    "pauseBroadcast": (
        "POST",
        "/v1/broadcasts/{id}/pause",
        None,
        _approved,
        200,
        {"approver", "admin"},
    ),
    "resumeBroadcast": (
        "POST",
        "/v1/broadcasts/{id}/resume",
        None,
        _paused,
        200,
        {"approver", "admin"},
    ),
    "updateBroadcast": (
        "POST",
        "/v1/broadcasts/{id}/update",
        {"variables": {"instruction": "Restez chez vous.", "instruction.en": "Stay at home."}},
        _approved,  # olga's: an update stops it, so it needs the right to cancel it
        201,
        {"admin"},
    ),
    "allClearBroadcast": (
        "POST",
        "/v1/broadcasts/{id}/all-clear",
        None,
        _approved,
        201,
        {"admin"},
    ),
    "postCap": ("POST", "/v1/cap", "test_status.xml", _nothing, 200, {"operator", "admin"}),
    "listTokens": ("GET", "/v1/tokens", None, _nothing, 200, {"admin"}),
    "createToken": (
        "POST",
        "/v1/tokens",
        {"name": "dave", "role": "operator"},
        _nothing,
        201,
        {"admin"},
    ),
    "activateToken": ("POST", "/v1/tokens/{id}/activate", None, _pending_token, 200, {"admin"}),
    "revokeToken": ("POST", "/v1/tokens/{id}/revoke", None, _spare_token, 200, {"admin"}),
    "listAudit": ("GET", "/v1/audit", None, _nothing, 200, {"admin"}),
}


DRILL_SCHEDULE = {
    "name": "monthly",
    "cron": "0 12 * * 1#1",
    "timezone": "Europe/Paris",
    "areas": ["dep:75"],
}


async def _drill_schedule(api: Api) -> dict[str, Any]:
    reply = await api.call("POST", "/v1/drill-schedules", as_="root", json_body=DRILL_SCHEDULE)
    assert reply.status == 201, reply.body
    return {"id": reply.body["schedule"]["id"]}


async def _drill(api: Api) -> dict[str, Any]:
    schedule = await _drill_schedule(api)
    reply = await api.call("POST", f"/v1/drill-schedules/{schedule['id']}/run", as_="root")
    assert reply.status == 201, reply.body
    return {"id": reply.body["drill_id"]}


READERS = {"operator", "approver", "admin"}
MATRIX.update(
    {
        "listDrillSchedules": ("GET", "/v1/drill-schedules", None, _nothing, 200, READERS),
        "createDrillSchedule": (
            "POST",
            "/v1/drill-schedules",
            DRILL_SCHEDULE,
            _nothing,
            201,
            {"operator", "admin"},
        ),
        "getDrillSchedule": (
            "GET",
            "/v1/drill-schedules/{id}",
            None,
            _drill_schedule,
            200,
            READERS,
        ),
        "deleteDrillSchedule": (
            "DELETE",
            "/v1/drill-schedules/{id}",
            None,
            _drill_schedule,
            200,
            {"approver", "admin"},
        ),
        "enableDrillSchedule": (
            "POST",
            "/v1/drill-schedules/{id}/enable",
            None,
            _drill_schedule,
            200,
            {"approver", "admin"},
        ),
        "disableDrillSchedule": (
            "POST",
            "/v1/drill-schedules/{id}/disable",
            None,
            _drill_schedule,
            200,
            {"approver", "admin"},
        ),
        "runDrillSchedule": (
            "POST",
            "/v1/drill-schedules/{id}/run",
            None,
            _drill_schedule,
            201,
            {"operator", "admin"},
        ),
        "listDrills": ("GET", "/v1/drills", None, _nothing, 200, READERS),
        "getDrillReport": ("GET", "/v1/drills/{id}/report", None, _drill, 200, READERS),
    }
)


def test_the_matrix_covers_every_route() -> None:
    assert set(MATRIX) == {r.operation_id for r in ROUTES}


@pytest.mark.parametrize("role", ["none", "operator", "approver", "admin"])
@pytest.mark.parametrize("operation", sorted(MATRIX))
async def test_authorisation_matrix(api: Api, operation: str, role: str) -> None:
    method, path, body, setup, success, allowed = MATRIX[operation]
    context = await setup(api)
    path = path.format(**context)
    as_ = None if role == "none" else AS_ROLE[role]
    if isinstance(body, str):  # a CAP sample
        reply = (
            await api.cap(body, as_=as_)
            if as_
            else await api.call(
                "POST",
                path,
                data=(CAP_DIR / body).read_bytes(),
                headers={"Content-Type": "application/cap+xml"},
            )
        )
    else:
        reply = await api.call(method, path, as_=as_, json_body=body)
    if role in allowed:
        assert reply.status == success, reply.body
    elif role == "none":
        assert reply.status == 401, reply.body
        assert reply.error["code"] == "unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    else:
        assert reply.status == 403, reply.body
        assert reply.error["code"] == "forbidden"
        assert role in reply.error["message"]


# A follow-up stops the broadcast it follows: it needs the right to cancel that one (its
# creator, or a role that may cancel), checked as a direct cancel is. Issue 19 item 1.
# case -> (request, who created the original, roles allowed, success status)
FOLLOW_UPS: dict[str, tuple[str, str, set[str], int]] = {
    "update own": ("update", "alice", {"operator", "admin"}, 201),
    "update other's": ("update", "olga", {"admin"}, 201),
    "all-clear own": ("all-clear", "alice", {"operator", "admin"}, 201),
    "all-clear other's": ("all-clear", "olga", {"admin"}, 201),
    "CAP Update own": ("update.xml", "alice", {"operator", "admin"}, 201),
    "CAP Update other's": ("update.xml", "olga", {"admin"}, 201),
    "CAP Cancel own": ("cancel.xml", "alice", {"operator", "approver", "admin"}, 200),
    "CAP Cancel other's": ("cancel.xml", "olga", {"approver", "admin"}, 200),
}
UPDATE_BODY = {"variables": {"instruction": "Restez chez vous.", "instruction.en": "Stay in."}}


async def _follow_up(api: Api, what: str, parent: int, as_: str | None) -> Reply:
    if what.endswith(".xml"):
        raw = (CAP_DIR / what).read_bytes()
        if as_ is not None:
            return await api.cap(what, as_=as_)
        return await api.call(
            "POST", "/v1/cap", data=raw, headers={"Content-Type": "application/cap+xml"}
        )
    body = UPDATE_BODY if what == "update" else None
    return await api.call("POST", f"/v1/broadcasts/{parent}/{what}", as_=as_, json_body=body)


@pytest.mark.parametrize("role", ["none", "operator", "approver", "admin"])
@pytest.mark.parametrize("case", sorted(FOLLOW_UPS))
async def test_authorisation_matrix_of_follow_ups(api: Api, case: str, role: str) -> None:
    what, creator, allowed, success = FOLLOW_UPS[case]
    if what.endswith(".xml"):
        alert = await api.cap("alert_actual.xml", as_=creator)
        assert alert.status == 201, alert.body
        parent = int(alert.body["broadcast_id"])
    else:
        parent = await api.create(LIVE_92, as_=creator)
    before = await api.state(parent)
    broadcasts = await api.count("broadcasts")
    as_ = None if role == "none" else AS_ROLE[role]
    reply = await _follow_up(api, what, parent, as_)
    if role in allowed:
        assert reply.status == success, reply.body
        assert await api.state(parent) == "cancelled"
        return
    assert reply.status == (401 if role == "none" else 403), reply.body
    assert await api.state(parent) == before  # nothing cancelled
    assert await api.count("broadcasts") == broadcasts  # nothing created
    if role == "none":
        return
    assert role in reply.error["message"]
    async with api.db.acquire() as conn:
        denied = await conn.fetchrow(
            "SELECT actor, subject, details FROM audit_log WHERE action = 'denied' "
            "ORDER BY id DESC LIMIT 1"
        )
    assert denied is not None
    assert denied["actor"] == AS_ROLE[role]
    details = json.loads(denied["details"])
    if role == "operator":  # may create follow-ups, not stop someone else's broadcast
        assert details["operation"] in ("cancelBroadcast", "cancelCap")
        if details["operation"] == "cancelBroadcast":
            assert denied["subject"] == f"broadcast:{parent}"
            assert details["via"] in ("updateBroadcast", "allClearBroadcast", "postCap")
            assert "stops" in reply.error["message"]


async def test_refusals_by_role_are_audited(api: Api) -> None:
    reply = await api.call("GET", "/v1/audit", as_="alice")
    assert reply.status == 403
    entries = (await api.call("GET", "/v1/audit", as_="root")).body["entries"]
    denied = [e for e in entries if e["action"] == "denied"]
    assert denied[0]["actor"] == "alice"
    assert denied[0]["details"]["operation"] == "listAudit"
    assert denied[0]["details"]["request_id"] == reply.headers["X-Request-Id"]


# -- two-person rule --------------------------------------------------------------------------


async def test_a_live_broadcast_above_the_threshold_needs_a_second_person(api: Api) -> None:
    created = await api.call("POST", "/v1/broadcasts", as_="root", json_body=LIVE_75)
    assert created.status == 201
    assert created.body["approval_required"] is True
    broadcast = created.body["broadcast"]
    assert broadcast["state"] == "pending_approval"
    assert broadcast["recipients"] == 9
    broadcast_id = broadcast["broadcast_id"]
    # The creator (an admin, who may approve in general) may not approve their own...
    self_approval = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/approve", as_="root")
    assert self_approval.status == 403
    assert self_approval.error["code"] == "two_person_rule"
    # ...nor with a second token in their name.
    async with api.db.acquire() as conn:
        _, second = await mint_token(conn, "ROOT", "admin")
    again = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/approve", token=second)
    assert again.status == 403
    assert await api.state(broadcast_id) == "pending_approval"
    approved = await api.call(
        "POST", f"/v1/broadcasts/{broadcast_id}/approve", as_="bob", json_body={"reason": "ok"}
    )
    assert approved.status == 200, approved.body
    assert approved.body["state"] == "approved"
    assert approved.body["approved_by"] == "bob"
    twice = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/approve", as_="carol")
    assert twice.status == 409
    assert "it is approved" in twice.error["message"]
    trail = (await api.call("GET", f"/v1/broadcasts/{broadcast_id}/report", as_="bob")).body
    actions = [(e["actor"], e["action"]) for e in trail["audit"]]
    assert actions == [
        ("root", "create"),
        ("root", "approve_refused"),
        ("ROOT", "approve_refused"),
        ("bob", "approve"),
    ]


async def test_small_live_sends_and_drills_need_no_second_person(api: Api) -> None:
    small = await api.call("POST", "/v1/broadcasts", as_="alice", json_body=LIVE_92)
    assert small.body["approval_required"] is False
    assert small.body["broadcast"]["state"] == "approved"
    drill = await api.call("POST", "/v1/broadcasts", as_="alice", json_body=DRILL_75)
    assert drill.status == 201, drill.body
    assert drill.body["approval_required"] is False
    assert drill.body["broadcast"]["state"] == "approved"
    assert drill.body["broadcast"]["kind"] == "drill"
    assert drill.body["broadcast"]["recipients"] == 4  # the test group only
    assert all(g["text"].startswith("EXERCI") for g in drill.body["preview"]["groups"])


async def test_threshold_zero_makes_every_live_send_wait(make_api: ApiFactory) -> None:
    api = await make_api(api_approval_threshold=0)
    created = await api.call("POST", "/v1/broadcasts", as_="alice", json_body=LIVE_92)
    assert created.body["broadcast"]["state"] == "pending_approval"


async def test_a_drill_cannot_be_smuggled_with_a_live_template_or_vice_versa(api: Api) -> None:
    reply = await api.call(
        "POST", "/v1/broadcasts", as_="alice", json_body={**LIVE_75, "kind": "drill"}
    )
    assert reply.status == 422
    assert "drill template" in reply.error["message"]
    reply = await api.call(
        "POST", "/v1/broadcasts", as_="alice", json_body={**DRILL_75, "kind": "live"}
    )
    assert reply.status == 422
    assert await api.count("broadcasts") == 0


# -- cancel, pause, resume, update, all-clear --------------------------------------------------


async def test_the_creator_may_cancel_their_own_broadcast_but_not_others(api: Api) -> None:
    own = await api.create(LIVE_92, as_="alice")
    other = await api.create(LIVE_92, as_="olga")
    refused = await api.call("POST", f"/v1/broadcasts/{other}/cancel", as_="alice")
    assert refused.status == 403
    assert "created by olga" in refused.error["message"]
    done = await api.call("POST", f"/v1/broadcasts/{own}/cancel", as_="alice")
    assert done.status == 200
    assert done.body["state"] == "cancelled"
    assert await api.state(other) == "approved"


async def test_cancel_needs_no_approval_and_works_while_pending(api: Api) -> None:
    pending = await api.create(LIVE_75, as_="alice")
    reply = await api.call("POST", f"/v1/broadcasts/{pending}/cancel", as_="bob")
    assert reply.status == 200
    assert reply.body["state"] == "cancelled"
    again = await api.call("POST", f"/v1/broadcasts/{pending}/cancel", as_="bob")
    assert again.status == 409
    assert "it is cancelled" in again.error["message"]


async def test_resuming_a_broadcast_awaiting_approval_says_where_it_is_approved(api: Api) -> None:
    """`resume` of a broadcast awaiting its second person said only "only from paused"; it says
    where a second person approves it (the CLI cannot: its user is one person)."""
    pending = await api.create(LIVE_75, as_="alice")
    resume = await api.call("POST", f"/v1/broadcasts/{pending}/resume", as_="bob")
    assert resume.status == 409
    message = resume.error["message"]
    assert "it is pending_approval (only from paused)" in message
    assert f"POST /v1/broadcasts/{pending}/approve" in message and "console" in message
    status = await api.call("GET", f"/v1/broadcasts/{pending}", as_="alice")
    assert f"/v1/broadcasts/{pending}/approve" in status.body["waiting_for"]


async def test_pause_and_resume_follow_the_state_machine(api: Api) -> None:
    broadcast_id = await api.create(LIVE_92)
    resume = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/resume", as_="bob")
    assert resume.status == 409
    assert "only from paused" in resume.error["message"]
    paused = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/pause", as_="bob")
    assert paused.body["state"] == "paused"
    resumed = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/resume", as_="bob")
    assert resumed.body["state"] == "approved"


async def test_update_and_all_clear_follow_their_parent_and_stop_it(api: Api) -> None:
    parent = await api.create(LIVE_92)
    update = await api.call(
        "POST",
        f"/v1/broadcasts/{parent}/update",
        as_="alice",
        json_body={"variables": {"instruction": "Restez chez vous.", "instruction.en": "Stay in."}},
    )
    assert update.status == 201, update.body
    child = update.body["broadcast"]
    assert child["parent_id"] == parent
    assert child["template"] == "update"
    assert child["recipients"] == 2  # the parent's areas
    texts = {g["language"]: g["text"] for g in update.body["preview"]["groups"]}
    assert "Restez chez vous." in texts["fr"] and "Stay in." not in texts["fr"]
    assert "Stay in." in texts["en"] and "Restez" not in texts["en"]  # each its own language
    assert await api.state(parent) == "cancelled"
    clear = await api.call("POST", f"/v1/broadcasts/{child['broadcast_id']}/all-clear", as_="alice")
    assert clear.status == 201, clear.body
    assert clear.body["broadcast"]["template"] == "all_clear"
    assert await api.state(child["broadcast_id"]) == "cancelled"
    report = (await api.call("GET", f"/v1/broadcasts/{parent}/report", as_="bob")).body
    assert [f["id"] for f in report["follow_ups"]] == [child["broadcast_id"]]
    # The after-action reports link them both ways (they were in the API's JSON only).
    after = report["after_action"]
    assert [f["broadcast_id"] for f in after["followed_by"]] == [child["broadcast_id"]]
    assert after["followed_by"][0]["template"] == "update" and after["follows"] is None
    assert f"followed by: broadcast {child['broadcast_id']} (update, cancelled" in render_text(
        after
    )
    child_report = await api.call(
        "GET", f"/v1/broadcasts/{child['broadcast_id']}/report", as_="bob"
    )
    child_after = child_report.body["after_action"]
    assert child_after["follows"] == parent
    assert f"follows broadcast {parent}" in render_text(child_after)
    assert f"follows broadcast {parent}" in render_html(child_after)


async def test_an_update_without_its_variable_is_refused_and_stops_nothing(api: Api) -> None:
    parent = await api.create(LIVE_92)
    reply = await api.call("POST", f"/v1/broadcasts/{parent}/update", as_="alice")
    assert reply.status == 422
    assert reply.error["code"] == "template_error"
    assert "instruction" in reply.error["message"]
    assert await api.state(parent) == "approved"
    missing = await api.call("POST", "/v1/broadcasts/999999/all-clear", as_="alice")
    assert missing.status == 404


# -- reading ----------------------------------------------------------------------------------


async def test_status_list_and_report(api: Api) -> None:
    broadcast_id = await api.create(LIVE_75)
    status = await api.call("GET", f"/v1/broadcasts/{broadcast_id}", as_="bob")
    assert status.status == 200
    assert status.body["state"] == "pending_approval"
    assert status.body["created_by"] == "alice"
    assert status.body["accepted"] == 0
    listing = await api.call("GET", "/v1/broadcasts?limit=5", as_="bob")
    assert [b["id"] for b in listing.body["broadcasts"]] == [broadcast_id]
    report = await api.call("GET", f"/v1/broadcasts/{broadcast_id}/report", as_="alice")
    languages = {(g["departement"], g["lang"]) for g in report.body["groups"]}
    assert languages == {("75", "fr"), ("75", "en"), ("75", "es"), ("75", "de")}
    missing = await api.call("GET", "/v1/broadcasts/424242", as_="bob")
    assert missing.status == 404
    assert missing.error["code"] == "not_found"
    huge = await api.call("GET", "/v1/broadcasts/99999999999999999999", as_="bob")
    assert huge.status == 404


async def test_the_after_action_report_and_who_was_not_reached_over_http(api: Api) -> None:
    """A broadcast cancelled before any part left: the report (JSON, HTML) says nobody was
    reached, and the CSV lists every recipient, for approvers only (an operator's try is
    refused and audited)."""
    broadcast_id = await api.create(LIVE_75)
    cancelled = await api.call("POST", f"/v1/broadcasts/{broadcast_id}/cancel", as_="bob")
    assert cancelled.status == 200, cancelled.body
    report = await api.call("GET", f"/v1/broadcasts/{broadcast_id}/report", as_="alice")
    after = report.body["after_action"]
    assert after["state"] == "cancelled"
    assert after["timeline"][-1]["event"] == "finished (cancelled)"
    assert after["timeline"][-1]["by"] == "bob"  # who stopped it, from the audit trail
    assert after["areas"] == [{"code": "75", "name": "Paris"}]
    assert after["totals"]["not_reached"] == after["totals"]["recipients"] > 0
    page = await api.call(
        "GET",
        f"/v1/broadcasts/{broadcast_id}/report",
        as_="alice",
        headers={"Accept": "text/html"},
    )
    assert page.headers["Content-Type"].startswith("text/html")
    assert "<svg" in page.body and "after-action report" in page.body

    path = f"/v1/broadcasts/{broadcast_id}/not-reached"
    refused = await api.call("GET", path, as_="alice")
    assert refused.status == 403
    exported = await api.call("GET", path, as_="bob")
    assert exported.status == 200
    assert exported.headers["Content-Type"].startswith("text/csv")
    lines = exported.body.splitlines()
    assert lines[0] == "msisdn,departement,commune,language,why"
    assert len(lines) - 1 == after["totals"]["recipients"]
    assert all(line.endswith(",not sent") for line in lines[1:])
    async with api.db.acquire() as conn:
        actions = [
            (r["actor"], r["action"])
            for r in await conn.fetch(
                "SELECT actor, action FROM audit_log WHERE subject = $1 ORDER BY id",
                f"broadcast:{broadcast_id}",
            )
        ]
    assert ("alice", "denied") in actions and ("bob", "export_not_reached") in actions
    assert (await api.call("GET", "/v1/broadcasts/424242/not-reached", as_="bob")).status == 404


async def test_dry_run_previews_and_stores_nothing(api: Api) -> None:
    reply = await api.call(
        "POST", "/v1/broadcasts", as_="alice", json_body={**LIVE_75, "dry_run": True}
    )
    assert reply.status == 200
    assert reply.body["dry_run"] is True
    assert reply.body["approval_required"] is True
    assert reply.body["preview"]["recipients"] == 9
    assert {g["language"] for g in reply.body["preview"]["groups"]} == {"fr", "en", "es", "de"}
    assert await api.count("broadcasts") == 0
    entries = (await api.call("GET", "/v1/audit", as_="root")).body["entries"]
    assert entries[0]["action"] == "create_preview"


# -- idempotency ------------------------------------------------------------------------------


async def test_a_retried_create_returns_the_same_broadcast(api: Api) -> None:
    headers = {"Idempotency-Key": "5b1c7c1e-retry-1"}
    first = await api.call(
        "POST", "/v1/broadcasts", as_="alice", json_body=LIVE_75, headers=headers
    )
    assert first.status == 201
    # Same content, keys in another order: the same request.
    reordered = {"template": "outage", "areas": ["dep:75"]}
    second = await api.call(
        "POST", "/v1/broadcasts", as_="alice", json_body=reordered, headers=headers
    )
    assert second.status == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.body["replayed"] is True
    assert second.body["broadcast"]["broadcast_id"] == first.body["broadcast"]["broadcast_id"]
    assert await api.count("broadcasts") == 1
    different = await api.call(
        "POST", "/v1/broadcasts", as_="alice", json_body=LIVE_92, headers=headers
    )
    assert different.status == 422
    assert different.error["code"] == "idempotency_mismatch"
    # Keys belong to a token: another holder's identical key is another request.
    other = await api.call("POST", "/v1/broadcasts", as_="olga", json_body=LIVE_75, headers=headers)
    assert other.status == 201
    assert await api.count("broadcasts") == 2


async def test_concurrent_retries_create_one_broadcast(api: Api) -> None:
    headers = {"Idempotency-Key": "storm"}
    replies = await asyncio.gather(
        *(
            api.call("POST", "/v1/broadcasts", as_="alice", json_body=LIVE_92, headers=headers)
            for _ in range(6)
        )
    )
    assert sorted(r.status for r in replies) == [200] * 5 + [201]
    assert len({r.body["broadcast"]["broadcast_id"] for r in replies}) == 1
    assert await api.count("broadcasts") == 1


async def test_a_refused_create_does_not_burn_its_key(api: Api) -> None:
    headers = {"Idempotency-Key": "fix-and-retry"}
    bad = await api.call(
        "POST",
        "/v1/broadcasts",
        as_="alice",
        json_body={"areas": ["dep:00"], "template": "outage"},
        headers=headers,
    )
    assert bad.status == 422
    good = await api.call("POST", "/v1/broadcasts", as_="alice", json_body=LIVE_92, headers=headers)
    assert good.status == 201
    bad_key = await api.call(
        "POST", "/v1/broadcasts", as_="alice", json_body=LIVE_92, headers={"Idempotency-Key": "é"}
    )
    assert bad_key.status == 422
    assert bad_key.error["code"] == "invalid_idempotency_key"


# -- bad bodies -------------------------------------------------------------------------------

BAD_BODIES: list[tuple[str, bytes, str, int, str]] = [
    (
        "wrong type",
        b'{"areas": "dep:75", "template": "outage"}',
        "application/json",
        400,
        "body.areas: expected an array, got a string",
    ),
    (
        "unknown field",
        b'{"areas": ["dep:75"], "template": "outage", "priority": 99}',
        "application/json",
        400,
        "unknown field 'priority'",
    ),
    (
        "missing field",
        b'{"areas": ["dep:75"]}',
        "application/json",
        400,
        "missing required field 'template'",
    ),
    (
        "bad kind",
        b'{"areas": ["dep:75"], "template": "outage", "kind": "real"}',
        "application/json",
        400,
        "is not one of 'live', 'drill'",
    ),
    (
        "bad area form",
        b'{"areas": ["75"], "template": "outage"}',
        "application/json",
        400,
        "is not valid: an area",
    ),
    (
        "control char",
        b'{"areas": ["dep:75"], "template": "outage", "variables": {"details": "a\\u0000b"}}',
        "application/json",
        400,
        "control or invisible characters (U+0000)",
    ),
    (
        "expiry too long",
        b'{"areas": ["dep:75"], "template": "outage", "expires_in_seconds": 99999999}',
        "application/json",
        400,
        "is greater than",
    ),
    ("not json", b"areas=dep:75", "application/json", 400, "not valid JSON"),
    (
        "nan",
        b'{"areas": ["dep:75"], "template": "outage", "expires_in_seconds": NaN}',
        "application/json",
        400,
        "NaN",
    ),
    ("not an object", b'[{"areas": ["dep:75"]}]', "application/json", 400, "expected an object"),
    ("empty", b"", "application/json", 400, "a body is required"),
    (
        "form post",
        b"areas=dep:75&template=outage",
        "application/x-www-form-urlencoded",
        415,
        "send the body as application/json",
    ),
    (
        "unknown area",
        b'{"areas": ["dep:00"], "template": "outage"}',
        "application/json",
        422,
        "unknown département '00'",
    ),
    (
        "unknown template",
        b'{"areas": ["dep:75"], "template": "party"}',
        "application/json",
        422,
        "unknown template 'party'",
    ),
    (
        "undeclared variable",
        b'{"areas": ["dep:75"], "template": "outage", "variables": {"evil": "x"}}',
        "application/json",
        422,
        "has no variable 'evil'",
    ),
    (
        "no subscriber",
        b'{"areas": ["dep:01"], "template": "outage"}',
        "application/json",
        422,
        "no subscriber matches",
    ),
]


@pytest.mark.parametrize(
    ("raw", "content_type", "status", "fragment"),
    [b[1:] for b in BAD_BODIES],
    ids=[b[0] for b in BAD_BODIES],
)
async def test_bad_bodies_get_a_4xx_with_a_reason_and_store_nothing(
    api: Api, raw: bytes, content_type: str, status: int, fragment: str
) -> None:
    reply = await api.call(
        "POST", "/v1/broadcasts", as_="alice", data=raw, headers={"Content-Type": content_type}
    )
    assert reply.status == status, reply.body
    assert fragment in reply.error["message"], reply.error
    assert reply.error["request_id"] == reply.headers["X-Request-Id"]
    assert await api.count("broadcasts") == 0
    assert await api.count("api_idempotency_keys") == 0


async def test_an_oversized_body_is_refused_unread(make_api: ApiFactory) -> None:
    api = await make_api(api_max_body_bytes=4096)
    body = {**LIVE_75, "variables": {"details": "x" * 400}, "exclude": []}
    big = json.dumps(body).replace(
        '"exclude": []', '"exclude": [' + '"dep:92",' * 600 + '"dep:93"]'
    )
    reply = await api.call(
        "POST",
        "/v1/broadcasts",
        as_="alice",
        data=big,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 413
    assert reply.error["code"] == "body_too_large"
    assert "4096" in reply.error["message"]
    assert await api.count("broadcasts") == 0


async def test_unknown_query_parameters_and_bad_limits_are_refused(api: Api) -> None:
    reply = await api.call("GET", "/v1/broadcasts?limit=0", as_="bob")
    assert reply.status == 400
    assert "from 1 to 500" in reply.error["message"]
    reply = await api.call("GET", "/v1/broadcasts?state=running", as_="bob")
    assert reply.status == 400
    assert "unknown query parameter 'state'" in reply.error["message"]


async def test_unknown_routes_and_methods_answer_in_json(api: Api) -> None:
    reply = await api.call("GET", "/v1/nothing", as_="bob")
    assert reply.status == 404
    assert reply.error["code"] == "not_found"
    reply = await api.call("DELETE", "/v1/broadcasts", as_="bob")
    assert reply.status == 405
    assert "POST" in reply.error["message"]


# -- tokens -----------------------------------------------------------------------------------


async def test_a_revoked_token_is_refused_from_its_next_request(api: Api) -> None:
    before = await api.call("GET", "/v1/broadcasts", as_="spare")
    assert before.status == 200
    revoked = await api.call(
        "POST", f"/v1/tokens/{api.token_ids['spare']}/revoke", as_="root", json_body={"reason": "x"}
    )
    assert revoked.status == 200
    assert revoked.body["active"] is False
    assert revoked.body["revoked_by"] == "root"
    after = await api.call("GET", "/v1/broadcasts", as_="spare")
    assert after.status == 401
    assert "revoked" in after.error["message"]
    again = await api.call("POST", f"/v1/tokens/{api.token_ids['spare']}/revoke", as_="root")
    assert again.status == 409
    missing = await api.call("POST", "/v1/tokens/9999/revoke", as_="root")
    assert missing.status == 404


async def test_tokens_are_shown_once_and_stored_hashed(api: Api) -> None:
    created = await api.call(
        "POST", "/v1/tokens", as_="root", json_body={"name": "dave", "role": "approver"}
    )
    assert created.status == 201
    token = created.body["token"]
    assert token.startswith("bct_")
    listing = await api.call("GET", "/v1/tokens", as_="root")
    dumped = json.dumps(listing.body)
    assert token not in dumped
    assert token[:12] in dumped
    async with api.db.acquire() as conn:
        stored = await conn.fetchval("SELECT token_hash FROM api_tokens WHERE name = 'dave'")
    assert stored == hash_token(token)
    # Minted by root for another person (dave): refused until a second admin activates it.
    assert created.body["holder"] == "dave"
    assert created.body["pending"] is True
    waits = await api.call("GET", "/v1/broadcasts", token=token)
    assert waits.status == 401
    assert "waits for a second admin" in waits.error["message"]
    async with api.db.acquire() as conn:
        _, second_admin = await mint_token(conn, "root2", "admin")
    activated = await api.call(
        "POST", f"/v1/tokens/{created.body['id']}/activate", token=second_admin
    )
    assert activated.status == 200, activated.body
    assert activated.body["active"] is True
    assert activated.body["activated_by"] == "root2"
    works = await api.call("GET", "/v1/broadcasts", token=token)
    assert works.status == 200
    reserved = await api.call(
        "POST", "/v1/tokens", as_="root", json_body={"name": "cli", "role": "admin"}
    )
    assert reserved.status == 422


@pytest.mark.parametrize(
    "header",
    ["", "Bearer", "Basic YWxpY2U6c2VjcmV0", "Bearer not-a-token", "Bearer bct_" + "A" * 43],
)
async def test_bad_credentials_are_401(api: Api, header: str) -> None:
    reply = await api.call("GET", "/v1/broadcasts", headers={"Authorization": header})
    assert reply.status == 401
    assert reply.error["code"] == "unauthorized"


# -- limits, request ids, audit ---------------------------------------------------------------


async def test_each_token_is_rate_limited(make_api: ApiFactory) -> None:
    api = await make_api(api_rate_per_second=0.5, api_rate_burst=3)
    statuses = [(await api.call("GET", "/v1/broadcasts", as_="bob")).status for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = await api.call("GET", "/v1/broadcasts", as_="bob")
    assert int(limited.headers["Retry-After"]) >= 1
    assert (await api.call("GET", "/v1/broadcasts", as_="carol")).status == 200


async def test_failed_authentications_are_limited_per_address(api: Api) -> None:
    bad = {"Authorization": "Bearer bct_" + "B" * 43}
    statuses = [(await api.call("GET", "/v1/broadcasts", headers=bad)).status for _ in range(12)]
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429


async def test_request_ids_are_echoed_logged_and_audited(api: Api) -> None:
    reply = await api.call(
        "POST",
        "/v1/broadcasts",
        as_="alice",
        json_body=LIVE_92,
        headers={"X-Request-Id": "crisis-cell-42"},
    )
    assert reply.headers["X-Request-Id"] == "crisis-cell-42"
    entry = (await api.call("GET", "/v1/audit?limit=1", as_="root")).body["entries"][0]
    assert entry["actor"] == "alice"
    assert entry["action"] == "create"
    assert entry["subject"] == f"broadcast:{reply.body['broadcast']['broadcast_id']}"
    assert entry["details"]["request_id"] == "crisis-cell-42"
    generated = await api.call("GET", "/healthz", headers={"X-Request-Id": "bad id with spaces"})
    assert generated.headers["X-Request-Id"] != "bad id with spaces"
    assert len(generated.headers["X-Request-Id"]) == 32


async def test_audit_pages_back(api: Api) -> None:
    for _ in range(3):
        await api.create(LIVE_92)
    first = (await api.call("GET", "/v1/audit?limit=2", as_="root")).body["entries"]
    assert len(first) == 2
    older = await api.call("GET", f"/v1/audit?limit=10&before={first[-1]['id']}", as_="root")
    assert [e["id"] for e in older.body["entries"]] == [first[-1]["id"] - 1]


# -- CAP --------------------------------------------------------------------------------------


async def test_cap_actual_alert_creates_a_live_broadcast_with_its_texts(api: Api) -> None:
    reply = await api.cap("alert_actual.xml")
    assert reply.status == 201, reply.body
    assert reply.body["audience"] == "public"
    assert reply.body["action"] == "created"
    broadcast = reply.body["broadcast"]
    assert broadcast["kind"] == "live"
    assert broadcast["template"] == "cap"
    assert broadcast["state"] == "pending_approval"  # 9 recipients > 3: two-person rule
    texts = {g["language"]: g["text"] for g in reply.body["preview"]["groups"]}
    assert texts["fr"].startswith("Les numéros 15, 17, 18 et 112")
    assert texts["en"].startswith("Emergency numbers")
    assert texts["es"] == texts["fr"]  # no Spanish info: the French text
    assert any("more than 7 days" in w for w in reply.body["warnings"])
    # A retried message is recognised and returns the first answer.
    again = await api.cap("alert_actual.xml")
    assert again.status == 200
    assert again.body["replayed"] is True
    assert again.body["broadcast_id"] == broadcast["broadcast_id"]
    assert await api.count("broadcasts") == 1
    # The same identifier with other content is refused.
    changed = (CAP_DIR / "alert_actual.xml").read_bytes().replace(b"01 99 00 75 00", b"112")
    conflict = await api.cap("", raw=changed)
    assert conflict.status == 409
    assert conflict.error["code"] == "cap_identifier_reused"


async def test_cap_update_follows_and_cancel_stops_the_whole_thread(api: Api) -> None:
    alert = await api.cap("alert_actual.xml")
    first = alert.body["broadcast_id"]
    approved = await api.call("POST", f"/v1/broadcasts/{first}/approve", as_="bob")
    assert approved.status == 200
    update = await api.cap("update.xml")
    assert update.status == 201, update.body
    second = update.body["broadcast_id"]
    assert update.body["parent_id"] == first
    assert update.body["broadcast"]["recipients"] == 9  # the alert's areas
    assert "01 99 00 75 01" in update.body["preview"]["groups"][0]["text"]
    assert await api.state(first) == "cancelled"  # superseded by the update
    # ...by whom, in its trail and its after-action report's timeline.
    report = await api.call("GET", f"/v1/broadcasts/{first}/report", as_="alice")
    assert report.body["after_action"]["timeline"][-1]["by"] == "alice"
    # An operator who did not create them may not cancel them...
    refused = await api.cap("cancel.xml", as_="olga")
    assert refused.status == 403
    assert await api.state(second) == "pending_approval"
    # ...their creator may, in one step, for the whole thread.
    cancel = await api.cap("cancel.xml", as_="alice")
    assert cancel.status == 200, cancel.body
    assert cancel.body["cancelled"] == [second]
    assert cancel.body["referenced"] == [first, second]
    assert await api.state(second) == "cancelled"


async def test_cap_exercise_goes_to_the_test_group_with_the_marker(api: Api) -> None:
    reply = await api.cap("exercise.xml")
    assert reply.status == 201, reply.body
    assert reply.body["audience"] == "test group"
    broadcast = reply.body["broadcast"]
    assert broadcast["kind"] == "drill"
    assert broadcast["state"] == "approved"  # drills need no second person
    assert broadcast["recipients"] == 4
    assert all(g["text"].startswith("EXERCI") for g in reply.body["preview"]["groups"])


async def test_cap_test_status_is_validated_and_nothing_is_stored(api: Api) -> None:
    reply = await api.cap("test_status.xml")
    assert reply.status == 200
    assert reply.body["audience"] == "none"
    assert "nothing was stored or sent" in reply.body["action"]
    assert reply.body["preview"]["recipients"] == 2
    assert await api.count("broadcasts") == 0
    assert await api.count("cap_messages") == 0


@pytest.mark.parametrize(
    ("name", "status", "code"),
    [
        ("malformed.xml", 400, "malformed_xml"),
        ("bomb.xml", 400, "xml_refused"),
        ("xxe.xml", 400, "xml_refused"),
        ("polygon_only.xml", 422, "shape_meets_no_cell"),  # no cell imported here
        ("update.xml", 422, "unknown_reference"),  # nothing to update yet
        ("two_places.xml", 422, "invalid_cap"),  # each text would reach the other's areas
        ("italian.xml", 422, "invalid_cap"),  # an <info> with no template: refused, not dropped
        ("cancel.xml", 422, "unknown_reference"),
    ],
)
async def test_bad_cap_messages_are_refused_and_send_nothing(
    api: Api, name: str, status: int, code: str
) -> None:
    reply = await api.cap(name)
    assert reply.status == status, reply.body
    assert reply.error["code"] == code
    assert await api.count("broadcasts") == 0
    assert await api.count("cap_messages") == 0


async def test_cap_needs_an_xml_content_type(api: Api) -> None:
    reply = await api.call(
        "POST",
        "/v1/cap",
        as_="alice",
        data=(CAP_DIR / "alert_actual.xml").read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 415


# -- OpenAPI, health, metrics -----------------------------------------------------------------


async def test_openapi_document_matches_the_router(api: Api) -> None:
    served = (await api.call("GET", "/v1/openapi.json")).body
    assert served == json.loads(json.dumps(document()))
    documented = {(method.upper(), path) for path, ops in served["paths"].items() for method in ops}
    app = api.client.app
    assert app is not None
    routed = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter", "")
        path = path.replace(":[0-9]+}", "}")
        for route in resource:
            if route.method != "HEAD":
                routed.add((route.method, path))
    assert routed == documented


async def test_readyz_says_why_it_is_not_ready(api: Api) -> None:
    reply = await api.call("GET", "/readyz")
    assert reply.status == 503
    assert reply.body["database"] == "ok"
    assert "no SMPP pool" in " ".join(reply.body["problems"])


async def test_metrics_expose_broadcasts_and_http_traffic(api: Api) -> None:
    await api.create(LIVE_75)
    reply = await api.call("GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    text = reply.body
    assert 'broadcaster_broadcasts{kind="live",state="pending_approval"} 1.0' in text
    assert "broadcaster_broadcast_recipients{" in text
    assert 'broadcaster_http_requests_total{operation="createBroadcast",status="201"} 1.0' in text
    assert "broadcaster_database_up 1.0" in text


async def test_metrics_say_when_the_database_is_unreachable(api: Api) -> None:
    """The figures go stale rather than missing, and broadcaster_database_up says so."""
    assert "broadcaster_database_up 1.0" in (await api.call("GET", "/metrics")).body
    await api.db.close()
    reply = await api.call("GET", "/metrics")
    assert reply.status == 200
    assert "broadcaster_database_up 0.0" in reply.body
    assert "broadcaster_metrics_db_errors_total 1.0" in reply.body


async def test_log_lines_carry_the_request_id_and_the_broadcast_id(api: Api) -> None:
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        reply = await api.call(
            "POST",
            "/v1/broadcasts",
            as_="alice",
            json_body=LIVE_92,
            headers={"X-Request-Id": "r-7"},
        )
    broadcast_id = reply.body["broadcast"]["broadcast_id"]
    created = next(e for e in logs if e["event"] == "broadcast_created")
    assert created["request_id"] == "r-7"
    assert created["broadcast_id"] == broadcast_id
    assert created["actor"] == "alice"
    access = next(e for e in logs if e["event"] == "http_request")
    assert access["request_id"] == "r-7"
    assert access["broadcast_id"] == broadcast_id
    assert access["status"] == 201
