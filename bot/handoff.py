"""Handing a conversation to a person: the one way both a typed request ("can I talk to a human?") and a click
("Talk to a person") take, so the two never drift apart."""

from __future__ import annotations

from bot import metrics
from bot.messages import Channel
from bot.ports import Escalation
from bot.strings import for_customers


async def hand_off(
    escalation: Escalation | None, channel: Channel, conversation_key: str, requester: str, summary: str
) -> str:
    """Ask a person to take over the conversation (the agents are notified once per round, however often this is
    called) and return what to tell the asker. Without escalation, says so instead of promising a person."""
    if escalation is None:
        return for_customers.NO_ESCALATION
    await escalation.hand_off(channel, conversation_key, requester, summary)
    metrics.ESCALATIONS.labels(channel.value).inc()
    return for_customers.HANDOFF
