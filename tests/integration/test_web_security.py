"""The console's browser-side defences over real HTTP (aiohttp client, real PostgreSQL): CSRF
on every POST, cookie flags, the Content-Security-Policy, no token in any page or cookie, typed
HTML shown as text, unreadable forms refused, sessions that end with their token, sign-in
attempts logged and limited per address.
"""

from __future__ import annotations

import asyncio
import re
from http.cookies import SimpleCookie
from typing import Any

import structlog
from aiohttp.test_utils import TestClient
from fixtures_web import MakeLab, page_csrf, sign_in

from broadcaster.domain.tokens import hash_token
from broadcaster.store import tokens as store_tokens
from broadcaster.web.progress import INTERVAL_S, RECHECK_S
from broadcaster.web.security import CSP
from broadcaster.web.session import COOKIE

CREATE = {
    "area": "dep:75",
    "template": "outage",
    "confirm": "SEND TO PUBLIC",
    "idempotency_key": "k-1",
}


async def post(
    client: TestClient[Any, Any], path: str, data: dict[str, str], **headers: str
) -> tuple[int, str]:
    async with client.post(path, data=data, headers=headers, allow_redirects=False) as response:
        return response.status, await response.text()


def set_cookie(headers: Any) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for value in headers.getall("Set-Cookie", []):
        jar.load(value)
    return jar


async def test_every_post_is_refused_without_the_session_csrf_token(console_lab: MakeLab) -> None:
    lab = await console_lab()
    alice = await lab.client()
    csrf = await sign_in(alice, lab.tokens["alice"])
    bob = await lab.client()
    bobs_csrf = await sign_in(bob, lab.tokens["bob"])
    assert bobs_csrf != csrf  # per session

    refused = [
        await post(alice, "/console/broadcasts", CREATE),
        await post(alice, "/console/broadcasts", {**CREATE, "csrf_token": "forged"}),
        await post(alice, "/console/broadcasts", {**CREATE, "csrf_token": bobs_csrf}),
        await post(alice, "/console/drills", {**CREATE, "template": "drill", "confirm": "DRILL"}),
        await post(alice, "/console/broadcasts/preview", {"area": "dep:75"}),
        await post(alice, "/console/sign-out", {}),
        await post(alice, "/console/language", {"lang": "en"}),
        # the right token, but the browser says the form came from another site
        await post(
            alice,
            "/console/broadcasts",
            {**CREATE, "csrf_token": csrf},
            Origin="http://evil.example",
        ),
        await post(
            alice,
            "/console/broadcasts",
            {**CREATE, "csrf_token": csrf},
            **{"Sec-Fetch-Site": "cross-site"},
        ),
    ]
    assert [status for status, _ in refused] == [403] * len(refused)
    assert all("did not come from this console" in text for _, text in refused)
    assert await lab.count("broadcasts") == 0
    # Still signed in (the sign-out was refused too), and the real form works.
    status, _ = await post(alice, "/console/broadcasts", {**CREATE, "csrf_token": csrf})
    assert status == 303
    assert await lab.count("broadcasts") == 1


async def test_approve_and_cancel_need_the_csrf_token_too(console_lab: MakeLab) -> None:
    lab = await console_lab()
    alice = await lab.client()
    csrf = await sign_in(alice, lab.tokens["alice"])
    assert (await post(alice, "/console/broadcasts", {**CREATE, "csrf_token": csrf}))[0] == 303
    bob = await lab.client()
    await sign_in(bob, lab.tokens["bob"])
    for action in ("approve", "cancel", "pause", "follow-up/preview", "follow-up"):
        status, _ = await post(
            bob, f"/console/broadcasts/1/{action}", {"confirm": "SEND TO PUBLIC"}
        )
        assert status == 403, action
    assert await lab.state(1) == "pending_approval"


