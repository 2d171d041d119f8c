"""Shared fixtures: databases on SQLite AND PostgreSQL, a manual clock, offline environment."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store.db import Database
from tests.dbs import fresh_database_url
from tests.doubles import ScriptedKnowledge
from tests.testbot import TestBot, running_bot

pytest_plugins = ["tests.email.servers"]  # Dovecot and SMTP fixtures, shared by the email and escalation tests

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a `long` test run first (whole files, in their own order, so module fixtures are built once):
    with `--dist loadfile --no-loadscope-reorder` (scripts/test) each worker takes the next file when it is free,
    so the long files spread over the workers at the start and the run does not end waiting on one of them."""
    long_files = {item.path for item in items if item.get_closest_marker("long")}
    items.sort(key=lambda item: item.path not in long_files)  # stable: the order inside each group stays


class ManualClock:
    """A clock tests move by hand (implements bot.ports.Clock)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 16, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database URL, once for SQLite and once for PostgreSQL."""
    async with fresh_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database (SQLite and PostgreSQL)."""
    database = Database(db_url)
    await database.upgrade()
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database, for tests where the backend does not matter."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
    await database.upgrade()
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
async def bot(db_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[TestBot]:
    """The errbot-style test bot over the real service graph (SQLite and PostgreSQL) with a scripted engine."""
    async with running_bot(db_url, tmp_path / "data", knowledge=ScriptedKnowledge(), clock=clock) as test_bot:
        yield test_bot
