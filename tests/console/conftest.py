"""The console over aiohttp's test client on SQLite: real store, real templates, a scripted knowledge engine."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.catalog import IndexCatalog
from bot.store.db import Database
from bot.store.documents import DocumentStateStore
from bot.store.ledger import InboundLedger
from bot.store.outbox import Outbox
from bot.store.pages import PageStore
from console import ConsoleConfig, ConsolePorts, build_console_app
from knowledge.pasted import PastedPages
from tests.conftest import ManualClock
from tests.doubles import RecordingIndex, ScriptedKnowledge

ADMIN_KEY = "admin-key-0123456789abcdef"
REVIEWER_KEY = "reviewer-key-0123456789abc"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class ConsoleRig:
    client: TestClient
    db: Database
    clock: ManualClock
    knowledge: ScriptedKnowledge
    ledger: InboundLedger
    index: RecordingIndex
    uploads: Path

    async def login(self, key: str = ADMIN_KEY, name: str = "Dana") -> str:
        """Log in; return the session's CSRF token."""
        form = await self.client.get("/console/login")
        token = CSRF.search(await form.text())
        assert token, "the login form carries a CSRF token"
        resp = await self.client.post(
            "/console/login", data={"csrf": token.group(1), "key": key, "name": name}, allow_redirects=False
        )
        assert resp.status == 303, await resp.text()
        return await self.csrf()

    async def csrf(self, path: str = "/console/review") -> str:
        page = await self.client.get(path)
        token = CSRF.search(await page.text())
        assert token
        return token.group(1)

    async def page(self, path: str) -> str:
        resp = await self.client.get(path)
        assert resp.status == 200, (path, resp.status)
        return await resp.text()


@pytest.fixture
async def rig(sqlite_db: Database, clock: ManualClock, tmp_path: Path) -> AsyncIterator[ConsoleRig]:
    async with console_rig(sqlite_db, clock, tmp_path / "uploads") as running:
        yield running


@asynccontextmanager
async def console_rig(db: Database, clock: ManualClock, uploads: Path) -> AsyncIterator[ConsoleRig]:
    """The console mounted at /console over `db`, served on an ephemeral port; page size 3. Pasted pages are
    written to `uploads` and handed to a recording index (the real engine's ingestion is the browser test's)."""
    knowledge = ScriptedKnowledge()
    index = RecordingIndex()
    pasted = PastedPages(PageStore(db, clock), uploads, index)
    ledger = InboundLedger(db, clock)
    states = DocumentStateStore(db, clock, "kb")  # one indexed document, as a sync leaves it
    assert await states.claim("/srv/kb/backups.md", "replica-1", None, 60)
    assert await states.finish("/srv/kb/backups.md", "replica-1", "hash-1", 3)
    ports = ConsolePorts(db, clock, ledger, Outbox(db, clock), knowledge, IndexCatalog(states), pasted)
    config = ConsoleConfig(admin_keys=(ADMIN_KEY,), reviewer_keys=(REVIEWER_KEY,), page_size=3)
    root = web.Application()
    root.add_subapp("/console", build_console_app(config, ports))
    client = TestClient(TestServer(root))
    await client.start_server()
    try:
        yield ConsoleRig(client, db, clock, knowledge, ledger, index, uploads)
    finally:
        await client.close()
