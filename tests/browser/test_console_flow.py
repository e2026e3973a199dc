"""The console as the crisis cell drives it, in headless Chromium against a real server, a real
database and the mock SMSC over TCP: an operator composes and submits, an approver approves
from their own session (on a phone, in French), the page follows the broadcast to completion;
a running broadcast is cancelled from its page, the browser asking once.
"""

from __future__ import annotations

from pathlib import Path

from fixtures_web import (
    SUBSCRIBERS,
    MakeLab,
    broadcast_id_of,
    full_page_screenshot,
    signed_in,
)
from playwright.async_api import Browser, Dialog, expect

from broadcaster.mocksmsc import MockConfig

PUBLIC_75 = [str(s[0]) for s in SUBSCRIBERS if s[1] == "75"]
SLOW = [(33700000000 + i, "13", "13055", "fr", False) for i in range(300)]


async def test_operator_creates_approver_approves_and_progress_reaches_completed(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    lab = await console_lab(worker=True, mock_config=MockConfig(seed=1, receipts=True))
    _, alice = await signed_in(browser, lab, "alice")

    await alice.get_by_role("link", name="New live broadcast").click()
    await expect(alice.locator(".banner-live")).to_contain_text("LIVE")
    await alice.get_by_label("Search areas by name or code").fill("paris")
    await expect(alice.locator("li[data-search^='13 ']")).to_be_hidden()
    await alice.locator("#area-dep-75").check()
    await alice.get_by_label("Template").select_option("outage")
    await full_page_screenshot(alice, screenshots / "compose-live.png")
    await alice.get_by_role("button", name="Preview").click()

    await expect(alice.locator(".card")).to_have_count(3)  # 75 x (fr, en, es)
    await expect(alice.locator("[data-total=recipients]")).to_have_text("12")
    await full_page_screenshot(alice, screenshots / "preview-live.png")
    await alice.get_by_label("To send to the public, type SEND TO PUBLIC").fill("SEND TO PUBLIC")
    await alice.get_by_role("button", name="Send to the public").click()

    state = alice.locator("[data-state-value]")
    await expect(state).to_have_attribute("data-state-value", "pending_approval")
    await expect(alice.locator("[data-you-created]")).to_be_visible()
    await expect(alice.locator("form[data-approve]")).to_have_count(0)
    broadcast_id = broadcast_id_of(alice)
    assert lab.mock is not None
    assert lab.mock.record.parts_received == 0

    # The second person, in their own session, on a phone, in French.
    _, bob = await signed_in(browser, lab, "bob", locale="fr-FR", phone=True)
    await bob.goto(f"{lab.base}/broadcasts/{broadcast_id}")
    await expect(bob.locator(".banner-live")).to_contain_text("DIFFUSION RÉELLE")
    await bob.locator("form[data-approve]").scroll_into_view_if_needed()
    await bob.screenshot(path=screenshots / "approve-phone-fr.png")
    await bob.get_by_label("Pour envoyer au public, tapez ENVOI AU PUBLIC").fill("ENVOI AU PUBLIC")
    await bob.get_by_role("button", name="Approuver et envoyer").click()

    done = bob.locator("[data-state-value]")
    await expect(done).to_have_attribute("data-state-value", "completed", timeout=20_000)
    await expect(bob.locator("[data-field=accepted]")).to_have_text("12")
    # Every count says its unit: recipients for outcomes, SMS parts for receipts.
    await expect(bob.get_by_text("Destinataires acceptés par le SMSC")).to_have_count(1)
    delivered = bob.get_by_text("Remises, selon les accusés (parties de SMS)", exact=True)
    await expect(delivered).to_have_count(1)
    await expect(bob.locator("[data-field=undelivered]")).to_have_text("0")
    # Alice's page followed along by itself: reloaded when the actions changed, now final.
    await expect(state).to_have_attribute("data-state-value", "completed")
    await expect(alice.locator(".actions-panel")).to_have_count(0)
    await alice.wait_for_load_state()
    await full_page_screenshot(alice, screenshots / "completed.png")
    assert sorted(lab.mock.record.messages) == sorted(PUBLIC_75)
    async with lab.db.acquire() as conn:
        approved_by = await conn.fetchval(
            "SELECT approved_by FROM broadcasts WHERE id = $1", broadcast_id
        )
    assert approved_by == "bob"


async def test_a_running_broadcast_is_cancelled_from_its_page_after_one_question(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    # 300 recipients at 10 parts/s: half a minute of sending, time enough to cancel.
    lab = await console_lab(
        worker=True, smsc={"tps": 10.0, "binds": 1}, subscribers=SLOW, threshold=1000
    )
    _, alice = await signed_in(browser, lab, "alice")
    await alice.goto(f"{lab.base}/broadcasts/new")
    await alice.locator("#area-dep-13").check()
    await alice.get_by_role("button", name="Preview").click()
    await expect(alice.locator("[data-total=recipients]")).to_have_text("300")
    await alice.get_by_label("To send to the public, type SEND TO PUBLIC").fill("send to public")
    await alice.get_by_role("button", name="Send to the public").click()

    state = alice.locator("[data-state-value]")
    await expect(state).to_have_attribute("data-state-value", "running", timeout=10_000)
    await expect(alice.locator("[data-field=rate]")).to_contain_text("recipients/s")
    await expect(alice.locator("[data-health] tbody tr")).to_have_count(1)
    await expect(alice.locator("[data-health] tbody")).to_contain_text("up")
    await full_page_screenshot(alice, screenshots / "progress-running.png")
    broadcast_id = broadcast_id_of(alice)

    questions: list[str] = []

    async def dismiss(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.dismiss()

    alice.once("dialog", dismiss)
    await alice.get_by_role("button", name="Cancel the broadcast").click()
    assert await lab.state(broadcast_id) == "running"  # "no" to the question: nothing changes

    async def accept(dialog: Dialog) -> None:
        questions.append(dialog.message)
        await dialog.accept()

    alice.once("dialog", accept)
    await alice.get_by_role("button", name="Cancel the broadcast").click()
    await expect(state).to_have_attribute("data-state-value", "cancelled")
    assert questions == ["Cancel this broadcast now? No new message will be submitted."] * 2
    assert await lab.state(broadcast_id) == "cancelled"
    assert lab.mock is not None
    assert 0 < len(lab.mock.record.messages) < len(SLOW)
    async with lab.db.acquire() as conn:
        actions = await conn.fetch(
            "SELECT actor, action FROM audit_log WHERE subject = $1 ORDER BY id",
            f"broadcast:{broadcast_id}",
        )
    assert [(r["actor"], r["action"]) for r in actions][-1] == ("alice", "cancel")
