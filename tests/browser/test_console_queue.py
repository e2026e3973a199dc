"""Issue 24 in headless Chromium: the approval queue (a live badge, approval from the queue on a
phone), a queued broadcast's honest page, and a hundred open progress streams while a cancel
takes effect within the second the issue requires.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from fixtures_web import ConsoleLab, MakeLab, sign_in, signed_in
from playwright.async_api import Browser, Dialog, Page, expect

from broadcaster.web import progress

SLOW = [(33700000000 + i, "13", "13055", "fr", i < 5) for i in range(300)]
STREAMS = 100
CANCEL_WITHIN_S = 1.0
"""Issue 24: "100 open progress streams while a cancel takes effect within 1 s" — a
requirement the console must meet, not a speed figure."""


async def api_create(lab: ConsoleLab, holder: str, body: dict[str, Any]) -> int:
    """A broadcast created through the API (the console's queue must show it as well)."""
    client = await lab.client()
    headers = {"Authorization": f"Bearer {lab.tokens[holder]}"}
    async with client.post("/v1/broadcasts", json=body, headers=headers) as response:
        assert response.status == 201, await response.text()
        return int((await response.json())["broadcast"]["broadcast_id"])


def hub_of(lab: ConsoleLab) -> progress.Hub:
    """The console's shared readers (the sub-application mounted at /console)."""
    for resource in lab.server.app.router.resources():
        console = getattr(resource, "_app", None)
        if console is not None and progress.HUB in console:
            hub: progress.Hub = console[progress.HUB]
            return hub
    raise AssertionError("no console mounted")


async def test_an_approver_approves_from_the_queue_on_a_phone(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    lab = await console_lab()
    first = await api_create(lab, "alice", {"areas": ["dep:75", "dep:92"], "template": "outage"})

    # Bob, an approver, on a phone, in French: the queue first, with its badge.
    _, bob = await signed_in(browser, lab, "bob", locale="fr-FR", phone=True)
    queue = bob.locator("[data-queue-list]")
    await expect(queue.locator("[data-queued]")).to_have_count(1)
    await expect(queue).to_contain_text("75 Paris")
    await expect(queue).to_contain_text("92 Hauts-de-Seine")
    await expect(queue).to_contain_text("demandée par alice")
    badge = bob.locator("[data-queue]")
    await expect(badge).to_have_text("1")
    # Every list names the areas too.
    await expect(
        bob.locator(f"table.list tr[data-broadcast='{first}'] [data-areas]")
    ).to_contain_text("Paris")

    # A second request arrives while the page is open: the badge and the queue follow.
    second = await api_create(lab, "olga", {"areas": ["dep:75"], "template": "outage"})
    await expect(badge).to_have_text("2", timeout=15_000)
    await expect(queue.locator("[data-queued]")).to_have_count(2, timeout=15_000)
    await expect(bob.locator(f"[data-queued='{second}']")).to_be_visible()

    await bob.locator(f"[data-queued='{first}'] a").click()
    summary = bob.locator("[data-summary]")
    await expect(summary).to_be_visible()
    await expect(summary.locator("[data-summary-kind]")).to_have_text("réelle")
    await expect(summary.locator("[data-summary-who]")).to_have_text("alice")
    await expect(summary.locator("[data-summary-recipients]")).to_have_text("15")
    await expect(summary.locator("[data-summary-areas]")).to_have_text(
        "75 Paris, 92 Hauts-de-Seine"
    )
    # One entry per distinct text: French for both départements (their prefectures differ),
    # English and Spanish for Paris.
    await expect(summary.locator("[data-summary-text]")).to_have_count(4)
    # The summary comes before the detail: it opens the page, above the progress panel.
    summary_top = await summary.evaluate("e => e.getBoundingClientRect().top")
    progress_top = await bob.locator("section.progress").evaluate(
        "e => e.getBoundingClientRect().top"
    )
    assert summary_top < progress_top
    # The phone's page from its top to the end of the summary (the approval form included).
    await bob.evaluate("window.scrollTo({top: 0, left: 0, behavior: 'instant'})")
    await bob.wait_for_function("window.scrollY === 0")
    bottom = await summary.evaluate("e => e.getBoundingClientRect().bottom + 8")
    await bob.screenshot(
        path=screenshots / "approve-queue-phone-fr.png",
        full_page=True,
        clip={"x": 0, "y": 0, "width": 390, "height": bottom},
    )
    await bob.get_by_label("Pour envoyer au public, tapez ENVOI AU PUBLIC").fill("ENVOI AU PUBLIC")
    await bob.get_by_role("button", name="Approuver et envoyer").click()
    await expect(bob.locator("[data-state-value]")).to_have_attribute(
        "data-state-value", "approved"
    )
    assert await lab.state(first) == "approved"

    await bob.get_by_role("link", name="Diffusions", exact=True).click()
    await expect(bob.locator("[data-queued]")).to_have_count(1)
    await expect(bob.locator("[data-queue]")).to_have_text("1")

    # Nobody's queue holds their own requests, and an operator has none.
    _, olga = await signed_in(browser, lab, "olga")
    await expect(olga.locator("[data-queue-list]")).to_have_count(0)
    _, root = await signed_in(browser, lab, "root")
    await expect(root.locator("[data-queued]")).to_have_count(1)
    await expect(root.locator(f"[data-queued='{second}']")).to_be_visible()


async def test_a_queued_broadcast_says_what_it_waits_for_and_shows_no_other_rate(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    # 300 recipients at 10 parts/s: the live broadcast sends for half a minute; the drill,
    # less urgent, waits behind it.
    lab = await console_lab(
        worker=True, smsc={"tps": 10.0, "binds": 1}, subscribers=SLOW, threshold=1000
    )
    live = await api_create(lab, "alice", {"areas": ["dep:13"], "template": "outage"})
    await lab.wait_state(live, ("running",))
    drill = await api_create(
        lab, "alice", {"areas": ["dep:13"], "template": "drill", "kind": "drill"}
    )
    assert await lab.state(drill) == "approved"

    _, alice = await signed_in(browser, lab, "alice")
    await alice.goto(f"{lab.base}/broadcasts/{drill}")
    waiting = alice.locator("[data-waiting-for]")
    await expect(waiting).to_be_visible()
    await expect(waiting).to_contain_text(f"queued in position 2, behind broadcast {live}")
    # It sends nothing: no rate, no time left, no SMSC figures (they are the live one's).
    await expect(alice.locator("[data-field=eta]")).to_be_hidden()
    await expect(alice.locator("[data-field=rate]")).to_be_hidden()
    await expect(alice.locator("[data-health]")).to_be_hidden()
    await expect(alice.locator("[data-not-sending]")).to_be_visible()
    # Still so a few readings later (the stream keeps it, not just the first paint).
    await asyncio.sleep(2.5)
    await expect(waiting).to_contain_text(f"behind broadcast {live}")
    await expect(alice.locator("[data-field=eta]")).to_be_hidden()
    await alice.screenshot(path=screenshots / "queued-drill.png", full_page=True)
    assert await lab.state(drill) == "approved"

    # The live one's page sends: its rate and time left are shown.
    await alice.goto(f"{lab.base}/broadcasts/{live}")
    await expect(alice.locator("[data-field=rate]")).to_contain_text("recipients/s")
    await expect(alice.locator("[data-waiting-for]")).to_be_hidden()


async def _stream(
    session: aiohttp.ClientSession,
    url: str,
    opened: asyncio.Queue[int],
    states: dict[int, str],
    index: int,
) -> None:
    """One open progress page: counts as open at its first event, then notes the last state."""
    async with session.get(url) as response:
        assert response.status == 200
        first = True
        async for line in response.content:
            if line.startswith(b"data: "):
                states[index] = json.loads(line[6:])["state"]
                if first:
                    first = False
                    opened.put_nowait(index)


async def cancel_from_page(page: Page, lab: ConsoleLab, broadcast_id: int) -> float:
    """Cancel from the broadcast's page (answering its question): seconds from the click to
    the cancelled state in the database."""
    await page.goto(f"{lab.base}/broadcasts/{broadcast_id}")
    state = page.locator("[data-state-value]")
    await expect(state).to_have_attribute("data-state-value", "running")

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.once("dialog", accept)
    clicked = time.monotonic()
    await page.get_by_role("button", name="Cancel the broadcast").click()
    await lab.wait_state(broadcast_id, ("cancelled",), timeout=30)
    latency = time.monotonic() - clicked
    await expect(state).to_have_attribute("data-state-value", "cancelled")
    return latency


async def test_a_hundred_open_progress_streams_and_a_cancel_within_a_second(
    console_lab: MakeLab, browser: Browser
) -> None:
    lab = await console_lab(
        worker=True, smsc={"tps": 10.0, "binds": 1}, subscribers=SLOW, threshold=1000
    )
    quiet = await api_create(lab, "alice", {"areas": ["dep:13"], "template": "outage"})
    watched = await api_create(lab, "alice", {"areas": ["dep:13"], "template": "outage"})
    await lab.wait_state(quiet, ("running",))
    await lab.wait_state(watched, ("running",))
    _, alice = await signed_in(browser, lab, "alice")
    # The baseline, in the same run on the same machine: a cancel with only its own page open.
    baseline = await cancel_from_page(alice, lab, quiet)

    viewer = await lab.client()
    await sign_in(viewer, lab.tokens["bob"])
    url = str(lab.server.make_url(f"/console/broadcasts/{watched}/events"))
    opened: asyncio.Queue[int] = asyncio.Queue()
    states: dict[int, str] = {}
    async with aiohttp.ClientSession(
        cookie_jar=viewer.session.cookie_jar,
        connector=aiohttp.TCPConnector(limit=0),
        headers={"Accept-Language": "en"},
    ) as session:
        tasks = [
            asyncio.create_task(_stream(session, url, opened, states, i)) for i in range(STREAMS)
        ]
        try:
            async with asyncio.timeout(120):
                for _ in range(STREAMS):
                    await opened.get()
            hub = hub_of(lab)
            # Every stream open, counted by the server, on one shared reader.
            assert hub.watches[watched].viewers == STREAMS
            reads_before = hub.watches[watched].reads
            started = time.monotonic()

            latency = await cancel_from_page(alice, lab, watched)
            print(
                f"\ncancel in effect {latency * 1000:.0f} ms after the click with {STREAMS} "
                f"other streams open; baseline (its own page only) {baseline * 1000:.0f} ms; "
                f"ratio {latency / baseline:.2f} (machine shared with other engineers)"
            )
            assert latency < CANCEL_WITHIN_S, f"cancel took {latency:.2f} s"

            # Every stream heard of it from the one reader.
            async with asyncio.timeout(30):
                while sum(1 for s in states.values() if s == "cancelled") < STREAMS:
                    await asyncio.sleep(0.1)
            reads = hub.watches[watched].reads - reads_before
            elapsed = time.monotonic() - started
            assert reads <= elapsed / progress.INTERVAL_S + 2  # one a second, not one per stream
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
