"""Channel events: what a channel did instead of answering (ignored auto-reply, bounce, loop stopped, ...)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from bot.messages import Channel
from bot.ports import Clock
from bot.store.db import Database
from bot.store.sql import truncate
from bot.store.tables import ChannelEventRow


class EventLog:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self, channel: Channel, kind: str, *, sender: str = "", message_id: str = "", detail: str = ""
    ) -> None:
        async with self._db.transaction() as session:
            session.add(
                ChannelEventRow(
                    channel=channel.value,
                    kind=kind,
                    sender=sender,
                    message_id=message_id,
                    detail=truncate(detail, 1000),
                    created_at=self._clock.now(),
                )
            )

    async def counts(self, since: datetime, until: datetime) -> dict[str, int]:
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(ChannelEventRow.kind, func.count())
                .where(ChannelEventRow.created_at >= since, ChannelEventRow.created_at < until)
                .group_by(ChannelEventRow.kind)
            )
            return {kind: int(n) for kind, n in rows.tuples()}
