"""Which conversation a reply belongs to, by the message ids it answers, and only for its participants.

Message ids are found among inbound messages (ledger keys `<channel>:msgid:<id>`) and among our own replies
(the outbox's delivery reference: the id we sent). Never by subject: two customers writing "Invoice" stay
apart. A sender who is not a participant (the conversation's requester, or the sender of one of its inbound
messages) gets None, so quoting another customer's Message-ID never opens their history.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from bot.messages import Channel
from bot.store.db import Database
from bot.store.tables import ConversationRow, InboundKeyRow, InboundRow, OutboxRow

MAX_IDS = 50
MAX_PARTICIPANT_ROWS = 500


class ThreadStore:
    """Implements `bot.ports.ThreadIndex` for one channel's key prefix."""

    def __init__(self, db: Database, channel: Channel = Channel.EMAIL) -> None:
        self._db = db
        self._prefix = f"{channel.value}:msgid:"

    def message_key(self, message_id: str) -> str:
        return f"{self._prefix}{message_id}"

    async def conversation_for(self, channel: Channel, thread_ids: Sequence[str], sender: str) -> str | None:
        """The conversation of the nearest known id among `thread_ids` if `sender` takes part in it, else None."""
        ids = list(dict.fromkeys(thread_ids))[:MAX_IDS]
        if not ids:
            return None
        found: dict[str, str] = {}
        async with self._db.sessions() as session:
            inbound = await session.execute(
                select(InboundKeyRow.key, InboundRow.conversation_key)
                .join(InboundRow, InboundRow.id == InboundKeyRow.inbound_id)
                .where(InboundKeyRow.key.in_([self.message_key(i) for i in ids]))
            )
            found = {key.removeprefix(self._prefix): conv for key, conv in inbound.tuples()}
            outgoing = await session.execute(
                select(OutboxRow.delivery_ref, OutboxRow.conversation_key).where(
                    OutboxRow.channel == channel.value, OutboxRow.delivery_ref.in_(ids)
                )
            )
            for ref, conv in outgoing.tuples():
                found.setdefault(ref, conv)
        key = next((found[i] for i in ids if i in found), None)
        if key is None or not await self.is_participant(channel, key, sender):
            return None
        return key

    async def is_participant(self, channel: Channel, conversation_key: str, sender: str) -> bool:
        """True when `sender` started the conversation or wrote one of its inbound messages (case-insensitive)."""
        who = sender.strip().casefold()
        if not who:
            return False
        async with self._db.sessions() as session:
            requester = await session.execute(
                select(ConversationRow.requester).where(
                    ConversationRow.channel == channel.value, ConversationRow.key == conversation_key
                )
            )
            if any(r.strip().casefold() == who for r in requester.scalars()):
                return True
            senders = await session.execute(
                select(InboundRow.payload["sender"].as_string())
                .where(InboundRow.channel == channel.value, InboundRow.conversation_key == conversation_key)
                .order_by(InboundRow.id)
                .limit(MAX_PARTICIPANT_ROWS)
            )
            return any((s or "").strip().casefold() == who for s in senders.scalars())
