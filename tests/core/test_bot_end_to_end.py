"""End to end through the test bot: the real pipeline, store, escalation and outbox (SQLite and PostgreSQL)."""

from __future__ import annotations

from bot.messages import ActionKind, Channel, Outcome
from tests.testbot import TestBot


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
