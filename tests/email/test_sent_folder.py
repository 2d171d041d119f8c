"""Every reply is filed in the mailbox's Sent folder after SMTP took it, and a resend after a crash looks there by
Message-ID first: found, it is marked sent without a second SMTP delivery (real Dovecot, real SMTP server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest

from app.build import build_email, build_service
from app.wiring import Wiring
from bot.messages import Channel, Outcome, Reply
from channels.email import EmailChannel
from tests.conftest import ManualClock
from tests.doubles import ScriptedKnowledge
from tests.email.conftest import SmtpServer, email_settings
from tests.email.dovecot import DovecotServer

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

CUSTOMER = "customer1@example.org"


def reply(n: int = 1) -> Reply:
    return Reply(
        Channel.EMAIL,
        f"<q{n}@example.org>",
        f"<q{n}@example.org>",
        "Open Settings, then Backups.",
        Outcome.ANSWERED,
        f"email:<q{n}@example.org>:0",
        recipient=CUSTOMER,
        subject=f"Question {n}",
    )


class Mail:
    """The service's outbox and email channel on a manual clock, so a test can let a claim's lease run out."""

    def __init__(self, services: Wiring, channel: EmailChannel, clock: ManualClock) -> None:
        self.services, self.channel, self.clock = services, channel, clock

    async def crashed_mid_send(self, r: Reply, *, sent: bool) -> None:
        """The first process claimed `r`, maybe sent it (SMTP, then the Sent folder), and died before marking it."""
        await self.services.outbox.enqueue(r)
        [_item] = await self.services.outbox.claim_due()
        if sent:
            await self.channel.sender.send(r)
        self.clock.advance(self.services.settings.processing_lease_seconds + 1)


async def open_mail(dovecot: DovecotServer, smtp: SmtpServer, data_dir: Path, **overrides: Any) -> Mail:
    clock = ManualClock()
    settings = email_settings(dovecot, smtp.port, data_dir, **overrides)
    services = await build_service(settings, knowledge=ScriptedKnowledge(), clock=clock, with_escalation=False)
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    return Mail(services, channel, clock)


@pytest.fixture
async def mail(dovecot: DovecotServer, smtp: SmtpServer, tmp_path: Path) -> AsyncIterator[Mail]:
    m = await open_mail(dovecot, smtp, tmp_path)
    try:
        yield m
    finally:
        await m.channel.stop()
        await m.services.db.dispose()


def filed(dovecot: DovecotServer, folder: str) -> list[tuple[str, set[bytes]]]:
    """(Message-ID, flags) of every message in `folder`."""
    with dovecot.client() as imap:
        imap.select_folder(folder, readonly=True)
        found = imap.fetch(imap.search(["ALL"]), ["BODY.PEEK[]", "FLAGS"])
    return [
        (str(message_from_bytes(data[b"BODY[]"], policy=policy.default)["Message-ID"]), set(data[b"FLAGS"]))
        for data in found.values()
    ]


async def test_a_reply_is_filed_in_sent_and_a_resend_finds_it_there(
    mail: Mail, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    await mail.crashed_mid_send(reply(), sent=True)
    [delivered] = smtp.handler.messages
    [(message_id, flags)] = filed(dovecot, "Sent")  # created, as it was missing
    assert message_id == str(delivered["Message-ID"]) and b"\\Seen" in flags
    assert await mail.services.dispatcher.flush_once() == 1  # the resend: found in Sent, not mailed again
    assert len(smtp.handler.messages) == 1
    assert await mail.services.outbox.stats() == (0, 0.0, 0)
    [sent] = await mail.services.outbox.sent_for("<q1@example.org>")
    assert sent.idempotency_key == "email:<q1@example.org>:0"
    assert [mid for mid, _ in filed(dovecot, "Sent")] == [message_id]


async def test_a_resend_of_a_reply_that_never_went_out_is_mailed_once(
    mail: Mail, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    await mail.services.outbox.enqueue(reply(2))
    assert await mail.services.dispatcher.flush_once() == 1  # another reply is in Sent: it must not match
    await mail.crashed_mid_send(reply(), sent=False)
    assert await mail.services.dispatcher.flush_once() == 1
    assert sorted(str(m["Subject"]) for m in smtp.handler.messages) == ["Re: Question 1", "Re: Question 2"]
    assert len(filed(dovecot, "Sent")) == 2


async def test_the_folder_flagged_sent_or_the_configured_one(
    dovecot: DovecotServer, smtp: SmtpServer, tmp_path: Path
) -> None:
    dovecot.append([], folder="Outgoing")  # flagged \\Sent by the server (SPECIAL-USE in dovecot.py), not named so
    m = await open_mail(dovecot, smtp, tmp_path / "a")
    try:
        await m.crashed_mid_send(reply(), sent=True)
        assert await m.services.dispatcher.flush_once() == 1
    finally:
        await m.channel.stop()
        await m.services.db.dispose()
    assert len(smtp.handler.messages) == 1 and len(filed(dovecot, "Outgoing")) == 1
    with dovecot.client() as imap:
        assert not imap.folder_exists("Sent")

    # IMAP_SAVE_SENT=false (Gmail, Microsoft 365 file what SMTP sent): no APPEND, but IMAP_SENT_FOLDER is still
    # where a resend looks.
    m = await open_mail(dovecot, smtp, tmp_path / "b", imap_sent_folder="Bot replies", imap_save_sent=False)
    try:
        await m.crashed_mid_send(reply(2), sent=True)
        with dovecot.client() as imap:
            assert not imap.folder_exists("Bot replies")
        dovecot.append(smtp.handler.messages[1].as_bytes(policy=policy.SMTP), folder="Bot replies")  # server's copy
        assert await m.services.dispatcher.flush_once() == 1
    finally:
        await m.channel.stop()
        await m.services.db.dispose()
    assert len(smtp.handler.messages) == 2
