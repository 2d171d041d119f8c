"""Escalation seen through the conversation service and the email channel's offer Message-ID (the contract)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.conversation import ConversationService
from bot.messages import Action, ActionKind, Answer, Outcome, Turn
from bot.offers import offer_message_id
from bot.store.conversations import ConversationStore
from bot.store.outbox import Outbox
from tests.escalation.conftest import ServiceFactory, email_msg


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
