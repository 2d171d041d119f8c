"""Pages pasted or uploaded in the console (`knowledge_pages`): the database is their source of truth, so every
replica can write them to its own folder before a KB sync (see `knowledge.pasted`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from bot.ports import Clock
from bot.store.db import Database
from bot.store.tables import KnowledgePageRow


@dataclass(frozen=True, slots=True)
class StoredPage:
    name: str  # the file name, e.g. refund-policy.md
    body: str
    author: str
    updated_at: datetime


class PageStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def save(self, name: str, body: str, author: str) -> None:
        """Store (or replace) the page called `name`."""
        async with self._db.transaction() as session:
            await session.execute(delete(KnowledgePageRow).where(KnowledgePageRow.name == name))
            session.add(KnowledgePageRow(name=name, body=body, author=author[:320], updated_at=self._clock.now()))

    async def all(self) -> list[StoredPage]:
        async with self._db.sessions() as session:
            rows = (await session.execute(select(KnowledgePageRow).order_by(KnowledgePageRow.name))).scalars()
            return [StoredPage(r.name, r.body, r.author, r.updated_at) for r in rows]
