"""The email channel against a real Dovecot (IMAP) and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import ssl
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest

from app.build import build_email, build_service
from app.settings import Settings
from app.wiring import Wiring
from bot.messages import Channel
from channels.email import EmailChannel
from tests.doubles import ScriptedKnowledge
from tests.email.conftest import SUPPORT, SmtpServer, customer_email, start_smtp
from tests.email.dovecot import DovecotServer

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

CORPUS = Path(__file__).parent.parent / "fixtures" / "email" / "corpus"


async def settle(services: Wiring, channel: EmailChannel) -> int:
    """One poll, then wait for the answers and deliver them."""
    accepted = await channel.poll_once()
    await services.pipeline.drain()
    await services.dispatcher.flush_once()
    return accepted


def answers_by_parent(smtp: SmtpServer) -> Counter[str]:
    return Counter(str(m["In-Reply-To"]) for m in smtp.handler.messages)


async def test_customers_are_answered_once_in_their_thread(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    dovecot.append([customer_email(n) for n in range(1, 6)])
    dovecot.append(
        [(CORPUS / "14_ooo_auto_submitted.eml").read_bytes(), (CORPUS / "20_mailing_list_id.eml").read_bytes()]
    )
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)

    assert await settle(services, channel) == 5
    assert await settle(services, channel) == 0  # nothing new, nothing answered twice
    assert answers_by_parent(smtp) == Counter({f"<q{n}@example.org>": 1 for n in range(1, 6)})
    first = next(m for m in smtp.handler.messages if m["In-Reply-To"] == "<q1@example.org>")
    assert first["Subject"] == "Re: Question 1"
    assert first["To"] == "customer1@example.org"
    assert first["From"] == SUPPORT
    assert first["Auto-Submitted"] == "auto-replied"
    assert first["References"] == "<q1@example.org>"
    with dovecot.client("INBOX") as imap:
        assert len(imap.search(["UNSEEN"])) == 0  # everything marked \Seen after it was committed

    # The customer answers our reply: same conversation (found through OUR Message-ID), answered in thread.
    follow_up = customer_email(100, sender="customer1@example.org", in_reply_to=str(first["Message-ID"]))
    dovecot.append(follow_up)
    assert await settle(services, channel) == 1
    history = await services.conversations.history(Channel.EMAIL, "<q1@example.org>")
    assert len(history) == 4
    assert smtp.handler.messages[-1]["In-Reply-To"] == "<q100@example.org>"
    assert str(first["Message-ID"]) in str(smtp.handler.messages[-1]["References"])
    events = await services.events.counts(
        services.clock.now().replace(year=2000), services.clock.now().replace(year=2100)
    )
    assert events == {"auto_reply": 1, "list": 1}


async def test_same_subject_from_two_customers_stays_two_conversations(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    dovecot.append([customer_email(1, subject="Invoice"), customer_email(2, subject="Invoice")])
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    await settle(services, channel)
    assert len(await services.conversations.history(Channel.EMAIL, "<q1@example.org>")) == 2
    assert len(await services.conversations.history(Channel.EMAIL, "<q2@example.org>")) == 2


def autoresponder(dovecot: DovecotServer, style: str) -> tuple[list[int], object]:
    """An SMTP-side mailbox that answers every email we send it, straight back into the support inbox."""
    count = [0]

    def respond(msg: EmailMessage) -> None:
        count[0] += 1
        headers = {
            "rfc3834": "Auto-Submitted: auto-replied\r\nSubject: Automatic reply: {subject}",
            "subject": "Subject: Out of Office: {subject}",
            "naive": "Subject: {subject}",
        }[style].format(subject=msg["Subject"])
        raw = (
            f"From: {msg['To']}\r\nTo: {SUPPORT}\r\nMessage-ID: <auto{count[0]}-{style}@example.org>\r\n"
            f"In-Reply-To: {msg['Message-ID']}\r\nReferences: {msg['Message-ID']}\r\n{headers}\r\n"
            "Content-Type: text/plain\r\n\r\nThank you for your email. I will get back to you soon.\r\n"
        ).encode()
        dovecot.append(raw)

    return count, respond


async def test_auto_reply_ping_pong_stops_after_the_first_reply(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    for n, style in enumerate(["rfc3834", "subject"], start=1):
        _, respond = autoresponder(dovecot, style)
        smtp.handler.on_message = respond  # type: ignore[assignment]
        before = len(smtp.handler.messages)
        dovecot.append(customer_email(n))
        for _ in range(6):
            await settle(services, channel)
        assert len(smtp.handler.messages) - before == 1, style


async def test_a_naive_autoresponder_is_throttled_and_alerts(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    _, respond = autoresponder(dovecot, "naive")
    smtp.handler.on_message = respond  # type: ignore[assignment]
    dovecot.append(customer_email(1))
    for _ in range(15):
        await settle(services, channel)
    limit = services.settings.email_replies_per_sender_per_hour
    assert len(smtp.handler.messages) == limit  # then the throttle holds; the loop breaker fires on the flood
    events = await services.events.counts(
        services.clock.now().replace(year=2000), services.clock.now().replace(year=2100)
    )
    assert events.get("throttled", 0) + events.get("loop", 0) >= 1


async def test_uidvalidity_reset_mid_run_answers_nothing_twice_and_skips_nothing(
    settings: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    settings = settings.model_copy(update={"imap_folder": "Support"})
    services = await build_service(
        settings, knowledge=ScriptedKnowledge({"": ("Answer [1].", 0.9)}), with_escalation=False
    )
    try:
        channel = build_email(services)
        services.dispatcher.register(Channel.EMAIL, channel.sender)
        dovecot.append([customer_email(n) for n in range(1, 6)], folder="Support")
        assert await settle(services, channel) == 5
        dovecot.append([customer_email(n) for n in (6, 7)], folder="Support")  # arrive, not yet read
        with dovecot.client() as imap:
            old = imap.select_folder("Support")[b"UIDVALIDITY"]
            imap.unselect_folder()
            imap.delete_folder("Support")  # the server is restored from a backup: new UIDVALIDITY
        dovecot.append([customer_email(n) for n in range(1, 11)], folder="Support")
        with dovecot.client() as imap:
            assert imap.select_folder("Support")[b"UIDVALIDITY"] != old
        assert await settle(services, channel) == 5  # 6..10 are new; 1..5 are matched by Message-ID
        assert answers_by_parent(smtp) == Counter({f"<q{n}@example.org>": 1 for n in range(1, 11)})
    finally:
        await services.pipeline.drain()
        await services.db.dispose()


async def test_unreadable_and_oversized_mail_is_quarantined_and_the_mailbox_moves_on(
    settings: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    settings = settings.model_copy(update={"email_max_bytes": 4096})
    services = await build_service(
        settings, knowledge=ScriptedKnowledge({"": ("Answer [1].", 0.9)}), with_escalation=False
    )
    try:
        channel = build_email(services)
        services.dispatcher.register(Channel.EMAIL, channel.sender)
        huge = customer_email(2, body="x" * 10_000)
        dovecot.append(
            [
                (CORPUS / "31_garbage_no_headers.eml").read_bytes(),
                (CORPUS / "32_no_from.eml").read_bytes(),
                huge,
                customer_email(1),
            ]
        )
        assert await settle(services, channel) == 1
        with dovecot.client() as imap:
            assert imap.select_folder("Quarantine")[b"EXISTS"] == 3
            assert imap.select_folder("INBOX")[b"EXISTS"] == 1
        assert answers_by_parent(smtp) == Counter({"<q1@example.org>": 1})
        events = await services.events.counts(
            services.clock.now().replace(year=2000), services.clock.now().replace(year=2100)
        )
        assert events == {"quarantined": 3}
    finally:
        await services.pipeline.drain()
        await services.db.dispose()


async def test_move_done_action_and_lease_keeps_a_second_replica_out(
    settings: Settings, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    settings = settings.model_copy(update={"imap_done_action": "move"})
    services = await build_service(
        settings, knowledge=ScriptedKnowledge({"": ("Answer [1].", 0.9)}), with_escalation=False
    )
    try:
        first = build_email(services, holder="replica-a")
        second = build_email(services, holder="replica-b")
        services.dispatcher.register(Channel.EMAIL, first.sender)
        dovecot.append([customer_email(n) for n in range(1, 4)])
        assert await first.poll_once() == 3
        dovecot.append(customer_email(4))
        assert await second.poll_once() == 0  # replica-a holds the mailbox lease
        assert await first.poll_once() == 1
        await services.pipeline.drain()
        await services.dispatcher.flush_once()
        with dovecot.client() as imap:
            assert imap.select_folder("Processed")[b"EXISTS"] == 4
            assert imap.select_folder("INBOX")[b"EXISTS"] == 0
        await first.stop()
        await second.stop()
    finally:
        await services.pipeline.drain()
        await services.db.dispose()


async def test_idle_loop_answers_mail_that_arrives_while_running(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    services = services
    channel = build_email(services)
    await channel.start()
    services.dispatcher.start()
    try:
        await asyncio.sleep(0.2)
        dovecot.append(customer_email(1))
        for _ in range(200):
            if smtp.handler.messages:
                break
            await asyncio.sleep(0.1)
        assert answers_by_parent(smtp) == Counter({"<q1@example.org>": 1})
    finally:
        await channel.stop()
        await services.dispatcher.stop()


async def test_imaps_starttls_and_smtp_starttls(settings: Settings, dovecot: DovecotServer) -> None:
    tls = dovecot.ssl_context()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(dovecot.root / "cert.pem", dovecot.root / "key.pem")
    smtp = start_smtp(server_tls)
    try:
        for security, port in (("ssl", dovecot.imaps_port), ("starttls", dovecot.imap_port)):
            tls_settings = settings.model_copy(
                update={
                    "imap_security": security,
                    "imap_port": port,
                    "smtp_port": smtp.port,
                    "smtp_security": "starttls",
                    "database_url": settings.database_url.replace("bot.db", f"{security}.db"),
                    "imap_folder": security,
                }
            )
            services = await build_service(
                tls_settings, knowledge=ScriptedKnowledge({"": ("Answer [1].", 0.9)}), with_escalation=False
            )
            try:
                channel = build_email(services, imap_tls=tls, smtp_tls=tls)
                services.dispatcher.register(Channel.EMAIL, channel.sender)
                dovecot.append(customer_email(1 if security == "ssl" else 2), folder=security)
                assert await settle(services, channel) == 1
                await channel.stop()
            finally:
                await services.db.dispose()
        assert len(smtp.handler.messages) == 2
    finally:
        smtp.controller.stop()


async def test_a_fresh_database_answers_unread_mail_never_the_mailbox_history(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    with dovecot.client() as imap:
        for n in range(1, 4):  # history: read long ago, by people or another tool
            imap.append("INBOX", customer_email(n), flags=[b"\\Seen"])
    dovecot.append([customer_email(n) for n in (4, 5)])  # waiting for an answer
    with dovecot.client() as imap:
        imap.append("INBOX", customer_email(6), flags=[b"\\Seen"])  # read after the unread ones arrived
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    assert await settle(services, channel) == 3  # from the oldest unread on (4, 5, and 6 after it)
    assert set(answers_by_parent(smtp)) == {"<q4@example.org>", "<q5@example.org>", "<q6@example.org>"}
    dovecot.append(customer_email(7))
    assert await settle(services, channel) == 1


async def test_a_fresh_database_on_a_read_mailbox_starts_after_the_newest_mail(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    with dovecot.client() as imap:
        for n in range(1, 4):
            imap.append("INBOX", customer_email(n), flags=[b"\\Seen"])
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    assert await settle(services, channel) == 0 and not smtp.handler.messages
    dovecot.append(customer_email(9))
    assert await settle(services, channel) == 1
    assert set(answers_by_parent(smtp)) == {"<q9@example.org>"}
