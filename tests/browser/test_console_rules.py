"""The rules the console must not bend, in headless Chromium: nobody approves their own live
broadcast (an operator may not approve at all; an admin not their own), even with a forged
form; a drill page reaches the test group only, with its own confirmation words.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fixtures_web import (
    SUBSCRIBERS,
    MakeLab,
    broadcast_id_of,
    full_page_screenshot,
    signed_in,
)
from playwright.async_api import Browser, Page, expect

from broadcaster.mocksmsc import MockConfig

TEST_GROUP_75 = sorted(str(s[0]) for s in SUBSCRIBERS if s[1] == "75" and s[4])


async def create_live_75(page: Page, base: str) -> int:
    await page.goto(f"{base}/broadcasts/new")
    await page.locator("#area-dep-75").check()
    await page.get_by_role("button", name="Preview").click()
    await page.get_by_label("To send to the public, type SEND TO PUBLIC").fill("SEND TO PUBLIC")
    await page.get_by_role("button", name="Send to the public").click()
    await expect(page.locator("[data-state-value]")).to_have_attribute(
        "data-state-value", "pending_approval"
    )
    return broadcast_id_of(page)


async def forge_approval(page: Page, broadcast_id: int) -> None:
    """Post the approve form that the page does not offer, with the session's CSRF token."""
    await page.evaluate(
        """(id) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = `/console/broadcasts/${id}/approve`;
            const csrf = document.querySelector("input[name=csrf_token]").value;
            for (const [name, value] of [["csrf_token", csrf], ["confirm", "SEND TO PUBLIC"]]) {
                const input = document.createElement("input");
                input.type = "hidden"; input.name = name; input.value = value;
                form.appendChild(input);
            }
            document.body.appendChild(form);
            form.submit();
        }""",
        broadcast_id,
    )
    await page.wait_for_load_state()


async def test_nobody_approves_their_own_live_broadcast_even_with_a_forged_form(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    lab = await console_lab()
    _, alice = await signed_in(browser, lab, "alice")
    mine = await create_live_75(alice, lab.base)
    await expect(alice.locator("form[data-approve]")).to_have_count(0)
    await forge_approval(alice, mine)
    await expect(alice.locator("[role=alert]")).to_contain_text(
        "an operator token may not approveBroadcast"
    )
    assert await lab.state(mine) == "pending_approval"

    _, root = await signed_in(browser, lab, "root")
    own = await create_live_75(root, lab.base)
    await expect(root.locator("[data-you-created]")).to_be_visible()
    await forge_approval(root, own)
    await expect(root.locator("[role=alert]")).to_contain_text("two-person rule")
    assert await lab.state(own) == "pending_approval"

    # The admin may approve the operator's broadcast: a different person.
    await root.goto(f"{lab.base}/broadcasts/{mine}")
    await root.get_by_label("To send to the public, type SEND TO PUBLIC").fill("SEND TO PUBLIC")
    await root.get_by_role("button", name="Approve and send").click()
    await expect(root.locator("[data-state-value]")).to_have_attribute(
        "data-state-value", "approved"
    )
    await root.get_by_role("link", name="Broadcasts").click()
    await expect(root.locator("table.list tbody tr")).to_have_count(2)
    await root.screenshot(path=screenshots / "home.png")
    async with lab.db.acquire() as conn:
        refusals = [
            tuple(r)
            for r in await conn.fetch(
                "SELECT actor, action, subject, details->>'operation' FROM audit_log "
                "WHERE action IN ('denied', 'approve_refused') ORDER BY id"
            )
        ]
    assert refusals == [
        ("alice", "denied", f"broadcast:{mine}", "approveBroadcast"),
        ("root", "approve_refused", f"broadcast:{own}", None),
    ]
    await root.get_by_role("link", name="Audit log").click()
    await expect(root.locator("tr.action-approve_refused")).to_be_visible()
    await full_page_screenshot(root, screenshots / "audit.png")


async def test_a_drill_page_cannot_target_the_public(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    lab = await console_lab(worker=True, threshold=0, mock_config=MockConfig(seed=1, receipts=True))
    _, alice = await signed_in(browser, lab, "alice")
    await alice.get_by_role("link", name="New drill").click()
    await expect(alice.locator(".banner-drill")).to_contain_text("DRILL — test group only")
    templates = alice.get_by_label("Template")
    assert await templates.locator("option").all_inner_texts() == [
        "drill — Exercise: tests the SMS chain; starts with the exercise marker, no action needed"
    ]
    await expect(alice.locator("label[for=area-dep-75] .count")).to_have_text("3 in the test group")
    await alice.locator("#area-dep-75").check()
    await full_page_screenshot(alice, screenshots / "compose-drill.png")

    # A live template smuggled into the drill form is refused by the API's rules.
    await templates.evaluate(
        "(select) => { select.add(new Option('outage', 'outage')); select.value = 'outage'; }"
    )
    await alice.get_by_role("button", name="Preview").click()
    await expect(alice.locator("[role=alert]")).to_contain_text("a drill must use a drill template")
    assert await lab.count("broadcasts") == 0

    await alice.get_by_label("Template").select_option("drill")
    await alice.get_by_role("button", name="Preview").click()
    await expect(alice.locator("[data-total=recipients]")).to_have_text("3")
    await full_page_screenshot(alice, screenshots / "preview-drill.png")
    confirm = alice.get_by_label("To start the drill, type DRILL")
    await confirm.fill("SEND TO PUBLIC")  # the live words do not start a drill
    await alice.get_by_role("button", name="Start the drill").click()
    await expect(alice.locator("[role=alert]")).to_contain_text("confirmation words do not match")
    assert await lab.count("broadcasts") == 0

    await confirm.fill("DRILL")
    await alice.get_by_role("button", name="Start the drill").click()
    await expect(alice.locator("[data-state-value]")).to_have_attribute(
        "data-state-value", "completed", timeout=20_000
    )
    # The page reloads itself when the broadcast's stage changes (console.js): the reloaded
    # page, rendered final by the server, is the one to leave (a goto while that reload was
    # in flight was interrupted by it, once receipts came fast enough).
    await expect(alice.locator("section.progress[data-state]")).to_have_attribute(
        "data-state", "completed", timeout=20_000
    )
    assert lab.mock is not None
    received = lab.mock.record.messages
    assert sorted(received) == TEST_GROUP_75
    markers = ("EXERCICE", "EXERCISE", "EJERCICIO")
    assert all(text.startswith(markers) for texts in received.values() for text in texts)

    # Its report, from the drills package, framed in the console (chart included), once the
    # mock's delivery receipts are in.
    async with asyncio.timeout(10):
        while await lab.count("receipts") < len(TEST_GROUP_75):
            await asyncio.sleep(0.05)
    await alice.goto(f"{lab.base}/broadcasts/{broadcast_id_of(alice)}/drill-report")
    report = alice.frame_locator("iframe.report-frame")
    await expect(report.locator("svg").first).to_be_visible()
    await full_page_screenshot(alice, screenshots / "drill-report.png")
