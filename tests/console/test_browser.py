"""The console in a real browser (Debian's chromium driven by Playwright, never a downloaded browser), over the real
service and knowledge engine: log in; a question asked through /api/ask appears with its passages and its <script>
shown as text; a verdict is marked and exported; a pasted page is ingested and "try a question" answers from it; a
dead letter is replayed; a POST without the CSRF token is refused; logged out, every page redirects to login. Every
page is checked by axe-core (vendored, tests/fixtures/axe) for serious or critical violations, the CSP blocks
nothing the console needs, and a screenshot of each page is saved (CONSOLE_SCREENSHOTS, CI artefacts).

One browser, one test: each launch costs seconds."""

from __future__ import annotations

import io
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from PIL import Image, ImageDraw
from playwright.async_api import Browser, Dialog, Page, Route, async_playwright
from sqlalchemy import select

from app.build import build_service
from app.commands import export_verdicts_command
from app.serve import SupportApp
from app.settings import Settings
from bot.store.report_archive import ReportArchive
from bot.store.tables import ReviewVerdictRow
from tests.console import seed
from tests.console.conftest import ADMIN_KEY

API_KEY = "api-key-0123456789abcdef"
CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/test installs it); Playwright downloads nothing
AXE = Path(__file__).resolve().parents[1] / "fixtures" / "axe" / "axe.min.js"
BACKUPS = "# Backups\n\nBackups of your files run every hour, and each backup is kept for 30 days.\n"
RESTORE = "# Restoring files\n\nTo restore a file, open Backups, pick the hour you want and press Restore.\n"
DOGS = "Our office dog is called Biscuit. Biscuit visits the office on Fridays and loves tennis balls."
ALL_PAGES = [
    "/console/",
    "/console/conversations",
    "/console/review",
    "/console/knowledge",
    "/console/dead-letters",
    "/console/tickets",
    "/console/gaps",
    "/console/reports",
    "/console/audit",
]

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


class Pages:
    """One browser page with the checks every console page gets: axe-core (added as a same-origin script file, so
    the page's CSP stays on) and a full-page screenshot."""

    def __init__(self, page: Page, base: str, screenshots: Path) -> None:
        self.page = page
        self.base = base
        self.screenshots = screenshots
        self.violations: dict[str, list[str]] = {}

    async def start(self) -> None:
        async def serve_axe(route: Route) -> None:
            await route.fulfill(path=AXE, content_type="application/javascript")

        await self.page.route(f"{self.base}/console/static/axe.min.js", serve_axe)

    async def check(self, name: str) -> None:
        await self.page.add_script_tag(url="/console/static/axe.min.js")
        result: dict[str, Any] = await self.page.evaluate(
            """async () => {
                const r = await axe.run(document, {resultTypes: ["violations"]});
                return {passed: r.passes.length, found: r.violations
                    .filter(v => v.impact === "serious" || v.impact === "critical")
                    .map(v => ({id: v.id, impact: v.impact, where: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))};
            }"""
        )
        assert result["passed"] > 10, name  # axe ran its rules on this page
        found = result["found"]
        if found:
            self.violations[name] = [json.dumps(v) for v in found]
        await self.page.screenshot(path=str(self.screenshots / f"{name}.png"), full_page=True)

    async def visit(self, path: str, name: str) -> None:
        await self.page.goto(f"{self.base}{path}")
        await self.check(name)


