"""Conversations, their turns and traces, and the one transaction that settles a turn.

`record_turn()` writes the customer's turn, the bot's turn with its trace, the replies into the outbox and
the inbound ledger status, all in one transaction: after a crash either all of it happened or none did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Channel, InboundMessage, Reply, Role, Turn
from bot.ports import Clock
from bot.store.codec import citation_to_json
from bot.store.db import Database
from bot.store.outbox import Outbox
from bot.store.tables import ConversationRow, HandoffRow, InboundRow, TurnRow

BOT, HUMAN, RESOLVED = "bot", "human", "resolved"


@dataclass(frozen=True, slots=True)
class ConversationState:
    id: int
    channel: Channel
    key: str
    state: str
    requester: str
    subject: str
    assignee: str
    escalated_at: datetime | None
    links: dict[str, Any] = field(default_factory=dict)

    @property
    def human_on_case(self) -> bool:
        return self.state == HUMAN


@dataclass(frozen=True, slots=True)
class Trace:
    """What one bot turn took: outcome, per-stage latency, tokens, cost, confidence."""

    outcome: str
    question: str
    text: str
    latency_ms: float
    stage_ms: dict[str, float]
    confidence: float | None = None
    answerer: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    citations: tuple[Any, ...] = ()
    reference_id: str = ""
    passages: tuple[Any, ...] = ()  # retrieved but not cited


def _state(row: ConversationRow) -> ConversationState:
    return ConversationState(
        row.id,
        Channel(row.channel),
        row.key,
        row.state,
        row.requester,
        row.subject,
        row.assignee,
        row.escalated_at,
        dict(row.links or {}),
    )


class ConversationStore:
    def __init__(self, db: Database, clock: Clock, outbox: Outbox) -> None:
        self._db = db
        self._clock = clock
        self._outbox = outbox

    async def _ensure(self, session: AsyncSession, channel: Channel, key: str, requester: str, subject: str) -> int:
        found = await session.execute(
            select(ConversationRow.id).where(ConversationRow.channel == channel.value, ConversationRow.key == key)
        )
        conv_id = found.scalar_one_or_none()
        if conv_id is not None:
            return conv_id
        now = self._clock.now()
        try:
            async with session.begin_nested():
                row = ConversationRow(
                    channel=channel.value, key=key, requester=requester, subject=subject, created_at=now, updated_at=now
                )
                session.add(row)
                await session.flush()
                return row.id
        except IntegrityError:  # another replica created it a moment ago
            found = await session.execute(
                select(ConversationRow.id).where(ConversationRow.channel == channel.value, ConversationRow.key == key)
            )
            return found.scalar_one()

    async def get(self, channel: Channel, key: str) -> ConversationState | None:
        async with self._db.sessions() as session:
            row = (
                await session.execute(
                    select(ConversationRow).where(ConversationRow.channel == channel.value, ConversationRow.key == key)
                )
            ).scalar_one_or_none()
            return _state(row) if row else None

    async def ensure(self, channel: Channel, key: str, requester: str = "", subject: str = "") -> ConversationState:
        async with self._db.transaction() as session:
            await self._ensure(session, channel, key, requester, subject)
        state = await self.get(channel, key)
        assert state is not None
        return state

    async def spent_since(self, since: datetime) -> float:
        """LLM cost in US dollars of every turn recorded since `since` (all replicas: it is in the database)."""
        async with self._db.sessions() as session:
            total = await session.execute(
                select(func.coalesce(func.sum(TurnRow.cost_usd), 0.0)).where(TurnRow.created_at >= since)
            )
            return float(total.scalar_one())

    async def history(self, channel: Channel, key: str, limit: int = 12) -> list[Turn]:
        """The last `limit` turns, oldest first."""
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(TurnRow.role, TurnRow.text, TurnRow.created_at)
                .join(ConversationRow, ConversationRow.id == TurnRow.conversation_id)
                .where(ConversationRow.channel == channel.value, ConversationRow.key == key)
                .order_by(TurnRow.id.desc())
                .limit(limit)
            )
            turns = [Turn(Role(role), text, at) for role, text, at in rows.tuples()]
        return list(reversed(turns))

    async def record_turn(
        self,
        msg: InboundMessage,
        trace: Trace | None,
        replies: Sequence[Reply],
        *,
        inbound_status: str = "answered",
    ) -> None:
        """Settle one inbound message: store its turn and trace, enqueue replies, mark the ledger, atomically."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            conv_id = await self._ensure(session, msg.channel, msg.conversation_key, msg.sender, msg.subject)
            session.add(
                TurnRow(
                    conversation_id=conv_id,
                    role=Role.CUSTOMER.value,
                    message_id=msg.message_id,
                    text=msg.text,
                    channel=msg.channel.value,
                    created_at=msg.received_at,
                )
            )
            if trace is not None:
                session.add(
                    TurnRow(
                        conversation_id=conv_id,
                        role=Role.BOT.value,
                        message_id=replies[0].idempotency_key if replies else "",
                        text=trace.text,
                        channel=msg.channel.value,
                        outcome=trace.outcome,
                        question=trace.question,
                        confidence=trace.confidence,
                        answerer=trace.answerer,
                        model=trace.model,
                        input_tokens=trace.input_tokens,
                        output_tokens=trace.output_tokens,
                        cost_usd=trace.cost_usd,
                        latency_ms=trace.latency_ms,
                        stage_ms=dict(trace.stage_ms),
                        citations=[citation_to_json(c) for c in trace.citations],
                        passages=[citation_to_json(c) for c in trace.passages],
                        reference_id=trace.reference_id,
                        created_at=now,
                    )
                )
            for reply in replies:
                await self._outbox.enqueue_in(session, reply)
            await session.execute(update(ConversationRow).where(ConversationRow.id == conv_id).values(updated_at=now))
            await session.execute(
                update(InboundRow)
                .where(InboundRow.channel == msg.channel.value, InboundRow.message_id == msg.message_id)
                .values(status=inbound_status, locked_until=None, updated_at=now)
            )

    async def settle(self, msg: InboundMessage, replies: Sequence[Reply], *, inbound_status: str = "answered") -> None:
        """Settle an inbound message that is not a turn of the conversation (a click): enqueue its replies and
        mark the ledger, atomically, without writing a turn (a click is not something the customer said)."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            for reply in replies:
                await self._outbox.enqueue_in(session, reply)
            await session.execute(
                update(InboundRow)
                .where(InboundRow.channel == msg.channel.value, InboundRow.message_id == msg.message_id)
                .values(status=inbound_status, locked_until=None, updated_at=now)
            )

    async def set_state(self, channel: Channel, key: str, state: str, *, assignee: str | None = None) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": self._clock.now()}
        if assignee is not None:
            values["assignee"] = assignee
        async with self._db.transaction() as session:
            await self._ensure(session, channel, key, "", "")
            await session.execute(
                update(ConversationRow)
                .where(ConversationRow.channel == channel.value, ConversationRow.key == key)
                .values(**values)
            )

    async def mark_escalated(self, channel: Channel, key: str, links: dict[str, Any] | None = None) -> None:
        """Remember that a person was asked for (time, and links to the agents' thread and ticket)."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            conv_id = await self._ensure(session, channel, key, "", "")
            row = await session.get(ConversationRow, conv_id)
            assert row is not None
            if row.escalated_at is None:
                row.escalated_at = now
            row.links = {**(row.links or {}), **(links or {})}
            row.updated_at = now

    async def record_human_message(self, channel: Channel, key: str, sender: str, text: str, message_id: str) -> None:
        """A person (agent) wrote in the conversation: store it, and the bot stays quiet from now on."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            conv_id = await self._ensure(session, channel, key, "", "")
            session.add(
                TurnRow(
                    conversation_id=conv_id,
                    role=Role.AGENT.value,
                    message_id=message_id,
                    text=text,
                    channel=channel.value,
                    created_at=now,
                )
            )
            row = await session.get(ConversationRow, conv_id)
            assert row is not None
            row.state = HUMAN
            row.assignee = row.assignee or sender
            if row.escalated_at is not None and row.first_human_response_at is None:
                row.first_human_response_at = now
            row.updated_at = now
            # a person answering in the thread takes the case as a Claim click does (time to first human ends)
            await session.execute(
                update(HandoffRow)
                .where(
                    HandoffRow.channel == channel.value,
                    HandoffRow.conversation_key == key,
                    HandoffRow.claimed_at.is_(None),
                )
                .values(claimed_at=now, claimed_by=sender)
            )
