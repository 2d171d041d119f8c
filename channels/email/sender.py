"""SMTP delivery with aiosmtplib: STARTTLS or implicit TLS per `SMTP_SECURITY` (plaintext only with "none").

`EmailSender.send(reply)` is the outbox's `ReplySender`: it reserves the reply's random Message-ID on its outbox
row (`DeliveryRefs`: the first reservation wins, so a resend after a crash reuses it), renders the reply and
returns that id (the outbox keeps it as the delivery reference, which is how an answer to it finds its thread). A 5xx
from the server is permanent (dead letter); connection problems and 4xx are retried by the outbox.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib
import structlog

from bot.errors import DeliveryError, PermanentDeliveryError
from bot.messages import Reply
from bot.offers import support_domain
from bot.ports import DeliveryRefs
from channels.email.config import EmailConfig
from channels.email.render import build_reply, reply_address, reply_message_id

log = structlog.get_logger(__name__)


class EmailSender:
    """Sends replies and reports through the configured SMTP server."""

    def __init__(
        self,
        config: EmailConfig,
        refs: DeliveryRefs,
        *,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._config = config
        self._refs = refs
        self._tls_context = tls_context
        self._timeout = timeout

    async def send(self, reply: Reply) -> str:
        if not reply_address(reply):
            raise PermanentDeliveryError("reply has no recipient")
        support = self._config.support_address
        message_id = await self._refs.reserve_ref(reply.idempotency_key, reply_message_id(reply, support))
        msg = build_reply(reply, support, message_id)
        await self.deliver(msg)
        return str(msg["Message-ID"])

    async def send_report(self, to: Sequence[str], subject: str, text: str, html: str, png: bytes | None) -> None:
        """The weekly report: text and HTML, the chart attached as report.png."""
        msg = EmailMessage()
        msg["From"] = self._config.support_address
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = make_msgid("report", domain=support_domain(self._config.support_address))
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        if png is not None:
            msg.add_attachment(png, maintype="image", subtype="png", filename="report.png")
        await self.deliver(msg)

    async def deliver(self, msg: EmailMessage) -> None:
        s = self._config
        try:
            await aiosmtplib.send(
                msg,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_user or None,
                password=s.smtp_password or None,
                use_tls=s.smtp_security == "ssl",
                start_tls=s.smtp_security == "starttls",
                tls_context=self._tls_context,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentDeliveryError(f"SMTP refused with {exc.code}") from exc
            raise DeliveryError(f"SMTP answered {exc.code}") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise PermanentDeliveryError("SMTP refused every recipient") from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP failed: {type(exc).__name__}") from exc
