"""Escalation: confirm-before-act (pending actions), ticket backends, and the hand-off to human agents."""

from __future__ import annotations

from bot.ports import Clock
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.outbox import Outbox
from escalation.backends import build_backend
from escalation.config import EscalationConfig, TicketBackendConfig
from escalation.service import EscalationService
from escalation.tickets import TicketView, format_tickets

__all__ = [
    "EscalationConfig",
    "EscalationService",
    "TicketBackendConfig",
    "TicketView",
    "build_escalation",
    "format_tickets",
]


def build_escalation(
    config: EscalationConfig, db: Database, clock: Clock, outbox: Outbox, conversations: ConversationStore
) -> EscalationService:
    """The escalation service with the backend `TICKET_BACKEND` names (a `ConfigError` if it is incomplete)."""
    backend = build_backend(config.backend, db, clock)
    return EscalationService(db, clock, outbox, conversations, backend, config)
