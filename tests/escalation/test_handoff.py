"""Hand-off to people: the agents' channel post, claim (the bot goes quiet), resolve, and the tickets listing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.errors import InvalidTransition, NotAllowed
from bot.messages import ActionKind, Channel, Outcome, case_value, parse_case
from bot.store.conversations import ConversationStore
from bot.store.outbox import Outbox
from escalation import format_tickets
from tests.conftest import ManualClock
from tests.escalation.conftest import AGENT, ServiceFactory, email_msg, make_settings, slack_msg

EMAIL_KEY = "<root-1@customer.example>"


async def test_hand_off_posts_the_case_to_the_agents_channel_once(
    outbox: Outbox, conversations: ConversationStore, make_service: ServiceFactory
) -> None:
    msg = email_msg(text="How do refunds work?")
    await conversations.record_turn(msg, None, [])
    service = make_service()
    for _ in range(3):  # a retried inbound message, a second request: one post
        await service.hand_off(Channel.EMAIL, EMAIL_KEY, "ann@customer.example", "I want to talk to a person")
    [item] = await outbox.claim_due()
    post = item.reply
    assert post.channel is Channel.SLACK and post.conversation_key == "CAGENTS" and post.outcome is Outcome.HANDOFF
    assert "ann@customer.example asked for a person" in post.text
    assert "How do refunds work?" in post.text and "I want to talk to a person" in post.text
    assert f"Email thread: {EMAIL_KEY}" in post.text
    assert [(a.kind, a.value) for a in post.actions] == [
        (ActionKind.CLAIM, f"email|{EMAIL_KEY}"),
        (ActionKind.RESOLVE, f"email|{EMAIL_KEY}"),
    ]
    state = await conversations.get(Channel.EMAIL, EMAIL_KEY)
    assert state is not None and state.escalated_at is not None and state.links["email_thread"] == EMAIL_KEY
    assert state.state == "bot"  # until a person claims it, the bot keeps helping


async def test_claim_silences_the_bot_and_resolve_brings_it_back(
    outbox: Outbox, conversations: ConversationStore, make_service: ServiceFactory
) -> None:
    service = make_service()
    preview = await service.propose_ticket(slack_msg(), "abstained")
    await conversations.record_turn(slack_msg(), None, [])
    ref = await service.confirm(preview.token, "UREQ")
    key = "C1:1700000000.000100"

    with pytest.raises(NotAllowed):
        await service.claim(Channel.SLACK, key, "USTRANGER")
    await service.claim(Channel.SLACK, key, AGENT)
    await service.claim(Channel.SLACK, key, AGENT)  # a double click
    state = await conversations.get(Channel.SLACK, key)
    assert state is not None and state.human_on_case and state.assignee == AGENT
    [ticket] = await service.list_tickets()
    assert ticket.state == "claimed" and ticket.assignee == AGENT and ticket.reference == ref.reference

    await service.resolve(Channel.SLACK, key, AGENT)
    await service.resolve(Channel.SLACK, key, AGENT)
    state = await conversations.get(Channel.SLACK, key)
    assert state is not None and state.state == "resolved" and not state.human_on_case
    [ticket] = await service.list_tickets()
    assert ticket.state == "resolved" and ticket.resolved_at is not None


async def test_a_second_agent_cannot_take_a_claimed_case(make_service: ServiceFactory) -> None:
    service = make_service(settings=make_settings(slack_agent_users=["UA", "UB"]))
    await service.claim(Channel.SLACK, "C1:1.1", "UA")
    with pytest.raises(InvalidTransition, match="already claimed by UA"):
        await service.claim(Channel.SLACK, "C1:1.1", "UB")


async def test_a_new_hand_off_after_resolve_posts_again(outbox: Outbox, make_service: ServiceFactory) -> None:
    service = make_service()
    await service.hand_off(Channel.SLACK, "C1:1.1", "UREQ", "talk to a human please")
    await service.claim(Channel.SLACK, "C1:1.1", AGENT)
    await service.resolve(Channel.SLACK, "C1:1.1", AGENT)
    await service.hand_off(Channel.SLACK, "C1:1.1", "UREQ", "talk to a human again")
    assert len(await outbox.claim_due()) == 2


async def test_confirmed_ticket_is_posted_with_its_links(
    outbox: Outbox, conversations: ConversationStore, make_service: ServiceFactory
) -> None:
    service = make_service()
    msg = slack_msg()
    preview = await service.propose_ticket(msg, "abstained")
    assert preview.subject == "The export button does nothing"
    assert preview.conversation_link.startswith("https://acme.slack.com/")
    await conversations.record_turn(msg, None, [])
    ref = await service.confirm(preview.token, "UREQ")
    await service.confirm(preview.token, "UREQ")
    [item] = await outbox.claim_due()
    assert item.reply.conversation_key == "CAGENTS"
    assert f"Ticket {ref.reference} opened for UREQ (slack)" in item.reply.text
    assert "Conversation: https://acme.slack.com/archives/C1/p1700000000000100" in item.reply.text
    state = await conversations.get(Channel.SLACK, msg.conversation_key)
    assert state is not None and state.escalated_at is not None and state.links["ticket"] == ref.reference


async def test_without_an_agents_channel_the_escalation_is_still_recorded(
    outbox: Outbox, conversations: ConversationStore, make_service: ServiceFactory
) -> None:
    service = make_service(settings=make_settings(slack_escalation_channel=""))
    await service.hand_off(Channel.EMAIL, EMAIL_KEY, "ann@customer.example", "a person please")
    preview = await service.propose_ticket(email_msg(), "abstained")
    await service.confirm(preview.token, "ann@customer.example")
    assert await outbox.claim_due() == []
    state = await conversations.get(Channel.EMAIL, EMAIL_KEY)
    assert state is not None and state.escalated_at is not None and state.links["ticket"] == "#1"


async def test_format_tickets_lists_state_reference_requester_channel_age(
    clock: ManualClock, make_service: ServiceFactory
) -> None:
    service = make_service()
    preview = await service.propose_ticket(email_msg(), "abstained")
    await service.confirm(preview.token, "ann@customer.example")
    table = format_tickets(await service.list_tickets(), now=clock.now() + timedelta(hours=3, minutes=5))
    header, row = table.splitlines()
    assert header.split() == ["ID", "STATE", "REFERENCE", "REQUESTER", "CHANNEL", "AGE"]
    assert row.split() == ["1", "open", "internal", "#1", "ann@customer.example", "email", "3h", "5m"]
    assert format_tickets([]) == "No tickets yet."


def test_case_values_round_trip() -> None:
    assert parse_case(case_value(Channel.EMAIL, "<a|b@c>")) == (Channel.EMAIL, "<a|b@c>")
    with pytest.raises(ValueError):
        parse_case("nonsense")
