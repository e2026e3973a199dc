"""The map as the crisis cell uses it, in headless Chromium against a real server and a real
database with PostGIS (hand-built cells, tests/map_cells.py): draw a polygon and see the count
the API's dry run gives for the same shape; draw a circle; click départements to tick them and
see the count; the same map on the preview and on the broadcast page, coloured by the share
sent as the broadcast runs. No request leaves for another server, and the page's
Content-Security-Policy is never violated (Leaflet is vendored, served by the console)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fixtures_web import MakeLab, broadcast_id_of, full_page_screenshot, signed_in
from map_cells import AROUND_P1, add_cells_and_locations
from playwright.async_api import Browser, Page, expect

from broadcaster.mocksmsc import MockConfig

P1_SQUARE = [(48.85, 2.33), (48.87, 2.33), (48.87, 2.36), (48.85, 2.36)]


def watch(page: Page, base: str) -> list[str]:
    """Problems the page meets: CSP violations, script errors, requests to other origins."""
    problems: list[str] = []
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" or "Security" in m.text else None,
    )
    page.on("pageerror", lambda e: problems.append(str(e)))
    origin = base.split("/console")[0]
    page.on(
        "request",
        lambda r: None if r.url.startswith((origin, "data:")) else problems.append(r.url),
    )
    return problems


async def ready(page: Page) -> None:
    await expect(page.locator("[data-map]")).to_have_attribute("data-map-ready", "true")


async def view(page: Page, lat: float, lon: float, zoom: int) -> None:
    await page.evaluate(
        "([lat, lon, zoom]) => document.querySelector('[data-map]').areaMap.map"
        ".setView([lat, lon], zoom, {animate: false})",
        [lat, lon, zoom],
    )


async def point(page: Page, lat: float, lon: float) -> tuple[float, float]:
    """Page coordinates of a latitude and longitude on the map."""
    xy: list[float] = await page.evaluate(
        """([lat, lon]) => {
            const map = document.querySelector('[data-map]').areaMap.map;
            const p = map.latLngToContainerPoint([lat, lon]);
            const box = map.getContainer().getBoundingClientRect();
            return [box.left + p.x, box.top + p.y];
        }""",
        [lat, lon],
    )
    return xy[0], xy[1]


async def click_at(page: Page, lat: float, lon: float) -> None:
    x, y = await point(page, lat, lon)
    await page.mouse.click(x, y)


async def count_settled(page: Page) -> str:
    panel = page.locator("[data-map]")
    await expect(panel).not_to_have_attribute("data-map-busy", "true")
    await expect(panel.locator("[data-map-field=recipients]")).not_to_have_text("–")
    return await panel.locator("[data-map-field=recipients]").inner_text()


async def dry_run(page: Page, lab: Any, areas: list[str]) -> dict[str, Any]:
    body = {"areas": areas, "template": "outage", "dry_run": True}
    response = await page.request.post(
        f"{lab.base.removesuffix('/console')}/v1/broadcasts",
        data=json.dumps(body),
        headers={
            "Authorization": f"Bearer {lab.tokens['alice']}",
            "Content-Type": "application/json",
        },
    )
    assert response.status == 200, await response.text()
    preview: dict[str, Any] = (await response.json())["preview"]
    return preview


async def test_draw_a_polygon_and_a_circle_and_see_the_count_of_the_dry_run(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    lab = await console_lab()
    await add_cells_and_locations(lab.db)
    _, alice = await signed_in(browser, lab, "alice")
    problems = watch(alice, lab.base)
    await alice.goto(f"{lab.base}/broadcasts/new")
    await ready(alice)
    await expect(alice.locator("[data-map-status]")).to_have_text("Pick an area or draw a shape.")
    await view(alice, 48.86, 2.345, 13)

    await alice.locator(".leaflet-pm-icon-polygon").click()
    for lat, lon in P1_SQUARE:
        await click_at(alice, lat, lon)
    await click_at(alice, *P1_SQUARE[0])  # back on the first point closes the ring
    shapes = alice.locator("#shapes")
    await expect(shapes).to_have_value(re.compile(r"^polygon:48\.8"))
    polygon = await shapes.input_value()
    assert await count_settled(alice) == "7"
    figures = alice.locator("[data-map]")
    await expect(figures.locator("[data-map-field=cells]")).to_have_text("1")
    await expect(figures.locator("[data-map-field=stale]")).to_have_text("1")
    await expect(figures.locator("[data-map-field=overspill]")).to_have_text("0%")
    await expect(figures.locator(".leaflet-overlay-pane path")).not_to_have_count(0)
    expected = await dry_run(alice, lab, [polygon])
    assert expected["recipients"] == 7
    assert expected["presence"]["cells"] == 1 and expected["presence"]["stale"] == 1
    await alice.get_by_label("Template").select_option("outage")
    await full_page_screenshot(alice, screenshots / "map-compose.png")

    # The shape goes through preview and send as drawn (one field, never split at its commas).
    await alice.get_by_role("button", name="Preview").first.click()
    await expect(alice.locator("[data-total=recipients]")).to_have_text("7")
    await ready(alice)
    assert await count_settled(alice) == "7"
    await expect(alice.locator("input[type=hidden][name=shapes]")).to_have_value(polygon)

    # A circle instead: 1.2 km around P1's centre meets P1 only.
    await alice.get_by_role("button", name="Change").click()
    await ready(alice)
    await expect(shapes).to_have_value(polygon)
    await shapes.fill("")
    await shapes.dispatch_event("change")
    await expect(alice.locator("[data-map-status]")).to_have_text("Pick an area or draw a shape.")
    await view(alice, 48.86, 2.34, 13)
    await alice.locator(".leaflet-pm-icon-circle").click()
    x, y = await point(alice, 48.86, 2.34)
    await alice.mouse.click(x, y)
    x2, y2 = await point(alice, 48.86, 2.355)  # about 1.1 km east
    await alice.mouse.move(x2, y2, steps=4)
    await alice.mouse.click(x2, y2)
    await expect(shapes).to_have_value(re.compile(r"^circle:48\.86"))
    circle = await shapes.input_value()
    assert await count_settled(alice) == str((await dry_run(alice, lab, [circle]))["recipients"])
    assert await count_settled(alice) == "7"

    assert problems == []

    # A shape typed wrong is refused beside the map, with the server's reason.
    await shapes.fill("circle:48.86,2.34,0")
    await shapes.dispatch_event("change")
    await expect(alice.locator("[data-map-error]")).to_contain_text("radius")
    # A pasted outline of thousands of points is left to the preview (it would not fit a URL).
    ring = [f"{45 + i / 10000:.4f},{1 + (i % 2) / 1000:.4f}" for i in range(900)]
    await shapes.fill("polygon:" + " ".join([*ring, ring[0]]))
    await shapes.dispatch_event("change")
    await expect(alice.locator("[data-map-error]")).to_contain_text("Preview counts them")
    assert await lab.count("broadcasts") == 0


async def test_pick_departements_on_the_map_and_see_the_field_and_the_count(
    console_lab: MakeLab, browser: Browser
) -> None:
    lab = await console_lab()
    _, alice = await signed_in(browser, lab, "alice")
    problems = watch(alice, lab.base)
    await alice.goto(f"{lab.base}/broadcasts/new")
    await ready(alice)
    await view(alice, 48.85, 2.3, 10)
    await click_at(alice, 48.857, 2.352)  # Paris
    await expect(alice.locator("#area-dep-75")).to_be_checked()
    assert await count_settled(alice) == "12"
    await click_at(alice, 48.835, 2.24)  # Boulogne-Billancourt, Hauts-de-Seine
    await expect(alice.locator("#area-dep-92")).to_be_checked()
    await expect(alice.locator("[data-map-field=recipients]")).to_have_text("15")
    await click_at(alice, 48.857, 2.352)  # Paris again: off
    await expect(alice.locator("#area-dep-75")).not_to_be_checked()
    await expect(alice.locator("[data-map-field=recipients]")).to_have_text("3")
    # Overseas: a button brings La Réunion into view (it lies off the mainland's map), a click
    # there ticks 974; the mainland button brings Paris back.
    await alice.get_by_role("button", name="La Réunion").click()
    await click_at(alice, -21.13, 55.53)  # the middle of the island
    await expect(alice.locator("#area-dep-974")).to_be_checked()
    await alice.locator("#area-dep-974").uncheck()
    await alice.get_by_role("button", name="Mainland France").click()
    centre = await alice.evaluate(
        "() => document.querySelector('[data-map]').areaMap.map.getCenter().lat"
    )
    assert 44 < centre < 48
    # Ticking in the list colours the map too, and a drill page counts the test group only.
    await alice.goto(f"{lab.base}/drills/new")
    await ready(alice)
    await alice.locator("#area-dep-75").check()
    await expect(alice.locator("[data-map-field=recipients]")).to_have_text("3")
    # A commune typed: its département outlined (dashed), not filled; counted as the dry run.
    await alice.locator("#area-dep-75").uncheck()
    await alice.locator("#extra_areas").fill("commune:92012")
    await alice.locator("#extra_areas").dispatch_event("change")
    await expect(alice.locator("[data-map-field=recipients]")).to_have_text("1")
    marked = await alice.evaluate(
        """() => { const m = document.querySelector('[data-map]').areaMap;
                   return [[...m.selected], [...m.partial]]; }"""
    )
    assert marked == [[], ["92"]]
    assert problems == []


# Four départements in small chunks (4 recipients each) at 12 parts/s: the broadcast takes about
# 12 s, long enough to see some areas done and others not yet.
MANY = [
    (33611000000 + n * 1000 + i, dep, f"{dep}000", "fr", False)
    for n, (dep, size) in enumerate((("75", 40), ("92", 24), ("93", 32), ("94", 16)))
    for i in range(size)
]


async def test_the_broadcast_page_colours_its_areas_by_the_share_delivered(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    lab = await console_lab(
        worker=True,
        threshold=1000,
        chunk_size=4,
        subscribers=MANY,
        smsc={"tps": 12.0, "binds": 1},
        mock_config=MockConfig(seed=1, receipts=True),
    )
    _, alice = await signed_in(browser, lab, "alice")
    problems = watch(alice, lab.base)
    await alice.goto(f"{lab.base}/broadcasts/new")
    for dep in ("75", "92", "93", "94"):
        await alice.locator(f"#area-dep-{dep}").check()
    await alice.get_by_label("Template").select_option("outage")
    await alice.get_by_role("button", name="Preview").first.click()
    await expect(alice.locator("[data-total=recipients]")).to_have_text(str(len(MANY)))
    await ready(alice)  # the preview's map
    await alice.get_by_label("To send to the public, type SEND TO PUBLIC").fill("SEND TO PUBLIC")
    map_reads: list[str] = []
    alice.on("request", lambda r: map_reads.append(r.url) if "/map.json" in r.url else None)
    pages: list[str] = []
    alice.on("load", lambda p: pages.append(p.url))
    await alice.get_by_role("button", name="Send to the public").click()
    broadcast_id = broadcast_id_of(alice)
    panel = alice.locator("[data-map]")
    await ready(alice)
    await expect(panel.locator(".map-label")).to_have_count(4)  # each area labelled

    # Mid-way: some area done or partly sent while another still waits (the page polls).
    await alice.wait_for_function(
        """() => {
            const shares = Object.values(JSON.parse(
                document.querySelector('[data-map]').dataset.mapShares || '{}'));
            return shares.some((s) => s > 0) && shares.some((s) => s < 1);
        }""",
        timeout=30_000,
    )
    await alice.locator("[data-map]").scroll_into_view_if_needed()
    await alice.screenshot(path=screenshots / "map-live-progress.png")
    # Final and its shares read together, in one page: the page reloads itself when the
    # broadcast ends, and the new page's map sets its shares only once its map.json is read
    # (two reads could take "final" from the old page and the shares from the new one).
    final_shares = await alice.wait_for_function(
        """() => {
            const p = document.querySelector('[data-map]');
            return p && p.dataset.mapFinal === 'true' && p.dataset.mapShares
                ? p.dataset.mapShares : null;
        }""",
        timeout=60_000,
    )
    shares = json.loads(await final_shares.json_value())
    assert shares == {"75": 1.0, "92": 1.0, "93": 1.0, "94": 1.0}
    # The colour is the share delivered: the page stays live until the receipts settle, and
    # every part of this mock gets a DELIVRD receipt.
    await alice.wait_for_function(
        """() => {
            const delivered = JSON.parse(
                document.querySelector('[data-map]').dataset.mapDelivered || '{}');
            return Object.keys(delivered).length === 4
                && Object.values(delivered).every((s) => s === 1);
        }""",
        timeout=60_000,
    )
    await expect(panel.locator(".map-label").first).to_have_text(re.compile(r"^\d\d · 100\s?%$"))
    assert await lab.state(broadcast_id) == "completed"
    # The colours came from the page's progress stream: one map.json per page load, no polling
    # (the page reloads itself when the broadcast starts and when it ends).
    await alice.wait_for_load_state()
    assert len(map_reads) == len(pages), (map_reads, pages)
    assert problems == []


async def test_the_approver_on_a_phone_sees_the_areas_on_the_map(
    console_lab: MakeLab, browser: Browser, screenshots: Path
) -> None:
    lab = await console_lab(threshold=1)
    await add_cells_and_locations(lab.db)
    _, alice = await signed_in(browser, lab, "alice")
    await alice.goto(f"{lab.base}/broadcasts/new")
    await alice.locator("#area-dep-92").check()
    await alice.locator("#shapes").fill(AROUND_P1)
    await alice.get_by_label("Template").select_option("outage")
    await alice.locator("#allow_language_fallback").check()
    await alice.get_by_role("button", name="Preview").first.click()
    await alice.get_by_label("To send to the public, type SEND TO PUBLIC").fill("SEND TO PUBLIC")
    await alice.get_by_role("button", name="Send to the public").click()
    broadcast_id = broadcast_id_of(alice)

    _, bob = await signed_in(browser, lab, "bob", locale="fr-FR", phone=True)
    problems = watch(bob, lab.base)
    await bob.goto(f"{lab.base}/broadcasts/{broadcast_id}")
    await ready(bob)
    panel = bob.locator("[data-map]")
    await expect(panel.get_by_role("heading", name="Carte des zones")).to_be_visible()
    await expect(panel.locator(".map-legend")).to_be_hidden()  # nothing sent yet
    await expect(panel.locator(".map-label")).to_have_count(0)
    # The polygon and the cell it selected drawn; 92 filled (its residents); 75, where the cell
    # stands, only outlined (a shape in it, not the whole département).
    await expect(panel.locator(".leaflet-overlay-pane path")).not_to_have_count(0)
    filled, outlined = await bob.evaluate(
        """() => { const m = document.querySelector('[data-map]').areaMap;
                   return [[...m.selected].sort(), [...m.partial].sort()]; }"""
    )
    assert (filled, outlined) == (["92"], ["75"])
    await panel.scroll_into_view_if_needed()
    await bob.screenshot(path=screenshots / "map-approve-phone-fr.png")
    assert problems == []
    assert await lab.state(broadcast_id) == "pending_approval"