async def test_an_operator_works_the_console_in_a_real_browser(
    tmp_path: Path, browser: Browser, screenshots: Path
) -> None:
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "backups.md").write_text(BACKUPS)
    (kb / "restore.md").write_text(RESTORE)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        data_dir=tmp_path / "data",
        http_port=0,
        api_keys=[API_KEY],
        admin_keys=[ADMIN_KEY],
    )
    services = await build_service(settings, with_escalation=False)  # the real knowledge engine
    assert services.index is not None
    await services.index.ingest([kb])  # as `supportbot ingest` would (no KNOWLEDGE_PATHS: no second sync at start)
    app = SupportApp(services)
    await app.start()
    base = f"http://127.0.0.1:{app.port}"
    try:
        question = "How often do backups of my files run? " + seed.HOSTILE
        async with aiohttp.ClientSession() as http:
            asked = await http.post(
                f"{base}/api/ask", json={"question": question}, headers={"Authorization": f"Bearer {API_KEY}"}
            )
            assert asked.status == 200 and (await asked.json())["outcome"] in ("answered", "answered_offer")
        await seed.dead_letter(services.db, services.clock.now(), "a stuck message from eve")
        week = f"{services.clock.now():%G-W%V}"  # what the weekly job keeps (tests/scheduler: the job itself)
        await ReportArchive(services.db, services.clock).save(week, f"Support report {week}", "Text", "", _chart(), 1)

        page = await browser.new_page()
        pages = Pages(page, base, screenshots)
        await pages.start()
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
        await pages.check("login")
        await page.fill("#key", ADMIN_KEY)
        await page.fill("#name", "Dana")
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{base}/console/")
        font = await page.evaluate("getComputedStyle(document.body).fontFamily")
        assert "system-ui" in font  # the stylesheet loaded under the CSP
        await pages.check("overview")

        # A question asked through /api/ask: its passages, and the customer's <script> as text
        await page.click("nav >> text=Conversations")
        await pages.check("conversations")
        await page.click("table tbody tr td a")  # the newest answer: the one just asked
        shown = await page.locator("article.customer pre.text").inner_text()
        assert "<script>alert('x')</script>" in shown and "<img src=x onerror=alert(1)>" in shown
        assert "Backups" in await page.locator("article.bot ol.citations").inner_text()
        passages = await page.locator("article.bot details.passages").inner_text()  # retrieved, not cited
        assert "Retrieved but not cited" in passages and "Restoring files" in passages
        await pages.check("conversation")

        # A verdict, stored and exported as a labelled set
        await page.check("article.bot input[value=wrong]")
        await page.fill("article.bot input[name=note]", "cites the wrong page")
        await page.fill("article.bot input[name=expected_source]", "kb/restore.md")
        await page.click("article.bot button:has-text('Save verdict')")
        await page.wait_for_selector("p.verdict")
        assert "wrong" in await page.locator("p.verdict").inner_text()
        async with services.db.sessions() as session:
            verdict = (await session.execute(select(ReviewVerdictRow))).scalar_one()
        assert (verdict.verdict, verdict.expected_source) == ("wrong", "kb/restore.md")
        exported = tmp_path / "verdicts.jsonl"
        assert await export_verdicts_command(settings, exported) == 0
        [line] = [json.loads(x) for x in exported.read_text().splitlines()]
        assert (line["question"], line["expected_source"], line["verdict"]) == (question, "kb/restore.md", "wrong")

        # A pasted page is ingested at once and "try a question" answers from it
        await page.goto(f"{base}/console/knowledge")
        await page.fill("#page-title", "Office dogs")
        await page.fill("#page-text", DOGS)
        await page.click("button:has-text('Add and ingest')")
        await page.wait_for_selector("p.ok")
        assert "Ingested office-dogs.md" in await page.locator("p.ok").inner_text()
        assert await page.locator("td:has-text('office-dogs.md')").count() >= 1  # in the documents list
        await page.fill("#question", "What is the name of the office dog?")
        await page.click("button:has-text('Try')")
        await page.wait_for_selector("div.tried")
        tried = await page.locator("div.tried").inner_text()
        assert "Biscuit" in tried and "Office dogs" in tried
        await pages.check("knowledge")

        for path, name in [
            ("/console/review", "review"),
            ("/console/tickets", "tickets"),
            ("/console/gaps", "gaps"),
            ("/console/audit", "audit"),
            ("/console/reports", "reports"),
        ]:
            await pages.visit(path, name)
        async with page.expect_navigation(wait_until="load"):  # "load": after the chart image, too
            await page.click("table tbody tr td a")  # the week just built
        assert await page.locator("figure.chart img").evaluate("img => img.naturalWidth") > 0  # served under the CSP
        await pages.check("report")

        await pages.visit("/console/dead-letters", "dead-letters")
        assert await page.locator("text=a stuck message from eve").count() == 1
        await page.click("button:has-text('Replay all')")  # asks first (data-confirm, from console.js)
        await page.wait_for_selector("text=No dead letters.")
        assert dialogs == ["Replay every dead letter and undelivered reply?"]  # no customer script ever ran

        forged = await page.request.post(f"{base}/console/dead-letters/replay-all", form={"csrf": "forged"})
        assert forged.status == 403  # the session's cookie alone is not enough
        problems = [p for p in problems if not p.startswith("403 ")]
        assert problems == []  # nothing blocked by the CSP, no script errors
        assert pages.violations == {}, pages.violations  # axe-core: no serious or critical violation on any page

        await page.click("button:has-text('Log out')")
        await page.wait_for_url(f"{base}/console/login")
        for path in ALL_PAGES:  # with the browser's own cookies, without rendering each login form again
            resp = await page.request.get(f"{base}{path}", max_redirects=0)
            assert (resp.status, resp.headers["location"]) == (303, "/console/login"), path
    finally:
        await app.stop(grace_seconds=0)


def _chart() -> bytes:
    """A small bar chart as PNG (drawing the real one imports matplotlib: seconds this test need not spend)."""
    image = Image.new("RGB", (600, 240), "white")
    draw = ImageDraw.Draw(image)
    for n, height in enumerate((60, 120, 90, 180, 150)):
        draw.rectangle((40 + n * 110, 220 - height, 110 + n * 110, 220), fill=(5, 80, 174))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()
