"""End to end through the test bot: the real pipeline, store, escalation and outbox (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.messages import ActionKind, Channel, Outcome
from bot.strings import for_customers
from tests.conftest import ManualClock
from tests.doubles import ScriptedKnowledge
from tests.testbot import TestBot, running_bot


async def test_answer_is_delivered_once_with_sources(bot: TestBot) -> None:
    assert await bot.push("How often does the backup run?", keys=("ext:1",))
    reply = await bot.pop()
    assert reply.outcome is Outcome.ANSWERED
    assert reply.text == "Backups run every hour [1]."
    assert [c.url for c in reply.citations] == ["https://help.example.com/backups"]
    assert not await bot.push("How often does the backup run?", keys=("ext:1",))  # same external key: dropped
    assert bot.empty()


async def test_unanswerable_question_abstains_and_offers_a_ticket(bot: TestBot) -> None:
    await bot.push("What is the airspeed of an unladen swallow?", channel=Channel.SLACK, sender="U1")
    reply = await bot.pop()
    assert reply.outcome is Outcome.ABSTAINED
    assert not reply.citations
    assert ActionKind.OFFER_TICKET in [a.kind for a in reply.actions]


async def test_follow_up_sees_the_history(bot: TestBot) -> None:
    await bot.push("How often does the backup run?", conversation="thread-1")
    await bot.pop()
    await bot.push("And the backup on weekends?", conversation="thread-1")
    await bot.pop()
    assert bot.services.conversations is not None
    history = await bot.services.conversations.history(Channel.API, "thread-1")
    assert [t.text for t in history][:2] == ["How often does the backup run?", "Backups run every hour [1]."]


PROMISES = ("they'll reply", "will reply", "a person will")


@pytest.mark.parametrize("channel", [Channel.API, Channel.EMAIL, Channel.SLACK, Channel.CLI])
async def test_without_agents_nobody_is_promised_a_person(bot: TestBot, channel: Channel) -> None:
    """No agents' channel configured: asking for a person gets an honest answer and a ticket offer, never a
    promise that someone will reply (on every channel)."""
    await bot.push("Can I talk to a human please?", channel=channel, sender="ann@example.org")
    reply = await bot.pop()
    assert reply.outcome is Outcome.HANDOFF
    assert not any(p in reply.text.lower() for p in PROMISES), reply.text
    assert [a.kind for a in reply.actions] == [ActionKind.OFFER_TICKET]


async def test_with_an_agents_channel_the_agents_are_told_and_the_customer_too(
    db_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    async with running_bot(
        db_url, tmp_path, knowledge=ScriptedKnowledge(), clock=clock, slack_escalation_channel="CAGENTS"
    ) as agents_bot:
        await agents_bot.push("Can I talk to a human please?", channel=Channel.EMAIL, sender="ann@example.org")
        replies = [await agents_bot.pop(), await agents_bot.pop()]
    to_customer = next(r for r in replies if r.channel is Channel.EMAIL)
    to_agents = next(r for r in replies if r.channel is Channel.SLACK)
    assert to_customer.text == for_customers.HANDOFF and to_agents.conversation_key.startswith("CAGENTS")
