"""SMTP delivery with aiosmtplib: STARTTLS or implicit TLS per `SMTP_SECURITY` (plaintext only with "none").

`EmailSender.send(reply)` is the outbox's `ReplySender`: it reserves the reply's random Message-ID on its outbox
row (`DeliveryRefs`: the first reservation wins, so a resend after a crash reuses it), renders the reply and
returns that id (the outbox keeps it as the delivery reference, which is how an answer to it finds its thread). A 5xx
from the server is permanent (dead letter); connection problems and 4xx are retried by the outbox. After SMTP took
a reply it is filed in the mailbox's Sent folder (`SentFolder`), and before a resend `delivered_ref` looks for its
Message-ID there (`bot.ports.DeliveryCheck`), so a crash between "sent" and "marked sent" rarely sends it twice.
"""

from __future__ import annotations

import ssl
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP

import aiosmtplib
import structlog

from bot import metrics
from bot.errors import DeliveryError, PermanentDeliveryError
from bot.messages import Reply
from bot.ports import DeliveryRefs
from channels.email.config import EmailConfig
from channels.email.render import build_reply, reply_address, reply_message_id
from channels.email.sent import SentFolder

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
        sent: SentFolder | None = None,
    ) -> None:
        self._config = config
        self._refs = refs
        self._sent = sent
        self._tls_context = tls_context
        self._timeout = timeout

    async def send(self, reply: Reply) -> str:
        if not reply_address(reply):
            raise PermanentDeliveryError("reply has no recipient")
        support = self._config.support_address
        message_id = await self._refs.reserve_ref(reply.idempotency_key, reply_message_id(reply, support))
        msg = build_reply(reply, support, message_id)
        await self.deliver(msg)
        await self._file(msg)
        return str(msg["Message-ID"])

    async def delivered_ref(self, reply: Reply, since: datetime) -> str | None:
        """`bot.ports.DeliveryCheck`: the reply's Message-ID when the Sent folder holds it (it went out)."""
        if self._sent is None:
            return None
        message_id = await self._refs.reserve_ref(
            reply.idempotency_key, reply_message_id(reply, self._config.support_address)
        )
        return message_id if await self._sent.contains(message_id, since) else None

    async def _file(self, msg: EmailMessage) -> None:
        """File the sent reply in the Sent folder. The mail is out whatever happens here, so a failure is logged
        and counted, never raised (raising would send it again)."""
        if self._sent is None:
            return
        try:
            await self._sent.save(msg.as_bytes(policy=SMTP))
        except Exception as exc:
            metrics.ERRORS.labels("email_sent_folder").inc()
            log.warning("email.sent_folder_failed", message_id=str(msg["Message-ID"]), error=type(exc).__name__)

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
