"""Abuse through the mailbox: making us mail a third party, and reading another customer's conversation."""

from __future__ import annotations

from collections import Counter

from bot.app import build_email
from bot.messages import Channel
from bot.services import Services
from channels.email import EmailChannel
from tests.email.conftest import SUPPORT, SmtpServer, customer_email
from tests.email.dovecot import DovecotServer


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


async def settle(services: Services, channel: EmailChannel) -> int:
    accepted = await channel.poll_once()
    await services.pipeline.drain()
    await services.dispatcher.flush_once()
    return accepted


def recipients(smtp: SmtpServer) -> Counter[str]:
    return Counter(str(m["To"]) for m in smtp.handler.messages)


async def test_a_reply_to_naming_a_third_party_is_ignored(
    services: Services, smtp: SmtpServer, dovecot: DovecotServer
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
    services: Services, smtp: SmtpServer, dovecot: DovecotServer
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
    services: Services, smtp: SmtpServer, dovecot: DovecotServer
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
