"""The console in a real browser (Debian's chromium driven by Playwright, never a downloaded browser): log in, a
question asked through /api/ask appears with its passages and its <script> shown as text, a verdict is marked,
a dead letter is replayed, and the Content-Security-Policy blocks nothing the console needs (no console errors)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Dialog, async_playwright
from sqlalchemy import select

from app.build import build_service
from app.serve import SupportApp
from app.settings import Settings
from bot.store.tables import ReviewVerdictRow
from tests.console import seed
from tests.console.conftest import ADMIN_KEY
from tests.doubles import ScriptedKnowledge

API_KEY = "api-key-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/test installs it); Playwright downloads nothing

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser test saves a screenshot of each page (CONSOLE_SCREENSHOTS for CI artefacts)."""
    configured = os.environ.get("CONSOLE_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


async def test_an_operator_reviews_and_replays_in_a_real_browser(
    tmp_path: Path, browser: Browser, screenshots: Path
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, http_port=0, api_keys=[API_KEY], admin_keys=[ADMIN_KEY]
    )
    services = await build_service(settings, knowledge=ScriptedKnowledge(), with_escalation=False)
    app = SupportApp(services)
    await app.start()
    base = f"http://127.0.0.1:{app.port}"
    try:
        question = "When does the backup run? " + seed.HOSTILE
        async with aiohttp.ClientSession() as http:
            asked = await http.post(
                f"{base}/api/ask", json={"question": question}, headers={"Authorization": f"Bearer {API_KEY}"}
            )
            assert asked.status == 200 and (await asked.json())["outcome"] == "answered"
        await seed.dead_letter(services.db, services.clock.now(), "a stuck message from eve")

        page = await browser.new_page()
        problems: list[str] = []
        dialogs: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)

        async def answer_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            await dialog.accept()

        page.on("dialog", answer_dialog)

        first = await page.goto(f"{base}/console/conversations")
        assert first is not None and page.url == f"{base}/console/login"  # logged out: the login form
        assert "unsafe-inline" not in (await first.all_headers())["content-security-policy"]
        await page.screenshot(path=str(screenshots / "login.png"))
        await page.fill("#key", ADMIN_KEY)
        await page.fill("#name", "Dana")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/console/")
        font = await page.evaluate("getComputedStyle(document.body).fontFamily")
        assert "system-ui" in font  # the stylesheet loaded under the CSP
        await page.screenshot(path=str(screenshots / "overview.png"), full_page=True)

        await page.click("nav >> text=Conversations")
        await page.click("table tbody tr td a")  # the newest answer: the one just asked
        shown = await page.locator("article.customer pre.text").inner_text()
        assert "<script>alert('x')</script>" in shown and "<img src=x onerror=alert(1)>" in shown
        assert await page.locator("article.bot ol.citations li").count() == 1
        assert "Backups" in await page.locator("article.bot ol.citations").inner_text()
        await page.screenshot(path=str(screenshots / "conversation.png"), full_page=True)

        await page.check("article.bot input[value=wrong]")
        await page.fill("article.bot input[name=note]", "cites the wrong page")
        await page.fill("article.bot input[name=expected_source]", "kb/restore.md")
        await page.click("article.bot button:has-text('Save verdict')")
        await page.wait_for_selector("p.verdict")
        assert "wrong" in await page.locator("p.verdict").inner_text()
        async with services.db.sessions() as session:
            verdict = (await session.execute(select(ReviewVerdictRow))).scalar_one()
        assert (verdict.verdict, verdict.expected_source) == ("wrong", "kb/restore.md")

        for name in ("review", "knowledge", "tickets", "gaps", "audit"):
            await page.goto(f"{base}/console/{name}")
            await page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
        await page.goto(f"{base}/console/dead-letters")
        assert await page.locator("text=a stuck message from eve").count() == 1
        await page.screenshot(path=str(screenshots / "dead-letters.png"), full_page=True)
        await page.click("button:has-text('Replay all')")  # asks first (data-confirm, from console.js)
        await page.wait_for_selector("text=No dead letters.")
        assert dialogs == ["Replay every dead letter and undelivered reply?"]  # no customer script ever ran
        assert problems == []  # nothing blocked by the CSP, no script errors
    finally:
        await app.stop(grace_seconds=0)
