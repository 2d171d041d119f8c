"""The sender policy: who may get an automatic answer now, so a mail loop or a flood never turns us into a
spam cannon.

Counted per channel in the `sender_activity` table (one row per message: answered, or the reason it was held):
- loop: a sender whose messages (answered or not) within `loop_window` reach `2 * per_sender` floods us --
  an autoresponder ping-pong or a script; nothing more is answered and an alert metric fires (in the adapter).
- throttled: `per_sender` answers to one sender, or `per_recipient` answers to one recipient address (a Reply-To
  shared by many senders), within `window`; or `global_limit` answers on the channel within `window`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from bot.messages import Channel
from bot.ports import SenderHold
from bot.store.db import Database
from bot.store.tables import SenderActivityRow

ANSWERED = "answered"


@dataclass(frozen=True, slots=True)
class SenderLimits:
    per_sender: int = 5  # answers per sender per window (EMAIL_REPLIES_PER_SENDER_PER_HOUR)
    per_recipient: int = 5  # answers per recipient address per window
    global_limit: int = 500  # answers per channel per window
    window: timedelta = timedelta(hours=1)
    loop_window: timedelta = timedelta(minutes=10)


class SenderGuard:
    """Implements `bot.ports.SenderPolicy` on the shared database."""

    def __init__(self, db: Database, limits: SenderLimits = SenderLimits()) -> None:
        self._db = db
        self.limits = limits

    async def check(self, channel: Channel, sender: str, now: datetime, *, recipient: str = "") -> SenderHold | None:
        sender, recipient = _norm(sender), _norm(recipient) or _norm(sender)
        limits = self.limits
        rows = SenderActivityRow
        if await self._count(channel, now - limits.loop_window, rows.sender == sender) >= 2 * limits.per_sender:
            return "loop"
        since = now - limits.window
        if await self._count(channel, since, rows.sender == sender, rows.kind == ANSWERED) >= limits.per_sender:
            return "throttled"
        if (
            await self._count(channel, since, rows.recipient == recipient, rows.kind == ANSWERED)
            >= limits.per_recipient
        ):
            return "throttled"
        if await self._count(channel, since, rows.kind == ANSWERED) >= limits.global_limit:
            return "throttled"
        return None

    async def count(self, channel: Channel, sender: str, kind: str, now: datetime, *, recipient: str = "") -> None:
        async with self._db.transaction() as session:
            session.add(
                SenderActivityRow(
                    channel=channel.value,
                    sender=_norm(sender),
                    recipient=_norm(recipient) or _norm(sender),
                    kind=kind,
                    created_at=now,
                )
            )

    async def _count(self, channel: Channel, since: datetime, *where: ColumnElement[bool]) -> int:
        async with self._db.sessions() as session:
            result = await session.execute(
                select(func.count()).where(
                    SenderActivityRow.channel == channel.value, SenderActivityRow.created_at >= since, *where
                )
            )
            return int(result.scalar_one())


def _norm(address: str) -> str:
    return address.strip().casefold()[:320]
