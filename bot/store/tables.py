"""The database schema (SQLAlchemy 2 declarative, typed). Alembic migrations in `migrations/` create it.

Every piece of state that matters lives here, so any replica and any restart can carry on: conversations and
turns (with their traces), the inbound ledger and the outbox (the exactly-once backbone), feedback, pending
actions and tickets, mailbox positions, channel hygiene events, knowledge gaps, leases and job runs.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    and_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite has no time zones and returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class ConversationRow(Base):
    """A thread: a Slack thread, an email thread, an API session. `state` says who is talking."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("channel", "key", name="uq_conversations_channel_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(512))
    requester: Mapped[str] = mapped_column(String(320), default="")
    subject: Mapped[str] = mapped_column(String(998), default="")
    # bot: the bot answers; human: a person claimed it or wrote in it (bot stays quiet); resolved: bot answers again
    state: Mapped[str] = mapped_column(String(16), default="bot")
    assignee: Mapped[str] = mapped_column(String(320), default="")
    escalated_at: Mapped[datetime | None] = mapped_column(default=None)
    first_human_response_at: Mapped[datetime | None] = mapped_column(default=None)
    links: Mapped[dict[str, Any]] = mapped_column(default=dict)  # e.g. agents' Slack thread, ticket URL
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TurnRow(Base):
    """One message in a conversation. Bot turns carry the trace: outcome, latency per stage, tokens, cost."""

    __tablename__ = "turns"
    __table_args__ = (Index("ix_turns_conversation", "conversation_id", "id"), Index("ix_turns_created", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(512), default="")
    text: Mapped[str] = mapped_column(Text)
    channel: Mapped[str] = mapped_column(String(16), default="")
    outcome: Mapped[str] = mapped_column(String(32), default="")
    question: Mapped[str] = mapped_column(Text, default="")  # for bot turns: the question answered
    confidence: Mapped[float | None] = mapped_column(Float, default=None)
    answerer: Mapped[str] = mapped_column(String(32), default="")
    model: Mapped[str] = mapped_column(String(64), default="")
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float] = mapped_column(Float, default=0.0)
    stage_ms: Mapped[dict[str, Any]] = mapped_column(default=dict)
    citations: Mapped[list[Any]] = mapped_column(default=list)
    reference_id: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime]
    # 0007: the passages retrieval found that the answer did not cite (same shape as citations, index 0); blanked
    # with the text by RETENTION_DAYS. NULL on rows older than 0007.
    passages: Mapped[list[Any] | None] = mapped_column(JSON, default=list, nullable=True)


