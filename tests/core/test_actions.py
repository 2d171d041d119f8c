"""ActionService: clicks decided by the core, replies queued with the click's settlement, errors never leaked; and the
codec keeps clicks and the new reply fields (and reads rows written before them)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.actions import ActionPolicy, ActionService, InboundRouter
from bot.messages import (
    ActionKind,
    Channel,
    InboundAction,
    InboundMessage,
    Outcome,
    Reply,
    TicketRef,
)
from bot.ports import ActionPreview
from bot.store.codec import message_from_json, message_to_json, reply_from_json, reply_to_json
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.feedback import FeedbackStore
from bot.store.ledger import InboundLedger
from bot.store.outbox import Outbox
from tests.conftest import ManualClock

AT = datetime(2026, 11, 16, 9, tzinfo=UTC)


class BrokenEscalation:
    """An Escalation port whose backend is down, with internals in its error text."""

    async def propose_ticket(self, msg: InboundMessage, reason: str) -> ActionPreview:
        raise RuntimeError("zendesk said 502 with token=abc123-secret")

    async def preview(self, token: str) -> ActionPreview:
        raise RuntimeError("zendesk said 502 with token=abc123-secret")

    async def confirm(self, token: str, actor: str) -> TicketRef:
        raise RuntimeError("zendesk said 502 with token=abc123-secret")

    async def cancel(self, token: str, actor: str) -> None:
        raise RuntimeError("zendesk said 502 with token=abc123-secret")

    async def confirm_by_reply(self, msg: InboundMessage) -> TicketRef | None:
        return None

    async def hand_off(self, channel: Channel, conversation_key: str, requester: str, summary: str) -> None:
        raise RuntimeError("zendesk said 502 with token=abc123-secret")

    async def claim(self, channel: Channel, conversation_key: str, agent: str) -> None:
        raise RuntimeError("zendesk said 502 with token=abc123-secret")

    async def resolve(self, channel: Channel, conversation_key: str, agent: str) -> None:
        raise RuntimeError("zendesk said 502 with token=abc123-secret")


class EchoHandler:
    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []

    async def handle(self, msg: InboundMessage) -> list[Reply]:
        self.seen.append(msg.message_id)
        return []


def _click(kind: ActionKind, value: str, *, sender: str = "U1", n: int = 1) -> InboundMessage:
    return InboundMessage(
        Channel.SLACK,
        "C1:100.1",
        f"action:200.{n}:{sender}:supportbot_{kind.value}",
        sender,
        "",
        AT,
        action=InboundAction(kind, value, message_ref="100.5"),
    )


async def test_an_internal_error_becomes_a_private_apology_with_a_reference(db: Database, clock: ManualClock) -> None:
    outbox = Outbox(db, clock)
    conversations = ConversationStore(db, clock, outbox)
    ledger = InboundLedger(db, clock)
    service = ActionService(conversations, FeedbackStore(db, clock), BrokenEscalation(), ActionPolicy())
    msg = _click(ActionKind.CONFIRM, "token")
    await ledger.record(msg)
    [reply] = await service.handle(msg)
    assert reply.outcome is Outcome.FAILED and reply.visible_to == "U1" and reply.reference_id
    assert reply.reference_id in reply.text and "zendesk" not in reply.text and "secret" not in reply.text
    assert [i.reply for i in await outbox.claim_due()] == [reply]  # queued with the click's settlement
    assert await ledger.count_by_status() == {"answered": 1}
    assert await conversations.history(Channel.SLACK, "C1:100.1") == []  # a click is not a turn


async def test_feedback_is_stored_and_thanked_privately(db: Database, clock: ManualClock) -> None:
    outbox = Outbox(db, clock)
    feedback = FeedbackStore(db, clock)
    service = ActionService(ConversationStore(db, clock, outbox), feedback, None)
    [reply] = await service.handle(_click(ActionKind.FEEDBACK_UP, "slack:C1:100.1:0"))
    assert reply.visible_to == "U1" and reply.text.startswith("Thanks")
    assert await feedback.counts(AT, AT.replace(hour=10)) == (1, 0)


async def test_the_router_sends_clicks_to_actions_and_questions_to_the_conversation() -> None:
    conversation, actions = EchoHandler("conversation"), EchoHandler("actions")
    router = InboundRouter(conversation, actions)
    question = InboundMessage(Channel.SLACK, "C1:1.1", "C1:1.1", "U1", "hello?", AT)
    await router.handle(question)
    await router.handle(_click(ActionKind.FEEDBACK_DOWN, "k"))
    assert conversation.seen == ["C1:1.1"] and actions.seen == [_click(ActionKind.FEEDBACK_DOWN, "k").message_id]


def test_codec_round_trips_clicks_and_reply_kinds_and_reads_old_rows() -> None:
    msg = InboundMessage(
        Channel.SLACK,
        "C1:1.1",
        "action:1",
        "U1",
        "",
        AT,
        action=InboundAction(ActionKind.CLAIM, "slack|C1:1.1", "1.2", in_agents_channel=True),
    )
    assert message_from_json(message_to_json(msg)) == msg
    reply = Reply(
        Channel.SLACK, "C1:1.1", "action:1", "hi", Outcome.ANSWERED, "k", visible_to="U1", replaces="1.2", plain=True
    )
    assert reply_from_json(reply_to_json(reply)) == reply
    old_reply = {k: v for k, v in reply_to_json(reply).items() if k not in ("visible_to", "replaces", "plain")}
    assert reply_from_json(old_reply) == Reply(Channel.SLACK, "C1:1.1", "action:1", "hi", Outcome.ANSWERED, "k")
    old_msg = message_to_json(msg)
    del old_msg["action"]
    assert message_from_json(old_msg).action is None
