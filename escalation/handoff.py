"""The agents' side of an escalation: the post in the agents' Slack channel, and the links on the conversation.

The post is a `Reply` into the outbox (so it is delivered exactly once, by any replica) addressed to the
channel `SLACK_ESCALATION_CHANNEL`, with Claim / Resolve actions whose value names the case:
`"<channel>|<conversation_key>"` (see `case_value` / `parse_case`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Action, ActionKind, Channel, Outcome, Reply, case_value, frozen_map
from bot.store.tables import ConversationRow
from bot.strings import for_agents

LINK_LABELS = {
    "permalink": "Conversation",
    "email_thread": "Email thread",
    "agents_thread": "Agents' thread",
    "ticket_url": "Ticket",
}


def conversation_links(channel: Channel, conversation_key: str, known: Mapping[str, Any]) -> dict[str, str]:
    """Links an agent needs to see the whole case: what the channel adapter stored, plus the email thread id."""
    links = {k: str(v) for k, v in known.items() if isinstance(v, str | int) and str(v)}
    if channel is Channel.EMAIL:
        links.setdefault("email_thread", conversation_key)
    return links


def agent_post(
    *,
    escalation_channel: str,
    idempotency_key: str,
    headline: str,
    summary: str,
    channel: Channel,
    conversation_key: str,
    links: Mapping[str, str],
) -> Reply:
    """The message for the agents' channel: what happened, the case summary, the links, Claim and Resolve."""
    lines = [headline, "", summary.strip()]
    link_lines = [f"{LINK_LABELS.get(name, name)}: {url}" for name, url in links.items() if name in LINK_LABELS]
    if link_lines:
        lines += ["", *link_lines]
    value = case_value(channel, conversation_key)
    return Reply(
        channel=Channel.SLACK,
        conversation_key=escalation_channel,
        in_reply_to="",
        text="\n".join(lines).strip()[:3500],
        outcome=Outcome.HANDOFF,
        idempotency_key=idempotency_key,
        actions=(
            Action(ActionKind.CLAIM, for_agents.CLAIM, value),
            Action(ActionKind.RESOLVE, for_agents.RESOLVE, value),
        ),
        metadata=frozen_map({"case": value}),
        plain=True,  # the summary quotes the customer: shown as is, never as Markdown or live links
    )


async def merge_links_in(
    session: AsyncSession, channel: Channel, conversation_key: str, links: Mapping[str, str], now: datetime
) -> dict[str, Any]:
    """Inside the caller's transaction: mark the conversation escalated and add `links`; returns all its links."""
    row = (
        await session.execute(
            select(ConversationRow).where(
                ConversationRow.channel == channel.value, ConversationRow.key == conversation_key
            )
        )
    ).scalar_one_or_none()
    if row is None:
        return dict(links)
    if row.escalated_at is None:
        row.escalated_at = now
    row.links = {**(row.links or {}), **links}
    row.updated_at = now
    return dict(row.links)
