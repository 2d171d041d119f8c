"""What the email channel remembers, in the shared tables (no schema of its own).

- `MailboxPositions`: (UIDVALIDITY, last UID) per mailbox in `mailbox_state`.
- `ThreadIndex`: the conversation a reply belongs to, found by its In-Reply-To/References among Message-IDs we
  stored: inbound ones through their ledger keys (`email:msgid:<id>`), our own replies through the outbox's
  delivery reference (the Message-ID we sent). Never by subject: two customers writing "Invoice" stay apart.
- `SenderCounts`: how many messages a sender sent recently, from ledger keys `email:sender:<addr>:<kind>:<id>`
  (a prefix match on the key table; `created_at` bounds the window).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from bot.messages import Channel
from bot.ports import Clock
from bot.store.db import Database
from bot.store.sql import insert_ignore
from bot.store.tables import InboundKeyRow, InboundRow, MailboxStateRow, OutboxRow


@dataclass(frozen=True, slots=True)
class Position:
    uidvalidity: int
    last_uid: int


class MailboxPositions:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, mailbox: str) -> Position | None:
        async with self._db.sessions() as session:
            row = await session.get(MailboxStateRow, mailbox)
            return Position(row.uidvalidity, row.last_uid) if row else None

    async def set(self, mailbox: str, position: Position) -> None:
        now = self._clock.now()
        async with self._db.transaction() as session:
            row = await session.get(MailboxStateRow, mailbox)
            if row is None:
                values = {"mailbox": mailbox, "uidvalidity": position.uidvalidity, "last_uid": position.last_uid}
                await session.execute(
                    insert_ignore(self._db.dialect, MailboxStateRow.__table__, {**values, "updated_at": now})  # type: ignore[arg-type]
                )
                row = await session.get(MailboxStateRow, mailbox)
                assert row is not None
            row.uidvalidity, row.last_uid, row.updated_at = position.uidvalidity, position.last_uid, now


def msgid_key(message_id: str) -> str:
    return f"email:msgid:{message_id}"


def sender_key(sender: str, kind: str, message_id: str) -> str:
    return f"email:sender:{sender}:{kind}:{message_id}"


class ThreadIndex:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def root_for(self, thread_ids: Sequence[str]) -> str | None:
        """The conversation key of the nearest stored message among `thread_ids`, or None."""
        if not thread_ids:
            return None
        ids = list(thread_ids)[:50]
        async with self._db.sessions() as session:
            inbound = await session.execute(
                select(InboundKeyRow.key, InboundRow.conversation_key)
                .join(InboundRow, InboundRow.id == InboundKeyRow.inbound_id)
                .where(InboundKeyRow.key.in_([msgid_key(i) for i in ids]))
            )
            found = {key.removeprefix("email:msgid:"): conv for key, conv in inbound.tuples()}
            outgoing = await session.execute(
                select(OutboxRow.delivery_ref, OutboxRow.conversation_key).where(
                    OutboxRow.channel == Channel.EMAIL.value, OutboxRow.delivery_ref.in_(ids)
                )
            )
            for ref, conv in outgoing.tuples():
                found.setdefault(ref, conv)
        return next((found[i] for i in ids if i in found), None)


class SenderCounts:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def since(self, sender: str, since: datetime, kind: str = "") -> int:
        """Messages from `sender` recorded since `since` (of one kind, or all kinds)."""
        prefix = f"email:sender:{sender}:{kind + ':' if kind else ''}"
        async with self._db.sessions() as session:
            count = await session.execute(
                select(func.count()).where(
                    InboundKeyRow.key.startswith(prefix, autoescape=True),
                    InboundKeyRow.created_at >= since,
                )
            )
            return int(count.scalar_one())
