"""The weekly report by email, through the outbox: queued once per week under one idempotency key, so a retried
job, a second scheduler or a crash between "queued" and "sent" never mails managers twice.

The job queues a `Reply` (channel email, `metadata[DELIVERY_KIND] == REPORT_KIND`) that carries the rendered
report: the text part, the HTML and the chart (base64), so a resend sends exactly what was decided. The outbox
dispatcher hands it to `ReportMailSender` (registered for that kind by the composition root), which builds a
multipart/alternative message (text, and HTML with the chart inline as `cid:`), reserves its Message-ID on the
outbox row (a resend after a crash carries the same one) and hands it to an SMTP transport.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol

from bot.delivery import DELIVERY_KIND
from bot.errors import PermanentDeliveryError
from bot.messages import Channel, Outcome, Reply
from bot.offers import support_domain
from bot.ports import DeliveryRefs
from scheduler.render import CHART_CID

REPORT_KIND = "weekly_report"


class MailTransport(Protocol):
    """Hands a finished message to the SMTP server (implemented by `channels.email.sender.EmailSender.deliver`);
    raises `DeliveryError` to retry, `PermanentDeliveryError` when the server refuses for good."""

    async def deliver(self, msg: EmailMessage) -> None: ...


def report_key(week_label: str) -> str:
    """The outbox idempotency key of a week's report email: one email per week, however often it is queued."""
    return f"report:email:{week_label}"


def report_reply(week_label: str, to: Sequence[str], subject: str, text: str, html: str, png: bytes) -> Reply:
    """The outbox row for one week's report email (what to send, fixed when queued)."""
    return Reply(
        channel=Channel.EMAIL,
        conversation_key=f"report:{week_label}",
        in_reply_to="",
        text=text,
        outcome=Outcome.ANSWERED,
        idempotency_key=report_key(week_label),
        recipient=", ".join(to),
        subject=subject,
        metadata={DELIVERY_KIND: REPORT_KIND, "html": html, "png": base64.b64encode(png).decode("ascii")},
        plain=True,
    )


def report_email(reply: Reply, from_address: str, message_id: str) -> EmailMessage:
    """The report as an email: a text part and an HTML part with the chart inline (`cid:`)."""
    msg = EmailMessage()
    msg["From"] = from_address
    msg["To"] = reply.recipient
    msg["Subject"] = reply.subject
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(reply.text)
    msg.add_alternative(reply.metadata["html"], subtype="html")
    png = base64.b64decode(reply.metadata.get("png", ""))
    if png:
        html_part = msg.get_body(("html",))
        assert isinstance(html_part, EmailMessage)
        html_part.add_related(png, "image", "png", cid=f"<{CHART_CID}>", filename="chart.png", disposition="inline")
    return msg


class ReportMailSender:
    """The outbox's sender for report emails (`bot.ports.ReplySender`)."""

    def __init__(self, transport: MailTransport, refs: DeliveryRefs, from_address: str) -> None:
        self._transport = transport
        self._refs = refs
        self._from = from_address

    async def send(self, reply: Reply) -> str:
        if not reply.recipient or "html" not in reply.metadata:
            raise PermanentDeliveryError("report email without recipients or content")
        candidate = make_msgid("report", domain=support_domain(self._from))
        message_id = await self._refs.reserve_ref(reply.idempotency_key, candidate)
        await self._transport.deliver(report_email(reply, self._from, message_id))
        return message_id
