"""Mailbox read positions and the parse marker, for any mailbox poller (the email channel's IMAP folders).

`mailbox_state` keeps (UIDVALIDITY, last UID) per mailbox; `mailbox_parse` keeps the one message a poller is
parsing right now, written before the parse, so a message that kills the parser is recognised on the next poll.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from bot.ports import Clock, MailboxPosition
from bot.store.db import Database
from bot.store.sql import insert_ignore
from bot.store.tables import MailboxParseRow, MailboxStateRow


class MailboxStore:
    """Implements `bot.ports.MailboxPositions`."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, mailbox: str) -> MailboxPosition | None:
        async with self._db.sessions() as session:
            row = await session.get(MailboxStateRow, mailbox)
            return MailboxPosition(row.uidvalidity, row.last_uid) if row else None

    async def set(self, mailbox: str, position: MailboxPosition) -> None:
        now = self._clock.now()
        async with self._db.transaction() as session:
            row = await session.get(MailboxStateRow, mailbox)
            if row is None:
                values = {"mailbox": mailbox, "uidvalidity": 0, "last_uid": 0, "updated_at": now}
                await session.execute(insert_ignore(self._db.dialect, cast(Table, MailboxStateRow.__table__), values))
                row = await session.get(MailboxStateRow, mailbox)
                assert row is not None
            row.uidvalidity, row.last_uid, row.updated_at = position.uidvalidity, position.last_uid, now

    async def begin_parse(self, mailbox: str, uidvalidity: int, uid: int) -> int:
        """Mark (uidvalidity, uid) as being parsed; returns how often its parse began (1 the first time)."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            row = await session.get(MailboxParseRow, mailbox, with_for_update=True)
            if row is None:
                values = {"mailbox": mailbox, "uidvalidity": 0, "uid": 0, "attempts": 0, "updated_at": now}
                await session.execute(insert_ignore(self._db.dialect, cast(Table, MailboxParseRow.__table__), values))
                row = await session.get(MailboxParseRow, mailbox, with_for_update=True)
                assert row is not None
            if (row.uidvalidity, row.uid) == (uidvalidity, uid):
                row.attempts += 1
            else:
                row.uidvalidity, row.uid, row.attempts = uidvalidity, uid, 1
            row.updated_at = now
            return row.attempts
