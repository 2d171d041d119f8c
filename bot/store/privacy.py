"""Data protection in the store: forget a person everywhere we keep them, and blank old message bodies.

`forget(who)` erases one person (an email address or a Slack user id): the conversations they started (with every
turn), their own messages and our replies to them elsewhere, their votes, offers, local ticket rows, channel events,
send counters, and the examples of knowledge gaps that quote them. It returns what it erased per table and what it
cannot reach (messages already delivered to Slack or a mailbox, tickets in an external backend, log archives).

`purge(before)` is the retention job (`RETENTION_DAYS`): message bodies and traces older than the cut-off are
blanked, while the rows and their counts, outcomes, confidences and latencies stay, so the weekly report's
aggregates and the duplicate checks still work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.store.db import Database
from bot.store.sql import rowcount
from bot.store.tables import (
    ChannelEventRow,
    ConversationRow,
    FeedbackRow,
    GapRow,
    InboundRow,
    OutboxRow,
    PendingActionRow,
    SenderActivityRow,
    TicketRow,
    TurnRow,
)

UNREACHABLE = (
    "messages already delivered (Slack posts, sent emails and the copies in people's mailboxes)",
    "tickets already opened in an external ticket system (Zendesk, Jira, a webhook receiver)",
    "log lines already shipped to a log store (logs mask addresses, phones and card numbers)",
)
REDACTED = "[removed]"


@dataclass(frozen=True, slots=True)
class ErasureReport:
    """What `forget` erased, per table, and what lies outside this store."""

    who: str
    rows: dict[str, int]
    unreachable: tuple[str, ...] = UNREACHABLE

    @property
    def total(self) -> int:
        return sum(self.rows.values())


class PrivacyStore:
    """Erasure of one person and retention of message bodies, on the shared database."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def forget(self, who: str) -> ErasureReport:
        person = who.strip().casefold()
        if not person:
            raise ValueError("say whom to forget: an email address or a Slack user id")
        rows: dict[str, int] = {}
        async with self._db.transaction() as session:
            inbound = (
                await session.execute(
                    select(InboundRow.id, InboundRow.message_id, InboundRow.payload).where(
                        func.lower(InboundRow.payload["sender"].as_string()) == person
                    )
                )
            ).all()
            message_ids = [m for _id, m, _p in inbound]
            texts = {str(p.get("text", "")) for _i, _m, p in inbound if p.get("text")}
            conversations = (
                await session.execute(
                    select(ConversationRow.id, ConversationRow.channel, ConversationRow.key).where(
                        func.lower(ConversationRow.requester) == person
                    )
                )
            ).all()
            conv_ids = [c for c, _ch, _k in conversations]
            keys = [k for _c, _ch, k in conversations]
            rows["turns"] = await _delete(session, TurnRow, _in(TurnRow.conversation_id, conv_ids))
            rows["turns"] += await _delete(session, TurnRow, _in(TurnRow.message_id, message_ids))
            rows["turns"] += await _delete(session, TurnRow, _in(TurnRow.question, sorted(texts)))
            rows["conversations"] = await _delete(session, ConversationRow, _in(ConversationRow.id, conv_ids))
            rows["inbound"] = await _delete(
                session,
                InboundRow,
                or_(_in(InboundRow.id, [i for i, _m, _p in inbound]), _in(InboundRow.conversation_key, keys)),
            )
            rows["outbox"] = await _delete(
                session,
                OutboxRow,
                or_(
                    func.lower(OutboxRow.payload["recipient"].as_string()) == person,
                    _in(OutboxRow.conversation_key, keys),
                ),
            )
            rows["feedback"] = await _delete(
                session,
                FeedbackRow,
                or_(func.lower(FeedbackRow.user) == person, _in(FeedbackRow.conversation_key, keys)),
            )
            rows["pending_actions"] = await _delete(
                session,
                PendingActionRow,
                or_(func.lower(PendingActionRow.requester) == person, _in(PendingActionRow.conversation_key, keys)),
            )
            rows["tickets"] = await _delete(
                session,
                TicketRow,
                or_(func.lower(TicketRow.requester) == person, _in(TicketRow.conversation_key, keys)),
            )
            rows["channel_events"] = await _delete(
                session, ChannelEventRow, func.lower(ChannelEventRow.sender) == person
            )
            rows["sender_activity"] = await _delete(
                session,
                SenderActivityRow,
                or_(func.lower(SenderActivityRow.sender) == person, func.lower(SenderActivityRow.recipient) == person),
            )
            rows["knowledge_gap_examples"] = await _drop_examples(session, texts)
        return ErasureReport(who, rows)

    async def purge(self, before: datetime) -> dict[str, int]:
        """Blank message bodies and traces written before `before`; rows, outcomes and figures stay."""
        counts: dict[str, int] = {}
        async with self._db.transaction() as session:
            counts["turns"] = rowcount(
                await session.execute(
                    update(TurnRow)
                    .where(TurnRow.created_at < before, TurnRow.text != REDACTED)
                    .values(text=REDACTED, question="", citations=[], passages=[], stage_ms={})
                )
            )
            counts["conversations"] = rowcount(
                await session.execute(
                    update(ConversationRow)
                    .where(
                        ConversationRow.updated_at < before,
                        or_(ConversationRow.subject != "", ConversationRow.requester != ""),
                    )
                    .values(subject="", requester="")
                )
            )
            counts["feedback"] = rowcount(
                await session.execute(
                    update(FeedbackRow).where(FeedbackRow.created_at < before, FeedbackRow.user != "").values(user="")
                )
            )
            counts["sender_activity"] = await _delete(session, SenderActivityRow, SenderActivityRow.created_at < before)
            counts["inbound"] = await _blank_payloads(session, InboundRow, InboundRow.created_at < before)
            counts["outbox"] = await _blank_payloads(
                session, OutboxRow, OutboxRow.created_at < before, OutboxRow.status != "pending"
            )
            counts["pending_actions"] = rowcount(
                await session.execute(
                    update(PendingActionRow)
                    .where(PendingActionRow.updated_at < before, PendingActionRow.state != "pending")
                    .values(preview={})
                )
            )
            counts["channel_events"] = rowcount(
                await session.execute(
                    update(ChannelEventRow).where(ChannelEventRow.created_at < before).values(sender="", detail="")
                )
            )
        return counts


def _in(column: Any, values: Sequence[Any]) -> Any:
    return column.in_(list(values))  # an empty list is a false condition (SQLAlchemy's "empty IN")


async def _delete(session: AsyncSession, table: Any, condition: Any) -> int:
    return rowcount(await session.execute(delete(table).where(condition)))


async def _blank_payloads(session: AsyncSession, table: Any, *conditions: Any) -> int:
    """Keep each row (its keys dedupe, its status counts) but drop the text and the sender it carried."""
    found = (await session.execute(select(table.id, table.payload).where(*conditions))).all()
    changed = 0
    for row_id, payload in found:
        if payload.get("text") == REDACTED:
            continue
        blanked = {**payload, "text": REDACTED, "subject": "", "sender": "", "recipient": "", "metadata": {}}
        await session.execute(update(table).where(table.id == row_id).values(payload=blanked))
        changed += 1
    return changed


async def _drop_examples(session: AsyncSession, texts: set[str]) -> int:
    if not texts:
        return 0
    dropped = 0
    for gap in (await session.execute(select(GapRow))).scalars():
        kept = [e for e in gap.examples if str(e) not in texts]
        if len(kept) != len(gap.examples):
            dropped += len(gap.examples) - len(kept)
            gap.examples = kept
    return dropped
