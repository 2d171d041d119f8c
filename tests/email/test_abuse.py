"""Abuse through the mailbox: making us mail a third party, and reading another customer's conversation."""

from __future__ import annotations

from collections import Counter

import pytest

from app.build import build_email, build_service
from app.settings import Settings
from app.wiring import Wiring
from bot.messages import Channel, Outcome, Reply
from channels.email import EmailChannel
from tests.doubles import ScriptedKnowledge
from tests.email.conftest import SUPPORT, SmtpServer, customer_email
from tests.email.dovecot import DovecotServer

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier


def raw_mail(n: int, from_: str, *headers: str, body: str = "How do I restore a deleted file?") -> bytes:
    lines = [
        f"From: {from_}",
        f"To: {SUPPORT}",
        f"Subject: Question {n}",
        f"Message-ID: <a{n}@example.org>",
        "Date: Tue, 10 Nov 2026 09:15:00 +0000",
        "Content-Type: text/plain; charset=utf-8",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n" + body + "\r\n").encode()


async def settle(services: Wiring, channel: EmailChannel) -> int:
    accepted = await channel.poll_once()
    await services.pipeline.drain()
    await services.dispatcher.flush_once()
    return accepted


def recipients(smtp: SmtpServer) -> Counter[str]:
    return Counter(str(m["To"]) for m in smtp.handler.messages)


async def test_a_reply_to_naming_a_third_party_is_ignored(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    dovecot.append([raw_mail(i, f"spam{i}@evil.example", "Reply-To: victim@third.example") for i in range(8)])
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    try:
        await settle(services, channel)
        assert recipients(smtp) == Counter({f"spam{i}@evil.example": 1 for i in range(8)})  # From, never the victim
    finally:
        await channel.stop()


async def test_an_aligned_reply_to_is_answered_but_limited_per_recipient(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    dovecot.append([raw_mail(i, f"user{i}@corp.example", "Reply-To: helpdesk@corp.example") for i in range(8)])
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    try:
        assert await settle(services, channel) == services.settings.email_replies_per_sender_per_hour
        assert recipients(smtp) == Counter({"helpdesk@corp.example": 5})
        now = services.clock.now()
        assert await services.events.counts(now.replace(year=2000), now.replace(year=2100)) == {"throttled": 3}
    finally:
        await channel.stop()


async def test_a_line_break_hidden_in_the_display_name_gets_no_answer(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    hostile = raw_mail(1, "=?utf-8?q?x=0D=0ABcc:_victim@bank.example?= <attacker@evil.example>")
    dovecot.append([hostile, customer_email(2)])
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    try:
        assert await settle(services, channel) == 1
        assert recipients(smtp) == Counter({"customer2@example.org": 1})
        assert all("bank.example" not in str(m) for m in smtp.handler.messages)
        with dovecot.client() as imap:
            assert imap.select_folder("Quarantine")[b"EXISTS"] == 1
    finally:
        await channel.stop()


async def test_quoting_another_customers_message_id_starts_a_conversation_of_ones_own(
    settings: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    knowledge = ScriptedKnowledge({"": ("Here is what our guide says [1].", 0.9)})
    services = await build_service(settings, knowledge=knowledge, with_escalation=False)
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    try:
        dovecot.append(customer_email(1, body="My invoice 4711 for ACME GmbH is wrong, please fix my backups"))
        await settle(services, channel)
        [answer] = smtp.handler.messages
        ours = str(answer["Message-ID"])
        assert "q1" not in ours  # our id is random, not derived from the customer's

        # Mallory knows (or guesses) the customer's Message-ID, and even saw our answer's id.
        dovecot.append(
            [
                raw_mail(2, "mallory@evil.example", "In-Reply-To: <q1@example.org>", "References: <q1@example.org>"),
                raw_mail(3, "mallory@evil.example", f"In-Reply-To: {ours}", f"References: <q1@example.org> {ours}"),
            ]
        )
        await settle(services, channel)
        assert len(await services.conversations.history(Channel.EMAIL, "<q1@example.org>")) == 2  # untouched
        assert len(await services.conversations.history(Channel.EMAIL, "<a2@example.org>")) == 2
        assert len(await services.conversations.history(Channel.EMAIL, "<a3@example.org>")) == 2
        histories = [history for question, history in knowledge.asked if "restore" in question]
        assert len(histories) == 2 and all(not any("4711" in t.text for t in h) for h in histories)

        # The customer's own reply to our answer still joins their conversation.
        dovecot.append(customer_email(4, sender="customer1@example.org", in_reply_to=ours))
        await settle(services, channel)
        assert len(await services.conversations.history(Channel.EMAIL, "<q1@example.org>")) == 4
        assert any("4711" in t.text for t in knowledge.asked[-1][1])
    finally:
        await channel.stop()
        await services.pipeline.drain()
        await services.db.dispose()


async def test_a_resend_reuses_the_reserved_random_message_id(services: Wiring, smtp: SmtpServer) -> None:
    reply = Reply(
        Channel.EMAIL, "<q1@example.org>", "<q1@example.org>", "Answer", Outcome.ANSWERED, "email:<q1>:0",
        recipient="customer1@example.org", subject="Question 1",
    )  # fmt: skip
    await services.outbox.enqueue(reply)
    channel = build_email(services)
    first = await channel.sender.send(reply)
    again = await channel.sender.send(reply)  # the process died before marking it sent, and sends it again
    assert first == again and first.startswith("<reply-")
    assert [str(m["Message-ID"]) for m in smtp.handler.messages] == [first, first]


async def test_a_ticket_offer_is_confirmed_by_its_requesters_reply_and_not_by_a_strangers(
    settings: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    services = await build_service(settings, knowledge=ScriptedKnowledge({}), with_escalation=True)
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    try:
        dovecot.append(customer_email(1, body="Can I get a refund after 60 days?"))
        await settle(services, channel)
        [offer] = smtp.handler.messages
        offer_id = str(offer["Message-ID"])
        assert offer_id.startswith("<offer-")

        dovecot.append(raw_mail(2, "mallory@evil.example", f"In-Reply-To: {offer_id}", body="yes"))
        await settle(services, channel)
        assert services.escalation is not None
        assert await services.escalation.list_tickets() == []  # type: ignore[attr-defined]

        dovecot.append(customer_email(3, sender="customer1@example.org", in_reply_to=offer_id, body="Yes please"))
        await settle(services, channel)
        [ticket] = await services.escalation.list_tickets()  # type: ignore[attr-defined]
        assert ticket.requester == "customer1@example.org"
        assert "#1" in smtp.handler.messages[-1].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    finally:
        await channel.stop()
        await services.pipeline.drain()
        await services.db.dispose()
