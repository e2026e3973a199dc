"""Web console fixtures (auto-loaded by conftest): the API app with its console on a real TCP
port over a fresh database, optionally with a worker sending to the mock SMSC, and headless
Chromium (Debian's, driven by Playwright) for the browser tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from fixtures_smsc import StartMock
from fixtures_tokens import mint_token

from broadcaster.engine.worker import Worker
from broadcaster.mocksmsc import MockConfig, MockSmsc
from broadcaster.serve import create_app
from broadcaster.settings import Settings

if TYPE_CHECKING:
    from playwright.async_api import Browser, BrowserContext, Page, ViewportSize

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP: ViewportSize = {"width": 1280, "height": 860}
PHONE: ViewportSize = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
SCREENSHOTS_ENV = "BROADCASTER_SCREENSHOTS"
# (msisdn, département, commune, language, test group): dep:75 has 12 subscribers (3 in the
# test group), dep:92 has 3 (1 in the test group).
SUBSCRIBERS: list[tuple[int, str, str, str, bool]] = [
    *[(33600000100 + i, "75", "75056", ("fr", "en", "es")[i % 3], i < 3) for i in range(12)],
    *[(33600000200 + i, "92", "92012", "fr", i == 0) for i in range(3)],
]
HOLDERS = {"alice": "operator", "bob": "approver", "root": "admin", "olga": "operator"}
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class ConsoleLab:
    """One console server, its database, tokens by holder, and (with a worker) the mock."""

    server: TestServer
    db: asyncpg.Pool[asyncpg.Record]
    tokens: dict[str, str]
    mock: MockSmsc | None = None
    worker: Worker | None = None
    clients: list[TestClient[Any, Any]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return str(self.server.make_url("/console/")).rstrip("/")

    async def client(self) -> TestClient[Any, Any]:
        """A fresh HTTP client (own cookie jar) on this server, asking for English pages."""
        client: TestClient[Any, Any] = TestClient(self.server, headers={"Accept-Language": "en"})
        await client.start_server()
        self.clients.append(client)
        return client

    async def count(self, table: str) -> int:
        async with self.db.acquire() as conn:
            return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608

    async def state(self, broadcast_id: int) -> str | None:
        async with self.db.acquire() as conn:
            value = await conn.fetchval("SELECT state FROM broadcasts WHERE id = $1", broadcast_id)
        return None if value is None else str(value)

    async def wait_state(
        self, broadcast_id: int, states: Sequence[str], timeout: float = 20
    ) -> str:
        """The broadcast's state once it is one of `states` (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while (state := await self.state(broadcast_id)) not in states:
                await asyncio.sleep(0.05)
        assert state is not None
        return state


MakeLab = Callable[..., Awaitable[ConsoleLab]]


@pytest.fixture
async def console_lab(db_dsn: str, start_mock: StartMock) -> AsyncIterator[MakeLab]:
    """Factory: `await console_lab(worker=True, smsc={...}, threshold=5)` serves the API and its
    console on 127.0.0.1 (a worker sends to a mock SMSC over TCP when `worker`)."""
    labs: list[ConsoleLab] = []
    tasks: list[asyncio.Task[Any]] = []

    async def make(
        *,
        worker: bool = False,
        smsc: dict[str, Any] | None = None,
        mock_config: MockConfig | None = None,
        threshold: int = 5,
        subscribers: Sequence[tuple[int, str, str, str, bool]] = SUBSCRIBERS,
        rate_per_second: float = 1000.0,
        rate_burst: int = 1000,
        chunk_size: int = Settings.chunk_size,
    ) -> ConsoleLab:
        settings = Settings(
            database_url=db_dsn,
            chunk_size=chunk_size,
            api_approval_threshold=threshold,
            api_rate_per_second=rate_per_second,
            api_rate_burst=rate_burst,
        )
        db = await asyncpg.create_pool(db_dsn, min_size=1, max_size=8)
        tokens: dict[str, str] = {}
        async with db.acquire() as conn:
            await conn.executemany(
                "INSERT INTO subscribers (msisdn, departement, commune, lang, test_group) "
                "VALUES ($1, $2, $3, $4, $5)",
                subscribers,
            )
            for name, role in HOLDERS.items():
                _, tokens[name] = await mint_token(conn, name, role)
        mock: MockSmsc | None = None
        running: Worker | None = None
        if worker:
            mock, config = await start_mock(mock_config or MockConfig(seed=1), **(smsc or {}))
            running = Worker(db, (config,))
            tasks.append(asyncio.create_task(running.run(), name="console-lab-worker"))
        app = create_app(settings, db, running, console=True)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        lab = ConsoleLab(server, db, tokens, mock, running)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        for client in lab.clients:
            await client.close()
        if lab.worker is not None:
            lab.worker.stop()
        await lab.server.close()
    for task in tasks:
        with contextlib.suppress(Exception):
            await task
    for lab in labs:
        await lab.db.close()


# -- helpers for plain HTTP tests --------------------------------------------------------------


async def page_csrf(client: TestClient[Any, Any], path: str = "/console/sign-in") -> str:
    """The CSRF token a page carries (it also sets the session cookie)."""
    async with client.get(path) as response:
        text = await response.text()
    match = CSRF.search(text)
    assert match, text[:2000]
    return match.group(1)


async def sign_in(client: TestClient[Any, Any], token: str) -> str:
    """Sign in through the form; returns the signed-in session's CSRF token."""
    csrf = await page_csrf(client)
    async with client.post(
        "/console/sign-in", data={"csrf_token": csrf, "token": token}, allow_redirects=False
    ) as response:
        assert response.status == 303, await response.text()
    return await page_csrf(client, "/console/")


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Debian's headless Chromium through Playwright (never a downloaded browser)."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the browser tests save their screenshots: docs/screenshots/ when
    BROADCASTER_SCREENSHOTS=1 (to refresh the committed pictures), else a temporary folder."""
    if os.environ.get(SCREENSHOTS_ENV, "") not in ("", "0"):
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS
    return tmp_path


async def signed_in(
    browser: Browser, lab: ConsoleLab, holder: str, locale: str = "en-GB", phone: bool = False
) -> tuple[BrowserContext, Page]:
    """A browser context of its own (cookies included) signed in as `holder` via the form."""
    context = await browser.new_context(
        locale=locale, viewport=PHONE if phone else LAPTOP, is_mobile=phone, has_touch=phone
    )
    page = await context.new_page()
    await page.goto(f"{lab.base}/")
    await page.wait_for_url(re.compile(r"/console/sign-in"))
    await page.locator("#token").fill(lab.tokens[holder])
    await page.locator("form[action='/console/sign-in'] button[type=submit]").click()
    await page.locator(".holder").filter(has_text=holder).wait_for()
    return context, page


async def full_page_screenshot(page: Page, path: Path) -> None:
    """The whole page as it opens, scrolled to the top first: the live/drill banner is sticky,
    so after a scroll (a ticked area, a filled field) a full-page capture would draw it where
    the viewport was, floating over the middle of the page."""
    await page.evaluate("window.scrollTo({top: 0, left: 0, behavior: 'instant'})")
    await page.wait_for_function("window.scrollY === 0")
    await page.screenshot(path=path, full_page=True)


def broadcast_id_of(page: Page) -> int:
    match = re.search(r"/console/broadcasts/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))
