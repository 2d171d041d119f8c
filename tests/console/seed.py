"""Rows for console tests, written straight into the store's tables (what the service would have stored)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.store.db import Database
from bot.store.tables import ConversationRow, FeedbackRow, GapRow, HandoffRow, InboundRow, TicketRow, TurnRow

HOSTILE = "Help <script>alert('x')</script> <img src=x onerror=alert(1)> <a href=\"javascript:alert(2)\">click</a>"


async def conversation(
    db: Database,
    at: datetime,
    question: str,
    *,
    channel: str = "email",
    outcome: str = "answered",
    confidence: float = 0.9,
    latency_ms: float = 100.0,
    thumbs: int = 0,
    citation_url: str = "https://help.example.com/backups",
) -> tuple[int, int]:
    """One conversation with a customer turn and a bot turn; returns (conversation id, bot turn id)."""
    async with db.transaction() as session:
        conv = ConversationRow(
            channel=channel,
            key=f"k-{question[:20]}-{at.timestamp()}",
            requester="ann@example.com",
            subject=question[:60],
            created_at=at,
            updated_at=at,
        )
        session.add(conv)
        await session.flush()
        session.add(TurnRow(conversation_id=conv.id, role="customer", text=question, channel=channel, created_at=at))
        ref = f"reply-{conv.id}"
        bot = TurnRow(
            conversation_id=conv.id,
            role="bot",
            message_id=ref,
            text="Backups run every hour [1].",
            channel=channel,
            outcome=outcome,
            question=question,
            confidence=confidence,
            answerer="extractive",
            latency_ms=latency_ms,
            stage_ms={"retrieve": 12.0, "generate": 30.0},
            input_tokens=10,
            output_tokens=5,
            cost_usd=0.001,
            citations=[
                {
                    "index": 1,
                    "title": "Backups",
                    "source": "kb/backups.md",
                    "url": citation_url,
                    "snippet": "Backups run hourly.",
                    "score": 0.8,
                }
            ],
            passages=[
                {
                    "index": 0,
                    "title": "Restore",
                    "source": "kb/restore.md",
                    "snippet": "Restores take a day.",
                    "score": 0.41,
                }
            ],
            created_at=at + timedelta(seconds=1),
        )
        session.add(bot)
        await session.flush()
        if thumbs:
            session.add(
                FeedbackRow(
                    channel=channel, conversation_key=conv.key, reply_ref=ref, user="U1", value=thumbs, created_at=at
                )
            )
        return conv.id, bot.id


async def dead_letter(db: Database, at: datetime, text: str) -> int:
    async with db.transaction() as session:
        row = InboundRow(
            channel="email",
            message_id=f"m-{at.timestamp()}-{len(text)}",
            conversation_key="c1",
            status="dead_letter",
            attempts=3,
            last_error="RuntimeError",
            created_at=at,
            updated_at=at,
            payload={
                "channel": "email",
                "conversation_key": "c1",
                "message_id": "m1",
                "sender": "eve@example.com",
                "text": text,
                "received_at": at.isoformat(),
            },
        )
        session.add(row)
        await session.flush()
        return row.id


async def ticket_and_gap(db: Database, at: datetime, text: str) -> None:
    async with db.transaction() as session:
        session.add(
            TicketRow(
                action_token="t1",
                backend="internal",
                reference="T-1",
                subject=text,
                requester="ann@example.com",
                state="open",
                created_at=at,
                updated_at=at,
            )
        )
        session.add(GapRow(label=text, count=4, examples=[text], first_seen=at, last_seen=at, updated_at=at))
        conv = ConversationRow(
            channel="slack",
            key="handoff-1",
            requester=text,
            state="human",
            assignee="U9",
            escalated_at=at,
            created_at=at,
            updated_at=at,
        )
        session.add(conv)


async def handoff(db: Database, conversation_id: int, at: datetime, *, claimed: bool = False) -> None:
    """A request for a person in that conversation (claimed an hour later when `claimed`)."""
    async with db.transaction() as session:
        conv = await session.get(ConversationRow, conversation_id)
        assert conv is not None
        session.add(
            HandoffRow(
                channel=conv.channel,
                conversation_key=conv.key,
                round=1,
                agents_notified=True,
                requested_at=at,
                claimed_at=at + timedelta(hours=1) if claimed else None,
                claimed_by="U9" if claimed else "",
            )
        )
