"""The weekly report by email: the outbox's sender for queued reports (`bot.reports`) on the email channel.

It builds a multipart/alternative message (the text part, and the HTML part with the chart inline as `cid:`),
reserves its Message-ID on the outbox row (a resend after a crash carries the same one) and hands it to an SMTP
transport.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from bot.errors import PermanentDeliveryError
from bot.messages import Reply
from bot.offers import support_domain
from bot.ports import DeliveryRefs
from bot.reports import ReportParts, report_parts
from scheduler.render import CHART_CID


class MailTransport(Protocol):
    """Hands a finished message to the SMTP server (implemented by `channels.email.sender.EmailSender.deliver`);
    raises `DeliveryError` to retry, `PermanentDeliveryError` when the server refuses for good."""

    async def deliver(self, msg: EmailMessage) -> None: ...


def report_email(parts: ReportParts, to: str, from_address: str, message_id: str) -> EmailMessage:
    """The report as an email: a text part and an HTML part with the chart inline (`cid:`)."""
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = to
    msg["Subject"] = parts.title
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(parts.text)
    msg.add_alternative(parts.html, subtype="html")
    if parts.png:
        html_part = msg.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(
            parts.png, "image", "png", cid=f"<{CHART_CID}>", filename="chart.png", disposition="inline"
        )
    return msg


class ReportMailSender:
    """The outbox's sender for queued report emails (`bot.ports.ReplySender`)."""

    def __init__(self, transport: MailTransport, refs: DeliveryRefs, from_address: str) -> None:
        self._transport = transport
        self._refs = refs
        self._from = from_address

    async def send(self, reply: Reply) -> str:
        parts = report_parts(reply)
        if not reply.recipient or not parts.html:
            raise PermanentDeliveryError("report email without recipients or content")
        candidate = make_msgid("report", domain=support_domain(self._from))
        message_id = await self._refs.reserve_ref(reply.idempotency_key, candidate)
        await self._transport.deliver(report_email(parts, reply.recipient, self._from, message_id))
        return message_id
