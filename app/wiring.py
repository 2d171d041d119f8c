"""What the composition root built for one process: its own record, never handed to channels or jobs.

Channels, jobs and the HTTP server receive narrow ports taken from it (`Intake`, `SenderRegistry`, stores);
tests reach into it to drive and inspect a real service.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings
from bot.conversation import ConversationService
from bot.delivery import OutboxDispatcher
from bot.inquiries import InquiryPipeline
from bot.ports import Clock, Embedder, KnowledgeEngine, KnowledgeIndex
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.events import EventLog
from bot.store.feedback import FeedbackStore
from bot.store.leases import LeaseStore
from bot.store.ledger import InboundLedger
from bot.store.outbox import Outbox
from escalation import EscalationService
from knowledge.pasted import PastedPages


@dataclass(frozen=True)
class Wiring:
    """The objects one process shares. `index` and `embedder` are None when `knowledge` is a test double
        that cannot ingest or embed; `escalation` is None when built without it (tests of one channel). `pasted` (pages
    pasted in the console) needs `index`."""

    settings: Settings
    clock: Clock
    db: Database
    ledger: InboundLedger
    outbox: Outbox
    conversations: ConversationStore
    feedback: FeedbackStore
    events: EventLog
    leases: LeaseStore
    knowledge: KnowledgeEngine
    index: KnowledgeIndex | None
    embedder: Embedder | None
    escalation: EscalationService | None
    service: ConversationService
    pipeline: InquiryPipeline
    dispatcher: OutboxDispatcher
    pasted: PastedPages | None = None  # pages pasted in the console (DATA_DIR/uploads): with a writable index only
