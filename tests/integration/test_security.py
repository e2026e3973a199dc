"""Issue 19, tried as an attacker would: each hole, through the real HTTP server (the API app
with a worker sending to the mock SMSC over TCP, real PostgreSQL). Each test asserts the
status, that nothing was sent or cancelled (the mock's record, the broadcast's state) and the
audit entry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fixtures_drills import WebhookSink
from fixtures_tokens import mint_token

from broadcaster.drills.config import DrillSettings
from broadcaster.drills.scheduler import DrillScheduler
from broadcaster.engine.worker import Worker
from broadcaster.mocksmsc import MockSmsc
from broadcaster.serve import create_app
from broadcaster.settings import Settings, SmscConfig
from broadcaster.store.migrations import migrate

CAP_DIR = Path(__file__).resolve().parent.parent / "data" / "cap"
# dep:75: 4 subscribers (live sends there wait for a second person: 4 > 2); dep:92: 2.
SUBSCRIBERS = [
    (33600000001, "75", "75056", "fr", False),
    (33600000002, "75", "75056", "en", False),
    (33600000003, "75", "75056", "fr", True),
    (33600000004, "75", "75056", "fr", True),
    (33600000011, "92", "92012", "fr", False),
    (33600000012, "92", "92012", "fr", False),
]
PEOPLE = {
    "alice": "operator",
    "olga": "operator",
    "bob": "approver",
    "root1": "admin",
    "root2": "admin",
}
LIVE_75 = {"areas": ["dep:75"], "template": "outage"}
LIVE_92 = {"areas": ["dep:92"], "template": "outage"}
UPDATE = {"variables": {"instruction": "Restez chez vous.", "instruction.en": "Stay in."}}


@dataclass
class Lab:
    client: TestClient[web.Request, web.Application]
    db: asyncpg.Pool[asyncpg.Record]
    smsc: SmscConfig
    mock: MockSmsc
    tokens: dict[str, str]
    token_ids: dict[str, int]

    async def call(
        self,
        method: str,
        path: str,
        as_: str | None = None,
        body: Any = None,
        *,
        token: str | None = None,
        raw: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[int, Any]:
        headers: dict[str, str] = {}
        bearer = token or (self.tokens[as_] if as_ else None)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        if body is not None:
            raw = json.dumps(body).encode()
            content_type = content_type or "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        async with self.client.request(method, path, data=raw, headers=headers) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def cap(self, name: str, as_: str) -> tuple[int, Any]:
        raw = (CAP_DIR / name).read_bytes()
        return await self.call("POST", "/v1/cap", as_, raw=raw, content_type="application/cap+xml")

    async def create(self, body: dict[str, Any], as_: str) -> int:
        status, reply = await self.call("POST", "/v1/broadcasts", as_, body)
        assert status == 201, reply
        return int(reply["broadcast"]["broadcast_id"])

    async def run_worker(self) -> None:
        """Run every runnable broadcast to its end, as `serve`'s worker would."""
        await Worker(self.db, (self.smsc,)).run(until_idle=True)

    async def state(self, broadcast_id: int) -> str:
        async with self.db.acquire() as conn:
            return str(
                await conn.fetchval("SELECT state FROM broadcasts WHERE id = $1", broadcast_id)
            )

    async def audit(self, action: str) -> list[dict[str, Any]]:
        """The audit entries of `action`, oldest first."""
        async with self.db.acquire() as conn:
            rows = await conn.fetch(
                "SELECT actor, subject, details FROM audit_log WHERE action = $1 ORDER BY id",
                action,
            )
        return [
            {"actor": r["actor"], "subject": r["subject"], **json.loads(r["details"])} for r in rows
        ]

    async def count(self, table: str) -> int:
        async with self.db.acquire() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608

    def received(self) -> dict[str, list[str]]:
        return dict(self.mock.record.messages)