class InboundRow(Base):
    """The inbound ledger: every message we accepted, with its processing status.

    status: received -> answered | ignored | failed -> dead_letter. `locked_until` is a processing lease so a
    replica that died mid-answer is replaced, and two replicas never work one message at once.
    """

    __tablename__ = "inbound"
    __table_args__ = (
        UniqueConstraint("channel", "message_id", name="uq_inbound_channel_message"),
        Index("ix_inbound_status", "status", "locked_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    message_id: Mapped[str] = mapped_column(String(512))
    conversation_key: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the InboundMessage, for replay
    reason: Mapped[str] = mapped_column(String(64), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InboundKeyRow(Base):
    """Every external key an inbound message is known by (Slack event_id and channel:ts; email UID and Message-ID)."""

    __tablename__ = "inbound_keys"

    key: Mapped[str] = mapped_column(String(600), primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id", ondelete="CASCADE"))
    created_at: Mapped[datetime]


class OutboxRow(Base):
    """A reply decided but maybe not yet delivered. Unique `idempotency_key`; retried until sent or dead."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(600), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    conversation_key: Mapped[str] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]] = mapped_column()  # the Reply
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None] = mapped_column(default=None)
    delivery_ref: Mapped[str] = mapped_column(String(512), default="")
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)


class FeedbackRow(Base):
    """👍/👎 on one bot reply, one vote per person (a second click changes the vote)."""

    __tablename__ = "feedback"
    __table_args__ = (UniqueConstraint("reply_ref", "user", name="uq_feedback_reply_user"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    conversation_key: Mapped[str] = mapped_column(String(512))
    reply_ref: Mapped[str] = mapped_column(String(512))  # the reply's idempotency key
    user: Mapped[str] = mapped_column(String(320))
    value: Mapped[int] = mapped_column(Integer)  # +1 or -1
    created_at: Mapped[datetime]


class PendingActionRow(Base):
    """An irreversible action proposed and awaiting a person's confirmation (see escalation/)."""

    __tablename__ = "pending_actions"
    __table_args__ = (Index("ix_pending_state_expiry", "state", "expires_at"),)

    token: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16), default="pending")  # pending|confirmed|done|cancelled|expired
    channel: Mapped[str] = mapped_column(String(16))
    conversation_key: Mapped[str] = mapped_column(String(512))
    requester: Mapped[str] = mapped_column(String(320))
    confirmers: Mapped[list[Any]] = mapped_column(default=list)
    preview: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message_ref: Mapped[str] = mapped_column(String(512), default="")  # offer message (email Message-ID, Slack ts)
    decided_by: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class TicketRow(Base):
    """A ticket we opened. `action_token` is unique, so one confirmation can never open two tickets."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_token: Mapped[str] = mapped_column(String(128), unique=True)
    backend: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str] = mapped_column(String(128), default="")
    url: Mapped[str] = mapped_column(String(1024), default="")
    subject: Mapped[str] = mapped_column(String(998), default="")
    requester: Mapped[str] = mapped_column(String(320), default="")
    channel: Mapped[str] = mapped_column(String(16), default="")
    conversation_key: Mapped[str] = mapped_column(String(512), default="")
    state: Mapped[str] = mapped_column(String(16), default="creating")  # creating|open|claimed|resolved
    assignee: Mapped[str] = mapped_column(String(320), default="")
    links: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


class MailboxStateRow(Base):
    """Where the poller is in a mailbox: (UIDVALIDITY, last UID)."""

    __tablename__ = "mailbox_state"

    mailbox: Mapped[str] = mapped_column(String(320), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(Integer, default=0)
    last_uid: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class ChannelEventRow(Base):
    """Things a channel did instead of answering (auto-reply ignored, bounce, loop stopped, quarantined, ...)."""

    __tablename__ = "channel_events"
    __table_args__ = (Index("ix_channel_events_kind_time", "kind", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    sender: Mapped[str] = mapped_column(String(320), default="")
    message_id: Mapped[str] = mapped_column(String(512), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class GapRow(Base):
    """A knowledge gap: a cluster of questions the bot could not answer well."""

    __tablename__ = "knowledge_gaps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    label: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | covered | dismissed
    count: Mapped[int] = mapped_column(Integer, default=0)
    examples: Mapped[list[Any]] = mapped_column(default=list)
    turn_ids: Mapped[list[Any]] = mapped_column(default=list)
    centroid: Mapped[list[Any]] = mapped_column(default=list)
    trend: Mapped[str] = mapped_column(String(16), default="new")  # new | rising | steady | falling
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    updated_at: Mapped[datetime]


class LeaseRow(Base):
    """A named lease (e.g. the scheduler leader); whoever holds an unexpired lease runs the guarded work."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    expires_at: Mapped[datetime]


class JobRunRow(Base):
    """One period of a scheduled job. `run_key` (job + scheduled time) is unique: a period runs once.

    States: pending (planned) -> running -> ok | failed (retried at `next_attempt_at`) -> ... -> gave_up;
    a pending period found too late is `missed`; a failed one overtaken by a later good run is `superseded`.
    While `running`, `next_attempt_at` is the run's lease: past it, the run's process is presumed dead.
    """

    __tablename__ = "job_runs"
    __table_args__ = (
        Index("ix_job_runs_job_scheduled", "job", "scheduled_at"),
        Index("ix_job_runs_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    run_key: Mapped[str] = mapped_column(String(256), unique=True)
    holder: Mapped[str] = mapped_column(String(256), default="")
    status: Mapped[str] = mapped_column(String(16), default="running")  # see the class docstring
    detail: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime]  # when the latest attempt started (a pending period: when it was planned)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # 0002: retries, and the period itself (None for runs started by hand and for rows older than 0002)
    scheduled_at: Mapped[datetime | None] = mapped_column(default=None)
    schedule: Mapped[str] = mapped_column(String(128), default="", server_default="")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)


class SenderActivityRow(Base):
    """One message a sender sent (kind: answered, loop, throttled), counted by the sender policy's windows.

    `recipient` is where the answer went (the sender, or an aligned Reply-To), so per-recipient limits hold too.
    """

    __tablename__ = "sender_activity"
    __table_args__ = (
        Index("ix_sender_activity_sender", "channel", "sender", "created_at"),
        Index("ix_sender_activity_recipient", "channel", "recipient", "created_at"),
        Index("ix_sender_activity_kind", "channel", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(320))
    recipient: Mapped[str] = mapped_column(String(320), default="")
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class MailboxParseRow(Base):
    """The message a mailbox poller is parsing, written before the parse: if the parser dies on it, the next
    poll sees the marker and quarantines the message instead of parsing it again and again."""

    __tablename__ = "mailbox_parse"

    mailbox: Mapped[str] = mapped_column(String(320), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(Integer, default=0)
    uid: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]


class HandoffRow(Base):
    """One request for a person (a round: a case resolved and asked about again is a new round), with when an agent
    claimed it: time to first human is `claimed_at - requested_at`. Unclaimed and unresolved past HANDOFF_SLA_MINUTES,
    it is in the backlog digest."""

    __tablename__ = "handoffs"
    __table_args__ = (
        UniqueConstraint("channel", "conversation_key", "round", name="uq_handoffs_case_round"),
        Index("ix_handoffs_requested", "requested_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    conversation_key: Mapped[str] = mapped_column(String(512))
    round: Mapped[int] = mapped_column(Integer)
    agents_notified: Mapped[bool] = mapped_column(Boolean)
    requested_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    claimed_by: Mapped[str] = mapped_column(String(320), default="")
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)


def handoff_conversation() -> ColumnElement[bool]:
    """The join condition from a hand-off to its conversation: the same channel and conversation key."""
    return and_(ConversationRow.channel == HandoffRow.channel, ConversationRow.key == HandoffRow.conversation_key)


class ReviewVerdictRow(Base):
    """A reviewer's verdict on one bot turn (the console's review queue): correct | wrong | should_abstain.

    One verdict per turn (a second review replaces it). The weekly report and the gap backlog read these; `supportbot
    eval` can export them as a labelled set.
    """

    __tablename__ = "review_verdicts"
    __table_args__ = (Index("ix_review_verdicts_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[int] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), unique=True)
    verdict: Mapped[str] = mapped_column(String(24))
    note: Mapped[str] = mapped_column(Text, default="")
    expected_source: Mapped[str] = mapped_column(String(512), default="")  # the page that should have answered
    reviewer: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]


class AuditRow(Base):
    """One operator action (console or admin API): who did what to what, and when. Never customer text."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_created", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(512), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class IngestedDocumentRow(Base):
    """One knowledge document in the index's bookkeeping (replaces the per-process JSON docstore), see
    `bot.ports.DocumentState`: the content hash and chunk count of its last fully indexed version, and a claim
    (`status` indexing, `holder`, `lease_until`) taken by compare-and-set on `version` before embedding."""

    __tablename__ = "ingested_documents"

    collection: Mapped[str] = mapped_column(String(128), primary_key=True)  # the index (QDRANT_COLLECTION)
    doc_id: Mapped[str] = mapped_column(String(1024), primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(128), default="")
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="indexing")  # indexing | indexed | deleted
    holder: Mapped[str] = mapped_column(String(256), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime]


class WeeklyReportRow(Base):
    """One week's report as it was built (text, HTML and chart), kept for the console's Reports page whether or not
    it was delivered anywhere; building a week again replaces it."""

    __tablename__ = "weekly_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    week: Mapped[str] = mapped_column(String(16), unique=True)  # ISO week, e.g. 2026-W47
    title: Mapped[str] = mapped_column(String(256))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text, default="")
    chart_png: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    inquiries: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]


class KnowledgePageRow(Base):
    """A page an admin pasted or uploaded in the console. The database is its source of truth, so every replica
    writes it to its own `DATA_DIR/uploads/` before ingesting (a KB sync never finds it missing and deletes it)."""

    __tablename__ = "knowledge_pages"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # the file name, e.g. refund-policy.md
    body: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(320), default="")
    updated_at: Mapped[datetime]
