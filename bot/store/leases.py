"""Named leases in the database: one holder at a time, taken over when the holder stops renewing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from bot.ports import Clock
from bot.store.db import Database
from bot.store.sql import rowcount
from bot.store.tables import LeaseRow


class LeaseStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def acquire(self, name: str, holder: str, ttl_seconds: float) -> bool:
        """Take or renew `name` for `holder`; False while someone else holds an unexpired lease."""
        now = self._clock.now()
        expires = now + timedelta(seconds=ttl_seconds)
        async with self._db.transaction() as session:
            result = await session.execute(
                update(LeaseRow)
                .where(LeaseRow.name == name, or_(LeaseRow.holder == holder, LeaseRow.expires_at < now))
                .values(holder=holder, expires_at=expires)
            )
            if rowcount(result) == 1:
                return True
        try:
            async with self._db.transaction() as session:
                session.add(LeaseRow(name=name, holder=holder, expires_at=expires))
            return True
        except IntegrityError:
            return False

    async def release(self, name: str, holder: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(LeaseRow)
                .where(LeaseRow.name == name, LeaseRow.holder == holder)
                .values(expires_at=self._clock.now() - timedelta(seconds=1))
            )