@pytest.fixture
async def lab(db_dsn: str, mock_smsc: tuple[MockSmsc, SmscConfig]) -> AsyncIterator[Lab]:
    mock, smsc = mock_smsc
    settings = Settings(
        database_url=db_dsn,
        api_approval_threshold=2,
        api_rate_per_second=1000.0,
        api_rate_burst=1000,
    )
    db = await asyncpg.create_pool(db_dsn, min_size=2, max_size=8)
    tokens: dict[str, str] = {}
    ids: dict[str, int] = {}
    async with db.acquire() as conn:
        await conn.executemany(
            "INSERT INTO subscribers (msisdn, departement, commune, lang, test_group) "
            "VALUES ($1, $2, $3, $4, $5)",
            SUBSCRIBERS,
        )
        for name, role in PEOPLE.items():
            row, tokens[name] = await mint_token(conn, name, role)
            ids[name] = int(row["id"])
    client = TestClient(TestServer(create_app(settings, db), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Lab(client, db, smsc, mock, tokens, ids)
    finally:
        await client.close()
        await db.close()


# -- 1. a follow-up needs the right to cancel what it follows ------------------------------------


async def test_an_operator_cannot_stop_anothers_broadcast_with_an_update(lab: Lab) -> None:
    original = await lab.create(LIVE_92, as_="olga")
    for what in ("update", "all-clear"):
        status, reply = await lab.call("POST", f"/v1/broadcasts/{original}/{what}", "alice", UPDATE)
        assert status == 403, reply
        assert "created by olga" in reply["error"]["message"]
    assert await lab.state(original) == "approved"  # nothing cancelled
    assert await lab.count("broadcasts") == 1  # nothing created
    denied = await lab.audit("denied")
    assert [(d["actor"], d["subject"], d["operation"], d["via"]) for d in denied] == [
        ("alice", f"broadcast:{original}", "cancelBroadcast", "updateBroadcast"),
        ("alice", f"broadcast:{original}", "cancelBroadcast", "allClearBroadcast"),
    ]
    # The original goes out as olga wrote it; no update reaches anyone.
    await lab.run_worker()
    assert await lab.state(original) == "completed"
    received = lab.received()
    assert sorted(received) == ["33600000011", "33600000012"]
    assert all("Restez" not in text for texts in received.values() for text in texts)
    # Finished, it is stopped by nobody: any operator may send its all-clear.
    status, reply = await lab.call("POST", f"/v1/broadcasts/{original}/all-clear", "alice")
    assert status == 201, reply
    assert await lab.state(original) == "completed"
    # Its creator may follow it up (and so stop it).
    own = await lab.create(LIVE_92, as_="alice")
    status, reply = await lab.call("POST", f"/v1/broadcasts/{own}/update", "alice", UPDATE)
    assert status == 201, reply
    assert await lab.state(own) == "cancelled"


async def test_an_operator_cannot_stop_anothers_cap_alert_with_a_cap_update(lab: Lab) -> None:
    status, alert = await lab.cap("alert_actual.xml", as_="olga")
    assert status == 201, alert
    original = int(alert["broadcast_id"])
    status, reply = await lab.cap("update.xml", as_="alice")
    assert status == 403, reply
    assert await lab.state(original) == "pending_approval"  # nothing cancelled
    assert await lab.count("broadcasts") == 1
    assert await lab.count("cap_messages") == 1  # the Update was not recorded
    denied = await lab.audit("denied")
    assert [(d["actor"], d["subject"], d["operation"], d["via"]) for d in denied] == [
        ("alice", f"broadcast:{original}", "cancelBroadcast", "postCap")
    ]
    # A CAP Cancel of it is refused too (it always was): the alert still goes out once approved.
    status, reply = await lab.cap("cancel.xml", as_="alice")
    assert status == 403, reply
    status, reply = await lab.call("POST", f"/v1/broadcasts/{original}/approve", "bob")
    assert status == 200, reply
    await lab.run_worker()
    assert len(lab.received()) == 4
    assert all("01 99 00 75 01" not in t for ts in lab.received().values() for t in ts)


# -- 5. JSON nested deeper than any request needs -------------------------------------------------


async def test_json_nested_a_thousand_deep_is_a_400_not_a_500(lab: Lab) -> None:
    audit_before = await lab.count("audit_log")
    bombs = [
        b'{"areas": ["dep:92"], "template": "outage", "variables": ' + b"[" * 1000 + b"]" * 1000,
        b"[" * 100_000,
        b'{"a":' * 5000 + b"1" + b"}" * 5000,
    ]
    for path in ("/v1/broadcasts", "/v1/tokens", "/v1/drill-schedules"):
        for bomb in bombs:
            status, reply = await lab.call(
                "POST", path, "root1", raw=bomb, content_type="application/json"
            )
            assert status == 400, (path, reply)
            assert reply["error"]["code"] == "malformed_body"
            assert "deep" in reply["error"]["message"]
    # Brackets inside strings do not count; a body as deep as a real one passes.
    status, reply = await lab.call(
        "POST", "/v1/broadcasts", "alice", {**LIVE_92, "variables": {"note": "[[[[" * 100}}
    )
    assert status != 400 or "deep" not in reply["error"]["message"], reply
    assert await lab.count("broadcasts") == 0
    assert await lab.count("audit_log") == audit_before  # refused before any command ran
    await lab.run_worker()
    assert lab.received() == {}


# -- 2. the two-person rule binds people, not tokens ---------------------------------------------


async def test_an_admin_cannot_approve_their_own_broadcast_with_a_second_token(lab: Lab) -> None:
    pending = await lab.create(LIVE_75, as_="root1")
    assert await lab.state(pending) == "pending_approval"
    # The attack of issue 19: mint a second token, approve with it.
    status, minted = await lab.call(
        "POST", "/v1/tokens", "root1", {"name": "root1.alt", "role": "approver"}
    )
    assert status == 201, minted
    assert (minted["holder"], minted["pending"], minted["active"]) == ("root1.alt", True, False)
    status, reply = await lab.call(
        "POST", f"/v1/broadcasts/{pending}/approve", token=minted["token"]
    )
    assert status == 401, reply  # pending: not usable until a second admin activates it
    # Nor may the admin who minted it activate it.
    status, reply = await lab.call("POST", f"/v1/tokens/{minted['id']}/activate", "root1")
    assert status == 403, reply
    assert reply["error"]["code"] == "two_person_rule"
    # Minted in their own name, a token is theirs at once, and still cannot approve.
    status, own = await lab.call(
        "POST",
        "/v1/tokens",
        "root1",
        {"name": "root1.laptop", "holder": "ROOT1", "role": "approver"},
    )
    assert status == 201, own
    assert (own["holder"], own["pending"], own["active"]) == ("ROOT1", False, True)
    status, reply = await lab.call("POST", f"/v1/broadcasts/{pending}/approve", token=own["token"])
    assert status == 403, reply
    assert reply["error"]["code"] == "two_person_rule"
    assert await lab.state(pending) == "pending_approval"
    await lab.run_worker()
    assert lab.received() == {}  # nothing sent
    # The audit trail: both mints (one pending), the refused activation, the refused approval.
    creates = await lab.audit("token_create")
    assert [(c["actor"], c["holder"], c["pending"]) for c in creates] == [
        ("root1", "root1.alt", True),
        ("root1", "ROOT1", False),
    ]
    refused = await lab.audit("token_activate_refused")
    assert [(r["actor"], r["subject"]) for r in refused] == [("root1", f"token:{minted['id']}")]
    approvals = await lab.audit("approve_refused")
    assert [(a["actor"], a["subject"], a["token_id"]) for a in approvals] == [
        ("ROOT1", f"broadcast:{pending}", own["id"])  # the holder, as written
    ]
    # A second person (another admin) activates the pending token; it is root1.alt's, not
    # root1's, so it may approve; so may bob. Then the broadcast goes out.
    status, reply = await lab.call("POST", f"/v1/tokens/{minted['id']}/activate", "root2")
    assert status == 200, reply
    assert (await lab.audit("token_activate"))[0]["actor"] == "root2"
    status, reply = await lab.call("POST", f"/v1/broadcasts/{pending}/approve", "bob")
    assert status == 200, reply
    await lab.run_worker()
    assert len(lab.received()) == 4


async def test_holders_are_backfilled_and_pending_tokens_cannot_sign_in(lab: Lab) -> None:
    async with lab.db.acquire() as conn:
        rows = await conn.fetch("SELECT name, holder, pending FROM api_tokens ORDER BY id")
        _, waiting = await mint_token(
            conn, "newcomer", "operator", created_by="root1", pending=True
        )
    assert all(r["holder"] == r["name"] and not r["pending"] for r in rows)
    status, reply = await lab.call("GET", "/v1/broadcasts", token=waiting)
    assert status == 401
    assert "waits for a second admin" in reply["error"]["message"]


# -- 3. drill webhooks: secrets, set by admins, to public destinations ---------------------------

SCHEDULE = {"name": "monthly", "cron": "0 12 * * 1#1", "timezone": "Europe/Paris"}
SECRET_HOOK = "https://alarm:s3cret@93.184.216.34/hooks/drills?token=T0KEN"


async def test_only_admins_set_webhooks_and_nobody_reads_them_back(lab: Lab) -> None:
    body = {**SCHEDULE, "areas": ["dep:75"], "webhook_url": SECRET_HOOK}
    status, reply = await lab.call("POST", "/v1/drill-schedules", "alice", body)
    assert status == 403, reply
    assert [d["operation"] for d in await lab.audit("denied")] == ["setDrillWebhook"]
    assert await lab.count("drill_schedules") == 0
    status, reply = await lab.call("POST", "/v1/drill-schedules", "root1", body)
    assert status == 201, reply
    assert reply["schedule"]["webhook_url"] == "https://93.184.216.34/…"
    schedule_id = reply["schedule"]["id"]
    created = await lab.audit("drill_schedule_create")
    assert [(c["actor"], c["webhook"]) for c in created] == [("root1", "https://93.184.216.34/…")]
    for who in ("alice", "bob", "root1"):
        for path in ("/v1/drill-schedules", f"/v1/drill-schedules/{schedule_id}"):
            status, reply = await lab.call("GET", path, who)
            assert status == 200, reply
            text = json.dumps(reply)
            assert "s3cret" not in text and "T0KEN" not in text and "/hooks/" not in text
            assert ("webhook_url" in text) == (who == "root1")  # masked, to admins only
    status, audit = await lab.call("GET", "/v1/audit", "root1")
    assert "s3cret" not in json.dumps(audit) and "T0KEN" not in json.dumps(audit)
    await lab.run_worker()
    assert lab.received() == {}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",  # the database's port: a port scan
        "https://127.0.0.1/",
        "https://127.1/",  # 127.0.0.1 once resolved
        "https://2130706433/",  # so is this
        "https://169.254.169.254/latest/meta-data/",  # cloud metadata
        "https://10.0.0.7/",
        "https://[::1]:8080/",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost/",
        "http://93.184.216.34/",  # public, but not https
        "https://" + "0" * 400 + "/",  # no name can be that long (schemathesis found a 500)
    ],
)
async def test_webhooks_to_internal_addresses_are_refused(lab: Lab, url: str) -> None:
    body = {**SCHEDULE, "areas": ["dep:75"], "webhook_url": url}
    status, reply = await lab.call("POST", "/v1/drill-schedules", "root1", body)
    assert status == 422, reply
    assert reply["error"]["code"] == "webhook_refused"
    assert reply["error"]["message"].startswith("webhook refused by policy")
    assert await lab.count("drill_schedules") == 0
    refused = await lab.audit("drill_webhook_refused")
    assert [r["actor"] for r in refused] == ["root1"]
    assert refused[0]["url"].endswith("/…") and "meta-data" not in refused[0]["url"]


