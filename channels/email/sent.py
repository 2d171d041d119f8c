"""The mailbox's Sent folder: every reply is filed there after SMTP accepted it, and a resend looks there first.

Agents see the bot's replies in their mail client, and the folder doubles as a record of what went out: before
the outbox resends a reply (its earlier attempt failed, or the process died mid-send), `EmailSender` asks
`contains()` for the reply's Message-ID (fixed before the first send, so a resend carries the same one) and skips
SMTP when it is there. Filing uses a connection of its own (the poller's and IDLE's are busy), driven on its own
thread like every imapclient connection here.

Order per reply: SMTP send, then APPEND here, then the outbox marks it sent. What still repeats: a crash after
the SMTP server took the message and before the APPEND finished (one IMAP round trip, or an SMTP server that
accepted the data but died before answering it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from channels.email.config import EmailConfig
from channels.email.mailbox import AsyncMailbox

T = TypeVar("T")


class SentFolder:
    """Files sent replies and finds them again by Message-ID (IMAP_SENT_FOLDER, IMAP_SAVE_SENT)."""

    def __init__(self, config: EmailConfig, mailbox: AsyncMailbox) -> None:
        self._config = config
        self._mailbox = mailbox
        self._folder = ""  # resolved on first use (a LIST, perhaps a CREATE), then kept

    async def save(self, raw: bytes) -> None:
        """APPEND a sent message (unless IMAP_SAVE_SENT is off: the SMTP server files it itself)."""
        if self._config.imap_save_sent:
            await self._call(self._mailbox.connection.append_seen, await self._resolved(), raw)

    async def contains(self, message_id: str, since: datetime) -> bool:
        """Whether a message with `message_id` was filed since a day before `since` (IMAP SINCE is a date in the
        server's time zone, so the margin covers any offset)."""
        day = (since - timedelta(days=1)).date()
        return await self._call(self._mailbox.connection.has_message_id, await self._resolved(), message_id, day)

    async def _resolved(self) -> str:
        if not self._folder:
            self._folder = await self._call(self._mailbox.connection.sent_folder, self._config.imap_sent_folder)
        return self._folder

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await self._mailbox.call(fn, *args)
        except Exception:
            await self._mailbox.reset()  # the next call reconnects
            raise

    async def close(self) -> None:
        await self._mailbox.close()
