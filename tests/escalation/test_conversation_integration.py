"""Escalation seen through the conversation service and the email channel's offer Message-ID (the contract)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from app.build import escalation_config
from bot.conversation import ConversationService
from bot.messages import Action, ActionKind, Answer, Outcome, Turn
from bot.offers import offer_message_id
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.outbox import Outbox
from bot.strings import for_customers
from escalation.backends import InternalBackend
from escalation.intent import EmbeddingIntentClassifier
from escalation.service import EscalationService
from tests.conftest import ManualClock
from tests.doubles import ScriptedKnowledge
from tests.escalation.conftest import ServiceFactory, email_msg, make_settings, slack_msg


class AbstainingKnowledge:
    """A test double for the knowledge *port*: it never knows the answer."""

    async def answer(
        self, question: str, history: Sequence[Turn] = (), filters: Mapping[str, str] | None = None
    ) -> Answer:
        return Answer("", (), 0.1, False, True, "test")

    async def ready(self) -> bool:
        return True


async def test_offer_then_yes_by_email_opens_a_ticket_and_a_spoof_does_not(
    conversations: ConversationStore, outbox: Outbox, make_service: ServiceFactory
) -> None:
    escalation = make_service()
    bot = ConversationService(AbstainingKnowledge(), conversations, escalation)
    [offer_reply] = await bot.handle(email_msg(1, text="Can I get a refund after 60 days?"))
    assert offer_reply.outcome is Outcome.ABSTAINED
    offer: Action = next(a for a in offer_reply.actions if a.kind is ActionKind.OFFER_TICKET)
    message_id = offer_message_id(offer.value, "Support <help@shop.example>")  # what the email channel sends

    [spoofed] = await bot.handle(
        email_msg(2, sender="mallory@evil.example", text="yes", metadata={"in_reply_to": message_id})
    )
    assert spoofed.outcome is not Outcome.HANDOFF
    assert await escalation.list_tickets() == []

    [confirmed] = await bot.handle(email_msg(3, text="Yes please", metadata={"in_reply_to": message_id}))
    assert confirmed.outcome is Outcome.HANDOFF and "#1" in confirmed.text
    [ticket] = await escalation.list_tickets()
    assert ticket.requester == "ann@customer.example" and ticket.channel == "email"
    preview = await escalation.preview(offer.value)
    assert "Can I get a refund after 60 days?" in preview.summary


@pytest.mark.slow  # the embedding model
def sqlite_bot(db: Database, answer: str, intent: EmbeddingIntentClassifier) -> ConversationService:
    """The conversation service with escalation on SQLite (the backend does not matter to reading intent)."""
    clock = ManualClock()
    outbox = Outbox(db, clock)
    conversations = ConversationStore(db, clock, outbox)
    escalation = EscalationService(
        db, clock, outbox, conversations, InternalBackend(db, clock), escalation_config(make_settings())
    )
    return ConversationService(ScriptedKnowledge({"": (answer, 0.9)}), conversations, escalation, intent=intent)


async def test_a_complaint_gets_the_answer_and_a_ticket_offer_and_a_look_alike_only_the_answer(
    sqlite_db: Database, intent_classifier: EmbeddingIntentClassifier
) -> None:
    bot = sqlite_bot(sqlite_db, "Duplicate charges are refunded within 5 days [1].", intent_classifier)
    [complaint] = await bot.handle(slack_msg(1, text="You charged my card twice this month. Refund me now!"))
    assert complaint.outcome is Outcome.ANSWERED_OFFER and complaint.text.startswith("Duplicate charges")
    assert ActionKind.OFFER_TICKET in {a.kind for a in complaint.actions}
    [question] = await bot.handle(slack_msg(2, text="How do I add a person to my team?"))
    assert question.outcome is Outcome.ANSWERED
    assert ActionKind.OFFER_TICKET not in {a.kind for a in question.actions}


@pytest.mark.slow  # the embedding model
async def test_by_email_a_person_request_with_agents_notified_still_offers_a_ticket(
    sqlite_db: Database, intent_classifier: EmbeddingIntentClassifier
) -> None:
    bot = sqlite_bot(sqlite_db, "Refunds take 5 days [1].", intent_classifier)
    [reply] = await bot.handle(email_msg(1, text="Could a human being look at my refund please?"))
    assert reply.outcome is Outcome.HANDOFF
    assert reply.text == f"Refunds take 5 days [1].\n\n{for_customers.HANDOFF}"  # the agents' channel was notified
    assert [a.kind for a in reply.actions] == [ActionKind.OFFER_TICKET] and reply.citations