async def test_a_stored_internal_webhook_is_refused_when_sent_and_says_nothing(
    lab: Lab, webhook_sink: WebhookSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schedule whose webhook points inside (set when its origin was allowed): at send time
    the host is resolved and checked again, nothing is posted, and what anyone reads back is
    `failed (refused by policy)`, not a connection error that would map the network."""
    monkeypatch.setenv("BROADCASTER_WEBHOOK_ALLOW", "http://127.0.0.1:*")
    body = {**SCHEDULE, "areas": ["dep:75"], "webhook_url": webhook_sink.url}
    status, reply = await lab.call("POST", "/v1/drill-schedules", "root1", body)
    assert status == 201, reply  # explicitly allowed: accepted
    schedule_id = reply["schedule"]["id"]
    monkeypatch.delenv("BROADCASTER_WEBHOOK_ALLOW")  # the allowance is withdrawn
    async with lab.db.acquire() as conn:
        await conn.execute("UPDATE subscribers SET test_group = false")  # cannot start: alarm
        await conn.execute("UPDATE drill_schedules SET next_run_at = now() - interval '1 min'")
    settings = Settings(database_url="postgresql://unused")
    config = DrillSettings(poll_s=1.0, webhook_retry_delays=(0.0, 0.0))
    tick = await DrillScheduler(lab.db, settings, config=config, smscs=()).tick()
    assert len(tick.not_started) == 1
    assert webhook_sink.received == []  # nothing posted
    for who in ("alice", "root1"):
        status, shown = await lab.call("GET", f"/v1/drill-schedules/{schedule_id}", who)
        assert status == 200, shown
        assert [r["webhook_status"] for r in shown["runs"]] == ["failed (refused by policy)"]
    await lab.run_worker()
    assert lab.received() == {}


async def test_migration_0010_gives_existing_tokens_their_name_as_holder(
    empty_db_dsn: str, tmp_path: Path
) -> None:
    migrations = Settings().sql_dir / "migrations"
    before = tmp_path / "before"
    before.mkdir()
    for path in sorted(migrations.glob("*.sql")):
        if path.name < "0010":
            shutil.copy(path, before / path.name)
    conn = await asyncpg.connect(empty_db_dsn)
    try:
        await migrate(conn, before)
        await conn.execute(
            "INSERT INTO api_tokens (name, role, prefix, token_hash, created_by) "
            "VALUES ('prefet-astreinte', 'approver', 'bct_abcdefgh', $1, 'cli:root')",
            "0" * 64,
        )
        assert "0010_token_holders.sql" in await migrate(conn, migrations)
        row = await conn.fetchrow("SELECT name, holder, pending FROM api_tokens")
    finally:
        await conn.close()
    assert row is not None
    assert dict(row) == {"name": "prefet-astreinte", "holder": "prefet-astreinte", "pending": False}
