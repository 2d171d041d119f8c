"""ConversationService: guards, decisions, history, traces, and failures that never leak exception text."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from bot.conversation import ConversationService, Policy
from bot.intent import wants_a_person
from bot.messages import ActionKind, Channel, InboundMessage, Outcome
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.ledger import InboundLedger
from bot.store.outbox import Outbox
from bot.store.tables import TurnRow
from tests.conftest import ManualClock
from tests.doubles import ScriptedKnowledge


def _msg(text: str, n: int = 1, key: str = "C1:100.1") -> InboundMessage:
    return InboundMessage(Channel.SLACK, key, f"C1:{n}", "U1", text, datetime(2026, 11, 16, 9, tzinfo=UTC))


def _service(
    db: Database, clock: ManualClock, knowledge: ScriptedKnowledge
) -> tuple[ConversationService, ConversationStore, Outbox]:
    outbox = Outbox(db, clock)
    store = ConversationStore(db, clock, outbox)
    return ConversationService(knowledge, store, None, Policy(max_chars=100, low_confidence=0.5)), store, outbox


async def test_answer_with_sources_feedback_and_trace(db: Database, clock: ManualClock) -> None:
    knowledge = ScriptedKnowledge()
    service, _store, outbox = _service(db, clock, knowledge)
    ledger = InboundLedger(db, clock)
    msg = _msg("How often does backup run?")
    await ledger.record(msg)
    [reply] = await service.handle(msg)
    assert reply.outcome is Outcome.ANSWERED
    assert reply.citations[0].url == "https://help.example.com/backups"
    kinds = [a.kind for a in reply.actions]
    assert ActionKind.FEEDBACK_UP in kinds and ActionKind.OFFER_TICKET not in kinds
    assert (await ledger.count_by_status()) == {"answered": 1}
    items = await outbox.claim_due()
    assert [i.reply.idempotency_key for i in items] == [reply.idempotency_key]
    async with db.sessions() as session:
        bot_turn = (await session.execute(select(TurnRow).where(TurnRow.role == "bot"))).scalar_one()
    assert bot_turn.outcome == "answered" and bot_turn.input_tokens == 10 and bot_turn.cost_usd == 0.001
    assert set(bot_turn.stage_ms) >= {"retrieve", "generate", "total"}


async def test_history_is_passed_for_follow_ups(db: Database, clock: ManualClock) -> None:
    knowledge = ScriptedKnowledge()
    service, _store, _outbox = _service(db, clock, knowledge)
    await service.handle(_msg("How often does backup run?", 1))
    await service.handle(_msg("and on weekends, backup too?", 2))
    _question, history = knowledge.asked[1]
    assert [t.role.value for t in history] == ["customer", "bot"]
    assert history[0].text == "How often does backup run?"


async def test_abstain_and_low_confidence(db: Database, clock: ManualClock) -> None:
    knowledge = ScriptedKnowledge({"backup": ("Maybe hourly [1].", 0.4)})
    service, _store, _outbox = _service(db, clock, knowledge)
    [unsure] = await service.handle(_msg("backup schedule?", 1))
    assert unsure.outcome is Outcome.ANSWERED_OFFER and unsure.low_confidence
    [abstain] = await service.handle(_msg("Do you sell pizza?", 2, key="C1:200.1"))
    assert abstain.outcome is Outcome.ABSTAINED and "don't know" in abstain.text and abstain.citations == ()


async def test_guards(db: Database, clock: ManualClock) -> None:
    knowledge = ScriptedKnowledge()
    service, store, _outbox = _service(db, clock, knowledge)
    [empty] = await service.handle(_msg("   ", 1))
    [long] = await service.handle(_msg("x" * 101, 2))
    assert empty.outcome is Outcome.REJECTED and long.outcome is Outcome.REJECTED
    await store.record_human_message(Channel.SLACK, "C1:100.1", "UAGENT", "I'll take this", "C1:9")
    assert await service.handle(_msg("backup?", 3)) == []
    assert knowledge.asked == []


async def test_failure_apologises_without_exception_text(db: Database, clock: ManualClock) -> None:
    service, _store, _outbox = _service(db, clock, ScriptedKnowledge(fail=True))
    [reply] = await service.handle(_msg("backup?"))
    assert reply.outcome is Outcome.FAILED and reply.reference_id in reply.text
    assert "hunter2" not in reply.text and "RuntimeError" not in reply.text


def test_wants_a_person() -> None:
    assert wants_a_person("Can I talk to a human please")
    assert wants_a_person("I want to speak with someone")
    assert wants_a_person("live agent")
    assert not wants_a_person("How do I add a person to my team?")
