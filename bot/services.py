"""TEMPORARY: the service bag the Slack and email adapters still take until they move to narrow ports (#11).
The composition root (`app/`) builds it from its `Wiring`; nothing new may use it."""

from __future__ import annotations

from dataclasses import dataclass

from bot.conversation import ConversationService
from bot.delivery import OutboxDispatcher
from bot.inquiries import InquiryPipeline
from bot.ports import Clock, Escalation, KnowledgeEngine
from bot.settings import Settings
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.events import EventLog
from bot.store.feedback import FeedbackStore
from bot.store.leases import LeaseStore
from bot.store.ledger import InboundLedger
from bot.store.outbox import Outbox


@dataclass(frozen=True)
class Services:
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
    escalation: Escalation | None
    service: ConversationService
    pipeline: InquiryPipeline
    dispatcher: OutboxDispatcher
