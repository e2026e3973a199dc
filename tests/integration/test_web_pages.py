"""The console's pages over real HTTP (aiohttp client, real PostgreSQL): bad input comes back
as a clear error on the page with nothing stored, the API's role checks hold, drills stay on
the test group, the language follows the browser or the toggle, and the progress stream.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient
from fixtures_web import MakeLab, page_csrf, sign_in

from broadcaster.mocksmsc import MockConfig
from broadcaster.web import drill_reports, progress

LIVE = {"area": "dep:75", "template": "outage", "idempotency_key": "k-1"}


async def post(
    client: TestClient[Any, Any], path: str, data: dict[str, Any]
) -> tuple[int, str, str | None]:
    async with client.post(path, data=data, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers.get("Location")


async def test_an_unknown_area_is_refused_on_the_page_and_nothing_is_stored(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab()
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    form = {"csrf_token": csrf, "extra_areas": "dep:99", "template": "outage"}
    status, text, _ = await post(client, "/console/broadcasts/preview", form)
    assert status == 422
    assert "unknown département &#39;99&#39;" in text
    assert 'value="dep:99"' in text  # the form comes back as typed
    status, text, _ = await post(
        client, "/console/broadcasts", {**form, "confirm": "SEND TO PUBLIC"}
    )
    assert status == 422
    assert "unknown département" in text
    status, text, _ = await post(client, "/console/broadcasts/preview", {"csrf_token": csrf})
    assert status == 422
    assert "Choose at least one area" in text
    assert await lab.count("broadcasts") == 0


async def test_a_missing_broadcast_page_gives_no_command_line_advice(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    async with client.get("/console/broadcasts/99999") as response:
        assert response.status == 404
        text = await response.text()
    assert "there is no broadcast 99999" in text
    assert "broadcaster list" not in text and "/v1/broadcasts" not in text


async def test_a_missing_variable_is_refused_on_the_page_and_nothing_is_stored(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab()
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    form = {"csrf_token": csrf, "area": "dep:75", "template": "update"}
    for path in ("/console/broadcasts/preview", "/console/broadcasts"):
        status, text, _ = await post(client, path, {**form, "confirm": "SEND TO PUBLIC"})
        assert status == 422, path
        assert "needs instruction" in text
    status, text, _ = await post(
        client, "/console/broadcasts/preview", {**form, "var_instruction": "Stay tuned."}
    )
    assert status == 200
    assert "Stay tuned." in text
    assert await lab.count("broadcasts") == 0  # a preview stores nothing
    assert await lab.count("audit_log WHERE action = 'create_preview'") == 1


async def test_live_needs_its_own_confirmation_words(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    for typed in ("", "DRILL", "EXERCICE", "send"):
        status, text, _ = await post(
            client, "/console/broadcasts", {**LIVE, "csrf_token": csrf, "confirm": typed}
        )
        assert status == 422, typed
        assert "confirmation words do not match" in text
    assert await lab.count("broadcasts") == 0
    status, _, location = await post(
        client, "/console/broadcasts", {**LIVE, "csrf_token": csrf, "confirm": "envoi au public"}
    )
    assert status == 303
    assert location == "/console/broadcasts/1?done=created"
    # The same form again (a double click): the Idempotency-Key makes it the same broadcast.
    status, _, location = await post(
        client, "/console/broadcasts", {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    )
    assert status == 303
    assert location == "/console/broadcasts/1?done=created"
    assert await lab.count("broadcasts") == 1
    assert await lab.state(1) == "pending_approval"


async def test_the_drill_pages_reach_the_test_group_only(console_lab: MakeLab) -> None:
    lab = await console_lab(threshold=0)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    drill = {"csrf_token": csrf, "area": "dep:75", "template": "drill"}
    status, text, _ = await post(client, "/console/drills/preview", {**drill, "template": "outage"})
    assert status == 422
    assert "a drill must use a drill template" in text
    status, text, _ = await post(
        client, "/console/drills", {**drill, "confirm": "SEND TO PUBLIC", "kind": "live"}
    )
    assert status == 422
    assert await lab.count("broadcasts") == 0
    # `kind=live` in the form changes nothing: the drill page always sends kind drill.
    status, _, location = await post(
        client, "/console/drills", {**drill, "confirm": "DRILL", "kind": "live"}
    )
    assert (status, location) == (303, "/console/broadcasts/1?done=created")
    async with lab.db.acquire() as conn:
        row = await conn.fetchrow("SELECT kind, state, recipients, target FROM broadcasts")
    assert row is not None
    assert (row["kind"], row["state"], row["recipients"]) == ("drill", "approved", 3)
    assert json.loads(row["target"])["test_group_only"] is True
    # ...and the live page refuses a drill template.
    status, text, _ = await post(
        client, "/console/broadcasts/preview", {**drill, "template": "drill"}
    )
    assert status == 422
    assert "is for drills" in text


async def test_the_api_role_checks_hold_in_the_console(console_lab: MakeLab) -> None:
    lab = await console_lab()
    alice = await lab.client()
    alice_csrf = await sign_in(alice, lab.tokens["alice"])
    assert (
        await post(
            alice,
            "/console/broadcasts",
            {**LIVE, "csrf_token": alice_csrf, "confirm": "SEND TO PUBLIC"},
        )
    )[0] == 303
    approve = {"confirm": "SEND TO PUBLIC"}

    # An operator approves nothing; the audit log says they tried.
    status, text, _ = await post(
        alice, "/console/broadcasts/1/approve", {**approve, "csrf_token": alice_csrf}
    )
    assert status == 403
    assert "may not approveBroadcast" in text
    async with alice.get("/console/audit") as response:
        assert response.status == 403
    # An approver creates nothing.
    bob = await lab.client()
    bob_csrf = await sign_in(bob, lab.tokens["bob"])
    status, text, _ = await post(
        bob, "/console/broadcasts/preview", {**LIVE, "csrf_token": bob_csrf}
    )
    assert status == 403
    # Another operator may not cancel alice's broadcast; alice may (she created it).
    olga = await lab.client()
    olga_csrf = await sign_in(olga, lab.tokens["olga"])
    status, text, _ = await post(olga, "/console/broadcasts/1/cancel", {"csrf_token": olga_csrf})
    assert status == 403
    assert "created by alice" in text
    assert await lab.state(1) == "pending_approval"
    # The approver's approval needs the live words, then works.
    status, text, _ = await post(
        bob, "/console/broadcasts/1/approve", {"csrf_token": bob_csrf, "confirm": "DRILL"}
    )
    assert status == 422
    assert await lab.state(1) == "pending_approval"
    status, _, location = await post(
        bob, "/console/broadcasts/1/approve", {**approve, "csrf_token": bob_csrf}
    )
    assert (status, location) == (303, "/console/broadcasts/1?done=approved")
    assert await lab.state(1) == "approved"
    status, _, _ = await post(alice, "/console/broadcasts/1/cancel", {"csrf_token": alice_csrf})
    assert status == 303
    assert await lab.state(1) == "cancelled"
    async with lab.db.acquire() as conn:
        actions = [
            (r["actor"], r["action"])
            for r in await conn.fetch("SELECT actor, action FROM audit_log ORDER BY id")
            if r["action"] != "console_sign_in"
        ]
    assert actions == [
        ("alice", "create"),
        ("alice", "denied"),
        ("alice", "denied"),
        ("bob", "denied"),
        ("olga", "denied"),
        ("bob", "approve"),
        ("alice", "cancel"),
    ]


NOTHING_SENT = ("nothing was stored or sent", "rien n&#39;a été enregistré ni envoyé")


def assert_not_done(text: str, now: str) -> None:
    """A refused action on an existing broadcast: "not done" and where it stands, never
    "nothing was stored or sent" (staff would think the alert never went out)."""
    assert "This action was not done" in text
    assert now in text
    assert not any(words in text for words in NOTHING_SENT)


async def test_a_second_approval_says_the_broadcast_is_sending_not_that_nothing_was_sent(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab()
    alice = await lab.client()
    alice_csrf = await sign_in(alice, lab.tokens["alice"])
    create = {**LIVE, "csrf_token": alice_csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(alice, "/console/broadcasts", create))[0] == 303
    # Two approvers open the page while it waits; the first one's click approves it.
    bob, root = await lab.client(), await lab.client()
    approvals = [
        (
            client,
            {"csrf_token": await sign_in(client, lab.tokens[name]), "confirm": "SEND TO PUBLIC"},
        )
        for client, name in ((bob, "bob"), (root, "root"))
    ]
    (bob, bob_form), (root, root_form) = approvals
    status, _, location = await post(bob, "/console/broadcasts/1/approve", bob_form)
    assert (status, location) == (303, "/console/broadcasts/1?done=approved")

    status, text, _ = await post(root, "/console/broadcasts/1/approve", root_form)
    assert status == 409
    assert_not_done(text, "Broadcast 1 is approved — it is sending.")
    assert "cannot approve broadcast 1: it is approved" in text  # the API's reason, below
    # The late approver mistypes the words on their stale page: the same answer.
    status, text, _ = await post(
        root, "/console/broadcasts/1/approve", {**root_form, "confirm": "SEND"}
    )
    assert status == 422
    assert_not_done(text, "Broadcast 1 is approved — it is sending.")
    assert "the approval was not recorded" in text
    # In French too.
    async with root.post(
        "/console/broadcasts/1/approve", data=root_form, headers={"Accept-Language": "fr"}
    ) as response:
        text = await response.text()
    assert "Cette action n&#39;a pas été faite" in text
    assert "La diffusion 1 est approuvée — elle est en cours d&#39;envoi." in text
    assert not any(words in text for words in NOTHING_SENT)
    # A resume of a broadcast that is not paused, and an update refused on the page, likewise.
    resume = {"csrf_token": root_form["csrf_token"]}
    status, text, _ = await post(root, "/console/broadcasts/1/resume", resume)
    assert status == 409
    assert_not_done(text, "Broadcast 1 is approved — it is sending.")
    status, text, _ = await post(
        alice,
        "/console/broadcasts/1/follow-up/preview",
        {"csrf_token": alice_csrf, "template": "update"},
    )
    assert status == 422
    assert "needs instruction" in text
    assert_not_done(text, "Broadcast 1 is approved — it is sending.")
    assert await lab.state(1) == "approved"
    assert await lab.count("broadcasts") == 1


async def test_cancelling_a_completed_broadcast_says_it_completed(console_lab: MakeLab) -> None:
    lab = await console_lab(worker=True, threshold=100)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    create = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(client, "/console/broadcasts", create))[0] == 303
    await lab.wait_state(1, ("completed",))
    # A cancel from a page opened while it was sending.
    status, text, _ = await post(client, "/console/broadcasts/1/cancel", {"csrf_token": csrf})
    assert status == 409
    assert_not_done(text, "Broadcast 1 is completed — sending has finished.")
    assert "cannot cancel broadcast 1: it is completed" in text
    # The all-clear with the wrong words: the update was not sent, the broadcast was.
    status, text, _ = await post(
        client,
        "/console/broadcasts/1/follow-up",
        {"csrf_token": csrf, "template": "all_clear", "confirm": "DRILL", "idempotency_key": "a-1"},
    )
    assert status == 422
    assert "the new message was not sent" in text
    assert_not_done(text, "Broadcast 1 is completed — sending has finished.")
    assert await lab.state(1) == "completed"
    assert await lab.count("broadcasts") == 1


async def test_update_and_all_clear_from_the_broadcast_page(console_lab: MakeLab) -> None:
    lab = await console_lab(threshold=100)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    assert (
        await post(
            client, "/console/broadcasts", {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
        )
    )[0] == 303
    status, text, _ = await post(
        client,
        "/console/broadcasts/1/follow-up/preview",
        {"csrf_token": csrf, "template": "update"},
    )
    assert status == 422
    assert "needs instruction" in text  # shown on the broadcast page
    assert "Broadcast 1" in text or "Diffusion 1" in text
    form = {
        "csrf_token": csrf,
        "template": "update",
        "var_instruction": "Évitez l'A6.",
        "var_instruction.en": "Avoid the A6.",
        "var_instruction.es": "Evite la A6.",
    }
    status, text, _ = await post(client, "/console/broadcasts/1/follow-up/preview", form)
    assert status == 200
    assert "Avoid the A6." in text
    status, _, location = await post(
        client,
        "/console/broadcasts/1/follow-up",
        {**form, "confirm": "SEND TO PUBLIC", "idempotency_key": "u-1"},
    )
    assert (status, location) == (303, "/console/broadcasts/2?done=created")
    status, _, location = await post(
        client,
        "/console/broadcasts/2/follow-up",
        {
            "csrf_token": csrf,
            "template": "all_clear",
            "confirm": "SEND TO PUBLIC",
            "idempotency_key": "a-1",
        },
    )
    assert (status, location) == (303, "/console/broadcasts/3?done=created")
    async with lab.db.acquire() as conn:
        rows = await conn.fetch("SELECT id, template, parent_id, state FROM broadcasts ORDER BY id")
    assert [tuple(r) for r in rows] == [
        (1, "outage", None, "cancelled"),
        (2, "update", 1, "cancelled"),
        (3, "all_clear", 2, "approved"),
    ]


async def test_the_language_follows_the_browser_then_the_toggle(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    async with client.get("/console/sign-in", headers={"Accept-Language": "en-GB,en;q=0.9"}) as r:
        assert '<html lang="en">' in await r.text()
    async with client.get(
        "/console/sign-in", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}
    ) as r:
        text = await r.text()
    assert '<html lang="fr">' in text
    assert "Se connecter" in text
    csrf = await page_csrf(client)
    status, _, location = await post(
        client, "/console/language", {"csrf_token": csrf, "lang": "en", "next": "/console/sign-in"}
    )
    assert (status, location) == (303, "/console/sign-in")
    async with client.get("/console/sign-in", headers={"Accept-Language": "fr"}) as r:
        text = await r.text()
    assert '<html lang="en">' in text
    assert "Sign in" in text
    # The choice survives signing in.
    await sign_in(client, lab.tokens["alice"])
    async with client.get("/console/", headers={"Accept-Language": "fr"}) as r:
        assert "Recent broadcasts" in await r.text()


async def test_the_area_search_finds_names_and_codes_and_keeps_ticked_areas(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab()
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])

    async def search(query: str, ticked: tuple[str, ...] = ()) -> str:
        data: list[tuple[str, str]] = [("csrf_token", csrf), ("q", query), ("action", "search")]
        data += [("area", a) for a in ticked]
        async with client.post("/console/broadcasts/preview", data=data) as response:
            assert response.status == 200
            return await response.text()

    found = await search("ile de france")  # no accent, no hyphen
    assert 'value="region:11"' in found and 'value="dep:92"' in found
    assert 'value="dep:13"' not in found
    found = await search("2a")
    assert 'value="dep:2A"' in found and 'value="dep:75"' not in found
    found = await search("bouches", ticked=("dep:75",))
    assert 'value="dep:13"' in found
    assert 'value="dep:75" checked' in found  # a search never drops a ticked area
    assert await lab.count("broadcasts") == 0


async def test_the_progress_stream_reports_counts_until_the_receipts_settle(
    console_lab: MakeLab,
) -> None:
    """A completed broadcast's stream goes on while receipts are awaited, and ends once every
    accepted part has its receipt (issue 24: the page stopped at completion, 4,608 receipts
    shown, 6,196 after a reload)."""
    lab = await console_lab(
        worker=True, threshold=100, mock_config=MockConfig(seed=1, receipts=True)
    )
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    assert (
        await post(
            client, "/console/broadcasts", {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
        )
    )[0] == 303
    await lab.wait_state(1, ("completed",))
    async with client.get("/console/broadcasts/1/events") as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        body = await response.text()  # ends by itself: the broadcast is final
    events = [
        json.loads(line.removeprefix("data: "))
        for line in body.splitlines()
        if line.startswith("data: ")
    ]
    assert events
    last = events[-1]
    assert (last["state"], last["final"], last["recorded"], last["accepted"]) == (
        "completed",
        True,
        12,
        12,
    )
    assert (last["settled"], last["delivered"], last["text"]["awaited"]) == (True, 12, "0")
    # Not sending any more: no SMSC figures, rate or time left of whatever else is sending.
    assert (last["pool"], last["smscs"], last["text"]["rate"]) == (False, [], "–")
    async with client.get("/console/broadcasts/999/events") as response:
        assert response.status == 404


async def test_a_drill_report_is_served_under_its_own_policy_and_only_for_drills(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab(worker=True, threshold=100)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    drill = {"csrf_token": csrf, "area": "dep:75", "template": "drill", "confirm": "DRILL"}
    assert (await post(client, "/console/drills", drill))[0] == 303
    assert (
        await post(
            client, "/console/broadcasts", {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
        )
    )[0] == 303
    await lab.wait_state(1, ("completed",))
    async with client.get("/console/broadcasts/1/drill-report") as response:
        page = await response.text()
    assert response.status == 200
    assert 'src="/console/broadcasts/1/drill-report.html"' in page
    async with client.get("/console/broadcasts/1/drill-report.html") as response:
        report = await response.text()
        policy = response.headers["Content-Security-Policy"]
        framing = response.headers["X-Frame-Options"]
    assert response.status == 200
    assert "<svg" in report
    assert "<script" not in report
    assert policy == drill_reports.REPORT_CSP
    assert "script-src" not in policy and "default-src 'none'" in policy
    assert framing == "SAMEORIGIN"
    async with client.get("/console/broadcasts/2/drill-report") as response:
        assert response.status == 404  # as the API answers: there is no drill 2
        assert "not a drill" in await response.text()


async def test_a_failure_mid_stream_ends_the_stream_cleanly(
    console_lab: MakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    lab = await console_lab()
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    form = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(client, "/console/broadcasts", form))[0] == 303
    shown = 0

    def snapshot_fails_after_the_first(*args: Any, **kwargs: Any) -> dict[str, Any]:
        nonlocal shown
        shown += 1
        if shown > 1:
            raise RuntimeError("the snapshot failed")
        return real_snapshot(*args, **kwargs)

    real_snapshot = progress.snapshot
    monkeypatch.setattr(progress, "snapshot", snapshot_fails_after_the_first)
    monkeypatch.setattr(progress, "INTERVAL_S", 0.01)
    with structlog.testing.capture_logs() as logs:
        async with client.get("/console/broadcasts/1/events") as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            async with asyncio.timeout(10):
                body = await response.read()  # a broken chunked stream raises here
    assert shown == 2
    # One event, then the end of the stream: no error page, no second response inside it.
    assert body.startswith(b"retry: 3000\n\n")
    assert body.count(b"event: progress") == 1
    assert body.endswith(b"\n\n")
    assert b"<html" not in body and b"HTTP/1.1" not in body
    failures = [e for e in logs if e["event"] == "console_stream_failed"]
    assert len(failures) == 1
    assert failures[0]["log_level"] == "error"
    assert not [e for e in logs if e["event"] == "unexpected_error"]


async def test_a_failed_read_of_the_shared_reader_is_retried_and_the_stream_goes_on(
    console_lab: MakeLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database away for a moment: the reader logs it and reads again; the page's stream
    neither breaks nor ends."""
    lab = await console_lab()
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    form = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(client, "/console/broadcasts", form))[0] == 303
    reads = 0

    async def second_read_fails(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        if reads == 2:
            raise RuntimeError("the status read failed")
        return await real_status(*args, **kwargs)

    real_status = progress.read_status
    monkeypatch.setattr(progress, "read_status", second_read_fails)
    monkeypatch.setattr(progress, "INTERVAL_S", 0.01)
    monkeypatch.setattr(progress, "RETRY_S", 0.01)
    with structlog.testing.capture_logs() as logs:
        async with client.get("/console/broadcasts/1/events") as response:
            assert response.status == 200
            async with asyncio.timeout(20):
                for _ in range(3):
                    await response.content.readuntil(b"event: progress")
    assert reads >= 3
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["console_reader_failed"]


async def test_an_open_progress_stream_does_not_hold_up_a_shutdown(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    form = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(client, "/console/broadcasts", form))[0] == 303
    response = await client.get("/console/broadcasts/1/events")  # pending: it never ends
    try:
        first = await response.content.readuntil(b"event: progress")
        assert first.startswith(b"retry:")
        # A deadlock guard, not a timing claim: without the shutdown signal the server would
        # wait for the stream for its whole shutdown timeout (60 s).
        async with asyncio.timeout(30):
            await lab.server.close()
            rest = await response.content.read()
    finally:
        response.release()
    assert b'"state": "pending_approval"' in rest


async def test_the_after_action_report_page_and_the_not_reached_download(
    console_lab: MakeLab,
) -> None:
    """The console shows the after-action report in a frame under the report policy; the list
    of recipients not reached downloads for an approver, not for an operator."""
    lab = await console_lab(worker=True, threshold=100)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    live = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(client, "/console/broadcasts", live))[0] == 303
    await lab.wait_state(1, ("completed",))
    async with client.get("/console/broadcasts/1") as response:
        assert 'href="/console/broadcasts/1/report"' in await response.text()
    async with client.get("/console/broadcasts/1/report") as response:
        page = await response.text()
    assert response.status == 200
    assert 'src="/console/broadcasts/1/report.html"' in page
    async with client.get("/console/broadcasts/1/report.html") as response:
        report = await response.text()
        policy = response.headers["Content-Security-Policy"]
    assert response.status == 200
    assert "<svg" in report and "<script" not in report and "Paris" in report
    assert policy == drill_reports.REPORT_CSP
    async with client.get("/console/broadcasts/1/not-reached.csv") as response:
        assert response.status == 403  # alice is an operator
    approver = await lab.client()
    await sign_in(approver, lab.tokens["bob"])
    async with approver.get("/console/broadcasts/1/not-reached.csv") as response:
        csv_text = await response.text()
    assert response.status == 200
    assert csv_text.splitlines()[0] == "msisdn,departement,commune,language,why"
    async with client.get("/console/broadcasts/999/report") as response:
        assert response.status == 404
