"""The after-action report as the crisis cell reads it, in headless Chromium: a broadcast to two
départements, with refusals and receipts flowing, cancelled part-way; the console's report page
shows the curve, the per-area chart and who was not reached (the screenshot in docs/)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from fixtures_web import SUBSCRIBERS, MakeLab, broadcast_id_of, full_page_screenshot, signed_in
from playwright.async_api import Browser, expect

from broadcaster.mocksmsc import MockConfig
from broadcaster.store import broadcasts as store

MARSEILLE = [(33700000000 + i, "13", "13055", "fr", False) for i in range(400)]


async def test_the_report_of_a_broadcast_cancelled_part_way_shows_who_was_not_reached(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    lab = await console_lab(
        worker=True,
        smsc={"tps": 40.0, "binds": 1},
        subscribers=[*SUBSCRIBERS, *MARSEILLE],
        threshold=1000,
        mock_config=MockConfig(
            seed=2,
            receipts=True,
            receipt_delay_ms=400,
            receipt_mix={"DELIVRD": 0.85, "UNDELIV": 0.1, "EXPIRED": 0.05},
            errors={0x0B: 0.04},
        ),
    )
    _, alice = await signed_in(browser, lab, "alice")
    await alice.goto(f"{lab.base}/broadcasts/new")
    await alice.locator("#area-dep-75").check()
    await alice.locator("#area-dep-13").check()
    await alice.get_by_role("button", name="Preview").click()
    await alice.get_by_label("To send to the public, type SEND TO PUBLIC").fill("SEND TO PUBLIC")
    await alice.get_by_role("button", name="Send to the public").click()
    state = alice.locator("[data-state-value]")
    await expect(state).to_have_attribute("data-state-value", "running", timeout=10_000)
    broadcast_id = broadcast_id_of(alice)
    assert lab.mock is not None
    while lab.mock.record.parts_received < 250:
        await asyncio.sleep(0.05)
    async with lab.db.acquire() as conn:
        assert await store.apply(conn, broadcast_id, "cancel")
    await expect(state).to_have_attribute("data-state-value", "cancelled", timeout=10_000)
    await asyncio.sleep(1.0)  # the last receipts

    await alice.get_by_role("link", name="After-action report").click()
    await expect(alice.locator("iframe.report-frame")).to_be_visible()
    await alice.goto(f"{lab.base}/broadcasts/{broadcast_id}/report.html")
    await expect(alice.locator("h1")).to_contain_text("after-action report")
    await expect(alice.locator("svg")).to_have_count(2)
    await expect(alice.get_by_text("Bouches-du-Rhône (13)").first).to_be_visible()
    # Refused parts and parts their receipts say were not delivered, each by why.
    await expect(alice.get_by_text("ESME_RINVDSTADR").first).to_be_visible()
    await expect(alice.get_by_text("UNDELIV").first).to_be_visible()
    await full_page_screenshot(alice, screenshots / "after-action-report.png")
    async with lab.db.acquire() as conn:
        reached = await conn.fetchval(
            "SELECT count(DISTINCT msisdn) FROM deliveries WHERE broadcast_id = $1 AND status = 0",
            broadcast_id,
        )
    assert 0 < reached < len(MARSEILLE) + 12
