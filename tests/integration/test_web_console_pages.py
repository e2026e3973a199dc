"""Issue 24 over real HTTP: local times with UTC on hover, follow-ups that say which broadcast
they follow, per-language fields and the preview's flags, refusals in French without the CLI's
advice, the approval queue's count, and the areas on every list.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from fixtures_web import MakeLab, sign_in

from broadcaster.commands.context import Context
from broadcaster.settings import Settings
from broadcaster.store.database import connect
from broadcaster.web import progress

LIVE = {"area": "dep:75", "template": "outage", "idempotency_key": "k-1"}
UPDATE_FIELDS = re.compile(r'name="(var_instruction(?:\.\w+)?)"')


async def post(
    client: TestClient[Any, Any], path: str, data: dict[str, Any]
) -> tuple[int, str, str | None]:
    async with client.post(path, data=data, allow_redirects=False) as response:
        return response.status, await response.text(), response.headers.get("Location")


async def get(client: TestClient[Any, Any], path: str) -> str:
    async with client.get(path) as response:
        assert response.status == 200, path
        return await response.text()


async def test_times_are_local_to_the_areas_with_utc_on_hover(console_lab: MakeLab) -> None:
    lab = await console_lab(threshold=100)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    form = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(client, "/console/broadcasts", form))[0] == 303
    async with lab.db.acquire() as conn:
        created = await conn.fetchval("SELECT created_at FROM broadcasts WHERE id = 1")
    home = await get(client, "/console/")
    times = re.findall(r'<time datetime="([^"]+)" title="([^"]+)"[^>]*>([^<]+)</time>', home)
    assert times, home[:3000]
    iso, hover, shown = times[0]
    assert datetime.fromisoformat(iso) == created
    assert hover == f"{created:%Y-%m-%d %H:%M:%S} UTC"
    assert shown.endswith("(Europe/Paris)") and ("CET" in shown or "CEST" in shown)
    assert "UTC" not in shown
    page = await get(client, "/console/broadcasts/1")
    assert "(Europe/Paris)</time>" in page


async def test_a_follow_up_says_what_it_follows_and_asks_each_language(
    console_lab: MakeLab,
) -> None:
    lab = await console_lab(threshold=100)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    form = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(client, "/console/broadcasts", form))[0] == 303
    page = await get(client, "/console/broadcasts/1")
    # The update's instruction: the area's language, then one field per other language.
    assert UPDATE_FIELDS.findall(page) == [
        "var_instruction",
        "var_instruction.en",
        "var_instruction.es",
    ]
    french_only = {"csrf_token": csrf, "template": "update", "var_instruction": "Évitez l'A6."}
    status, text, _ = await post(client, "/console/broadcasts/1/follow-up/preview", french_only)
    assert status == 200
    assert "follows broadcast 1" in text
    flagged = re.findall(r'data-group="([^"]+)" data-fallback', text)
    assert sorted(flagged) == ["75/en", "75/es"]  # the French instruction in their texts
    assert "instruction is written in fr" in text
    each = {**french_only, "var_instruction.en": "Avoid the A6.", "var_instruction.es": "Evite."}
    status, text, _ = await post(client, "/console/broadcasts/1/follow-up/preview", each)
    assert status == 200
    assert "data-fallback" not in text
    status, _, location = await post(
        client,
        "/console/broadcasts/1/follow-up",
        {**each, "confirm": "SEND TO PUBLIC", "idempotency_key": "u-1"},
    )
    assert (status, location) == (303, "/console/broadcasts/2?done=created")
    follow_up = await get(client, "/console/broadcasts/2")
    assert "follows broadcast 1" in follow_up
    listed = await get(client, "/console/")
    assert "follows broadcast 1" in listed
    original = await get(client, "/console/broadcasts/1")
    assert "Update or all-clear — of broadcast 1" in original


async def test_refusals_are_in_french_and_carry_no_cli_advice(console_lab: MakeLab) -> None:
    lab = await console_lab(threshold=100)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    async with client.post(
        "/console/language", data={"csrf_token": csrf, "lang": "fr", "next": "/console/"}
    ) as response:
        assert response.status == 200
    form = {**LIVE, "csrf_token": csrf, "confirm": "ENVOI AU PUBLIC"}
    assert (await post(client, "/console/broadcasts", form))[0] == 303

    # The update without its instruction: the field to fill, in French.
    status, text, _ = await post(
        client,
        "/console/broadcasts/1/follow-up/preview",
        {"csrf_token": csrf, "template": "update"},
    )
    assert status == 422
    assert "Le modèle a besoin d&#39;une valeur manquante : remplissez instruction." in text
    assert "--var" not in text and "broadcaster areas" not in text

    # A French instruction into the English and Spanish texts of a live send: refused, in French,
    # pointing at the fields per language, not at command-line options.
    sent = {
        "csrf_token": csrf,
        "template": "update",
        "var_instruction": "Évitez l'A6.",
        "confirm": "ENVOI AU PUBLIC",
        "idempotency_key": "u-2",
    }
    status, text, _ = await post(client, "/console/broadcasts/1/follow-up", sent)
    assert status == 422
    assert (
        "Des groupes recevraient un texte qui n&#39;est pas (entièrement) dans leur langue" in text
    )
    assert "--var" not in text and "--allow-language-fallback" not in text
    assert await lab.count("broadcasts") == 1  # nothing stored, nothing sent

    # An unknown area, typed: in French, nothing stored.
    status, text, _ = await post(
        client,
        "/console/broadcasts/preview",
        {"csrf_token": csrf, "extra_areas": "dep:99", "template": "outage"},
    )
    assert status == 422
    assert "Un code de zone est inconnu" in text
    assert "`broadcaster" not in text and "run " not in text
    assert await lab.count("broadcasts") == 1


async def test_the_queue_count_is_the_visitors_own(console_lab: MakeLab) -> None:
    lab = await console_lab()
    alice = await lab.client()
    csrf = await sign_in(alice, lab.tokens["alice"])
    form = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC"}
    assert (await post(alice, "/console/broadcasts", form))[0] == 303

    async def count(client: TestClient[Any, Any]) -> Any:
        async with client.get("/console/queue.json") as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
            return await response.json()

    assert await count(alice) == {"count": 0, "ids": []}  # an operator approves nothing
    bob = await lab.client()
    await sign_in(bob, lab.tokens["bob"])
    assert await count(bob) == {"count": 1, "ids": [1]}
    home = await get(bob, "/console/")
    assert "75 Paris" in home
    # Signed out: no count (the sign-in page instead).
    stranger = await lab.client()
    async with stranger.get("/console/queue.json", allow_redirects=False) as response:
        assert response.status in (302, 303)


async def test_readers_beyond_their_cap_read_through_the_pool(
    console_lab: MakeLab, db_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One connection of its own per watched broadcast, up to MAX_OWN_CONNECTIONS: beyond, a
    reader borrows a pool connection for each reading rather than exhausting the database."""
    lab = await console_lab(threshold=100)
    client = await lab.client()
    csrf = await sign_in(client, lab.tokens["alice"])
    for key in ("k-1", "k-2"):
        form = {**LIVE, "csrf_token": csrf, "confirm": "SEND TO PUBLIC", "idempotency_key": key}
        assert (await post(client, "/console/broadcasts", form))[0] == 303
    monkeypatch.setattr(progress, "MAX_OWN_CONNECTIONS", 1)
    opened = 0

    async def opener() -> Any:
        nonlocal opened
        opened += 1
        return await connect(db_dsn)

    ctx = Context(db=lab.db, settings=Settings(database_url=db_dsn), dsn=db_dsn)
    hub = progress.Hub(ctx, opener)
    async with hub.watching(1, None) as first, hub.watching(2, None) as second:
        assert hub.viewers == 2
        one = await first.after(0, 20)
        two = await second.after(0, 20)
        assert one is not None and two is not None
        assert (one.status["broadcast_id"], two.status["broadcast_id"]) == (1, 2)
    await hub.close()
    assert opened == 1
    assert (hub.viewers, hub.own_connections) == (0, 0)
