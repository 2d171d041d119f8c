"""👍/👎 votes on bot replies: one per person per reply; a second click changes the vote."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from bot.messages import Channel
from bot.ports import Clock
from bot.store.db import Database
from bot.store.tables import FeedbackRow


class FeedbackStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(self, channel: Channel, conversation_key: str, reply_ref: str, user: str, value: int) -> None:
        if value not in (1, -1):
            raise ValueError("feedback is +1 or -1")
        async with self._db.transaction() as session:
            row = (
                await session.execute(
                    select(FeedbackRow).where(FeedbackRow.reply_ref == reply_ref, FeedbackRow.user == user)
                )
            ).scalar_one_or_none()
            if row is None:
                session.add(
                    FeedbackRow(
                        channel=channel.value,
                        conversation_key=conversation_key,
                        reply_ref=reply_ref,
                        user=user,
                        value=value,
                        created_at=self._clock.now(),
                    )
                )
            else:
                row.value = value
                row.created_at = self._clock.now()

    async def counts(self, since: datetime, until: datetime) -> tuple[int, int]:
        """(👍, 👎) recorded in [since, until)."""
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(FeedbackRow.value, func.count())
                .where(FeedbackRow.created_at >= since, FeedbackRow.created_at < until)
                .group_by(FeedbackRow.value)
            )
            by_value = {int(v): int(n) for v, n in rows.tuples()}
        return by_value.get(1, 0), by_value.get(-1, 0)