async def test_pages_carry_the_security_headers_and_no_inline_script_or_style(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab()
    client = await lab.client()
    await sign_in(client, lab.tokens["root"])
    status, _ = await post(
        client,
        "/console/broadcasts",
        {**CREATE, "csrf_token": await page_csrf(client, "/console/")},
    )
    assert status == 303
    for path in (
        "/console/sign-in",
        "/console/",
        "/console/broadcasts/new",
        "/console/drills/new",
        "/console/broadcasts/1",
        "/console/audit",
        "/console/drills",
        "/console/no-such-page",
    ):
        async with client.get(path) as response:
            text = await response.text()
            headers = response.headers
        assert headers["Content-Security-Policy"] == CSP, path
        assert "script-src 'self'" in CSP
        assert "'unsafe-inline'" not in CSP
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Cache-Control"] == "no-store"
        assert re.findall(r"<script(?![^>]*\bsrc=)", text) == [], path
        assert " style=" not in text and "<style" not in text, path
        assert re.search(r"\son[a-z]+=", text) is None, path  # no inline event handlers
    async with client.get("/console/static/console.js") as response:
        assert response.status == 200
        assert "EventSource" in await response.text()


async def test_the_session_cookie_is_httponly_samesite_strict_and_holds_no_token(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab()
    client = await lab.client()
    async with client.get("/console/sign-in") as response:
        anonymous = set_cookie(response.headers)[COOKIE]
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', await response.text())
    assert csrf is not None
    token = lab.tokens["alice"]
    async with client.post(
        "/console/sign-in",
        data={"csrf_token": csrf.group(1), "token": token},
        allow_redirects=False,
    ) as response:
        assert response.status == 303
        cookie = set_cookie(response.headers)[COOKIE]
    for morsel in (anonymous, cookie):
        assert morsel["httponly"] is True
        assert morsel["samesite"] == "Strict"
        assert morsel["path"] == "/console"
    assert cookie.value != anonymous.value  # a new session at sign-in: no fixation
    for secret in (token, token[4:], hash_token(token)):
        assert secret not in cookie.value
    pages = []
    for path in ("/console/", "/console/broadcasts/new", "/console/drills/new", "/console/drills"):
        async with client.get(path) as response:
            pages.append(await response.text())
    assert all(token not in page and token[4:20] not in page for page in pages)


async def test_a_wrong_token_is_refused_logged_and_never_shown_back(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    guess = "bct_" + "A" * 43
    csrf = await page_csrf(client)
    with structlog.testing.capture_logs() as logs:
        status, text = await post(client, "/console/sign-in", {"csrf_token": csrf, "token": guess})
    assert status == 401
    assert "unknown token" in text
    assert guess not in text
    failed = [e for e in logs if e["event"] == "console_authentication_failed"]
    assert len(failed) == 1
    assert failed[0]["log_level"] == "warning"
    assert failed[0]["remote"] == "127.0.0.1"
    assert not any(guess[:8] in str(value) for event in logs for value in event.values())
    async with client.get("/console/", allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"].startswith("/console/sign-in")


async def test_failed_sign_ins_are_limited_per_address(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    csrf = await page_csrf(client)
    answers = [
        await post(client, "/console/sign-in", {"csrf_token": csrf, "token": "nope"})
        for _ in range(12)
    ]
    assert [status for status, _ in answers[:10]] == [401] * 10
    status, text = answers[-1]
    assert status == 429
    assert re.search(r"Too many failed sign-ins from this address: retry in \d+ s\.", text)
    status, text = await post(
        client,
        "/console/sign-in",
        {"csrf_token": csrf, "token": "nope"},
        **{"Accept-Language": "fr"},
    )
    assert status == 429
    assert re.search(
        r"Trop de connexions échouées depuis cette adresse : réessayez dans \d+ s\.", text
    )


async def test_a_forged_cookie_is_an_anonymous_visitor(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    await sign_in(client, lab.tokens["root"])
    cookie = client.session.cookie_jar.filter_cookies(lab.server.make_url("/console/"))[COOKIE]
    tampered = cookie.value[:-3] + ("AAA" if not cookie.value.endswith("AAA") else "BBB")
    client.session.cookie_jar.update_cookies({COOKIE: tampered}, lab.server.make_url("/console/"))
    async with client.get("/console/audit", allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"].startswith("/console/sign-in")


async def test_revoking_the_token_ends_its_console_sessions(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    async with client.get("/console/", allow_redirects=False) as response:
        assert response.status == 200
    async with lab.db.acquire() as conn:
        await store_tokens.revoke(conn, 1, "test")
    async with client.get("/console/", allow_redirects=False) as response:
        assert response.status == 303
        location = response.headers["Location"]
    assert location.startswith("/console/sign-in") and "ended=1" in location
    async with client.get(location) as response:
        assert "session ended" in (await response.text()).lower()


async def test_redirects_after_sign_in_stay_inside_the_console(console_lab: MakeLab) -> None:
    lab = await console_lab()
    for target, expected in (
        ("/console/audit", "/console/audit"),
        ("https://evil.example/", "/console/"),
        ("//evil.example/console/", "/console/"),
        ("/console//evil.example", "/console/"),
    ):
        client = await lab.client()
        csrf = await page_csrf(client)
        async with client.post(
            "/console/sign-in",
            data={"csrf_token": csrf, "token": lab.tokens["root"], "next": target},
            allow_redirects=False,
        ) as response:
            assert response.status == 303
            assert response.headers["Location"] == expected, target


SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
ESCAPED = ("&lt;script&gt;alert(1)&lt;/script&gt;", "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;")


def assert_escaped(text: str) -> None:
    assert SCRIPT not in text and "<img" not in text
    assert ESCAPED[0] in text and ESCAPED[1] in text


async def test_html_typed_into_a_form_comes_back_as_text(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    typed = {
        "csrf_token": csrf,
        "area": "dep:75",
        "template": "update",
        "var_instruction": f"{SCRIPT} {ATTRIBUTE}",
        "q": f"{SCRIPT}{ATTRIBUTE}",
    }
    # The preview: the variable in each card's text and in the form's hidden copy.
    status, text = await post(client, "/console/broadcasts/preview", typed)
    assert status == 200
    assert_escaped(text)
    assert text.count(ESCAPED[0]) >= 4  # 3 cards (fr, en, es) and the hidden field
    # The area search: the query in its field; the variable in its field.
    status, text = await post(client, "/console/broadcasts/preview", {**typed, "action": "search"})
    assert status == 200
    assert_escaped(text)
    assert f'value="{ESCAPED[0]}{ESCAPED[1]}"' in text
    # Areas typed as HTML: refused by the API's schema, quoted back in the refusal and in
    # the field.
    refused = {**typed, "extra_areas": ATTRIBUTE + SCRIPT}
    status, text = await post(client, "/console/broadcasts/preview", refused)
    assert status == 400
    assert "is not valid: an area" in text
    assert_escaped(text)
    assert f'value="{ESCAPED[1]}{ESCAPED[0]}"' in text
    assert await lab.count("broadcasts") == 0


MALFORMED: list[tuple[str, bytes]] = [
    (  # a multipart field without a name
        "multipart/form-data; boundary=xyz",
        b"--xyz\r\nContent-Disposition: form-data\r\n\r\nDRILL\r\n--xyz--\r\n",
    ),
    ("multipart/form-data", b"confirm=DRILL"),  # no boundary
    ("application/x-www-form-urlencoded", b"token=\xff\xfe"),  # not UTF-8
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"token=x"),
]


async def test_an_unreadable_form_is_a_400_page_not_a_server_error(console_lab: MakeLab) -> None:
    lab = await console_lab()
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    with structlog.testing.capture_logs() as logs:
        for content_type, body in MALFORMED:
            for path in ("/console/drills", "/console/sign-out"):
                async with client.post(
                    path, data=body, headers={"Content-Type": content_type}, allow_redirects=False
                ) as response:
                    text = await response.text()
                assert response.status == 400, (content_type, path)
                assert "This form could not be read: nothing was done." in text
                assert response.headers["Content-Security-Policy"] == CSP
    events = [e["event"] for e in logs]
    assert events.count("console_bad_form") == 2 * len(MALFORMED)
    assert "unexpected_error" not in events
    assert await lab.count("broadcasts") == 0
    async with client.get("/console/", allow_redirects=False) as response:
        assert response.status == 200  # the sign-out was not done either


async def test_a_next_target_with_a_control_character_is_a_400_page(console_lab: MakeLab) -> None:
    """Issue 19 item 6: a newline in `next` once dropped the connection (aiohttp refused the
    header); now it is refused with a page, before any sign-in is attempted or audited."""
    lab = await console_lab()
    for target in ("/console/\r\nSet-Cookie: x=1", "/console/\n", "/console/\\evil", "/\x00"):
        client = await lab.client()
        csrf = await page_csrf(client)
        async with client.post(
            "/console/sign-in",
            data={"csrf_token": csrf, "token": lab.tokens["root"], "next": target},
            allow_redirects=False,
        ) as response:
            text = await response.text()
            assert response.status == 400, target
            assert "Location" not in response.headers
            assert "control character" in text
        async with client.get(
            "/console/sign-in", params={"next": target}, allow_redirects=False
        ) as response:
            assert response.status == 400, target
        async with client.post(
            "/console/language",
            data={"csrf_token": csrf, "lang": "fr", "next": target},
            allow_redirects=False,
        ) as response:
            assert response.status == 400, target
    async with lab.db.acquire() as conn:
        signed_in = await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action = 'console_sign_in'"
        )
    assert signed_in == 0
    assert await lab.count("broadcasts") == 0


async def test_revoking_the_token_ends_its_open_progress_stream(console_lab: MakeLab) -> None:
    """Issue 19 item 4: a revoked token's stream once ran on to its 600 s cap; now it ends
    within `RECHECK_S` with an `ended` event, and the session with it."""
    lab = await console_lab()
    client = await lab.client()
    await sign_in(client, lab.tokens["alice"])
    api = {"Authorization": f"Bearer {lab.tokens['alice']}"}
    async with client.post(
        "/v1/broadcasts", json={"areas": ["dep:75"], "template": "outage"}, headers=api
    ) as response:
        assert response.status == 201
        broadcast_id = (await response.json())["broadcast"]["broadcast_id"]
    async with lab.db.acquire() as conn:
        alice = await conn.fetchval("SELECT id FROM api_tokens WHERE name = 'alice'")
    names: list[str] = []
    after_revocation = 0
    async with (
        asyncio.timeout(60),  # a safety net: the stream must end by itself
        client.get(f"/console/broadcasts/{broadcast_id}/events") as stream,
    ):
        assert stream.status == 200
        async for line in stream.content:
            if not line.startswith(b"event: "):
                continue
            names.append(line.decode().removeprefix("event: ").strip())
            if len(names) == 1:
                async with client.post(
                    f"/v1/tokens/{alice}/revoke",
                    json={"reason": "left the cell"},
                    headers={"Authorization": f"Bearer {lab.tokens['root']}"},
                ) as revoked:
                    assert revoked.status == 200
            else:
                after_revocation += 1
    assert names[0] == "progress" and names[-1] == "ended"
    assert after_revocation <= RECHECK_S / INTERVAL_S + 2  # events, not the 600 s cap
    assert await lab.state(broadcast_id) == "pending_approval"  # nothing else changed
    async with lab.db.acquire() as conn:
        revocation = await conn.fetchrow(
            "SELECT actor, subject, details FROM audit_log WHERE action = 'token_revoke'"
        )
    assert revocation is not None
    assert (revocation["actor"], revocation["subject"]) == ("root", f"token:{alice}")
    async with client.get("/console/", allow_redirects=False) as response:
        assert response.status == 303
        assert "ended=1" in response.headers["Location"]


async def test_an_operator_cannot_stop_anothers_broadcast_from_the_console(
    console_lab: MakeLab,
) -> None:
    """Issue 19 item 1 in the console: the follow-up form is not offered on someone else's
    broadcast, and posting it anyway is refused (403), audited, and stops nothing."""
    lab = await console_lab(threshold=100)
    olga = await lab.client()
    olgas_csrf = await sign_in(olga, lab.tokens["olga"])
    status, _ = await post(olga, "/console/broadcasts", {**CREATE, "csrf_token": olgas_csrf})
    assert status == 303
    alice = await lab.client()
    csrf = await sign_in(alice, lab.tokens["alice"])
    async with alice.get("/console/broadcasts/1") as response:
        assert response.status == 200
        assert 'id="follow-h"' not in await response.text()
    async with olga.get("/console/broadcasts/1") as response:
        assert 'id="follow-h"' in await response.text()  # the creator's page offers it
    status, text = await post(
        alice,
        "/console/broadcasts/1/follow-up",
        {
            "csrf_token": csrf,
            "template": "all_clear",
            "confirm": "SEND TO PUBLIC",
            "idempotency_key": "x-1",
        },
    )
    assert status == 403
    assert "created by olga" in text
    assert await lab.state(1) == "approved"
    assert await lab.count("broadcasts") == 1
    async with lab.db.acquire() as conn:
        denied = await conn.fetch(
            "SELECT actor, subject, details->>'via' AS via FROM audit_log WHERE action = 'denied'"
        )
    assert [tuple(r) for r in denied] == [("alice", "broadcast:1", "allClearBroadcast")]
