"""Handing a conversation to a person: the one way both a typed request ("can I talk to a human?") and a click
("Talk to a person") take, so the two never drift apart.

A promise is only made when it will be kept: the customer hears "a person will reply here" only when the agents
were notified (an agents' channel is configured). Otherwise they are told so honestly and offered a ticket, which
someone will work on.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from bot import metrics
from bot.messages import Action, ActionKind, InboundMessage
from bot.ports import Escalation
from bot.strings import for_customers


@dataclass(frozen=True, slots=True)
class HandOff:
    """What to tell the asker, and the ticket offer to attach when no agent could be notified."""

    text: str
    offer: Action | None = None


async def hand_off(
    escalation: Escalation | None, msg: InboundMessage, conversation_key: str, requester: str, summary: str
) -> HandOff:
    """Ask a person to take over the conversation (the agents are notified once per round, however often this is
    called). Without escalation, or without anyone to notify, no reply is promised."""
    if escalation is None:
        return HandOff(for_customers.NO_ESCALATION)
    notified = await escalation.hand_off(msg.channel, conversation_key, requester, summary)
    metrics.ESCALATIONS.labels(msg.channel.value).inc()
    if notified:
        return HandOff(for_customers.HANDOFF)
    preview = await escalation.propose_ticket(
        dataclasses.replace(msg, conversation_key=conversation_key), "asked for a person"
    )
    return HandOff(
        for_customers.NO_AGENT_OFFER_TICKET, Action(ActionKind.OFFER_TICKET, for_customers.OFFER_TICKET, preview.token)
    )
