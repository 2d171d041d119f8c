"""The email channel: the poller's loop (IMAP IDLE when the server has it, polling otherwise) and the sender.

`start()` registers the SMTP sender with the outbox dispatcher (`SenderRegistry`) and runs the loop: poll, then
wait for mail (IDLE on a second connection, or sleep `IMAP_POLL_SECONDS`), and on any IMAP or network error drop the
connections and retry with exponential backoff (tenacity). Scheduled jobs and tests call `poll_once()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time

import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from bot import metrics
from bot.messages import Channel
from bot.ports import (
    DeliveryRefs,
    SenderRegistry,
)
from channels.email.config import EmailConfig
from channels.email.mailbox import AsyncMailbox, ImapConnection
from channels.email.poller import MailboxPoller, PollerPorts
from channels.email.sender import EmailSender
from channels.email.sent import SentFolder
from channels.email.worker import ProcessWorker

log = structlog.get_logger(__name__)


def default_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class EmailChannel:
    """IMAP in, SMTP out. One per process; the mailbox lease keeps replicas from reading the same folder."""

    name = "email"

    def __init__(
        self,
        config: EmailConfig,
        ports: PollerPorts,
        senders: SenderRegistry,
        refs: DeliveryRefs,
        *,
        holder: str | None = None,
        imap_tls: ssl.SSLContext | None = None,
        smtp_tls: ssl.SSLContext | None = None,
    ) -> None:
        self._config = config
        self._leases = ports.leases
        self._senders = senders
        self._holder = holder or default_holder()
        self._mailbox = AsyncMailbox(ImapConnection(config, imap_tls))
        self._idle = AsyncMailbox(ImapConnection(config, imap_tls))
        self._parser = ProcessWorker(preload=("channels.email.parsing",))
        self._poller = MailboxPoller(config, ports, self._mailbox, self._parser, holder=self._holder)
        self._sent = SentFolder(config, AsyncMailbox(ImapConnection(config, imap_tls)))
        self.sender = EmailSender(config, refs, tls_context=smtp_tls, sent=self._sent)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._poll_lock = asyncio.Lock()
        self._last_ok = time.monotonic()

    async def start(self) -> None:
        self._senders.register(Channel.EMAIL, self.sender)
        self._stopping = False
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="email-poller")
        log.info("email.started", mailbox=self._poller.name, idle=self._config.imap_idle)

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._mailbox.close()
        await self._idle.close()
        await self._sent.close()
        await self._parser.close()
        with contextlib.suppress(Exception):
            await self._leases.release(self._poller.lease_name, self._holder)

    async def poll_once(self) -> int:
        """Read the mailbox once (if this replica holds its lease); returns how many emails were accepted."""
        async with self._poll_lock:
            try:
                accepted = await self._poller.poll_once()
            except Exception:
                await self._mailbox.reset()
                metrics.MAILBOX_LAG.set(time.monotonic() - self._last_ok)
                raise
            self._last_ok = time.monotonic()
            return accepted

    async def _run(self) -> None:
        retrying = AsyncRetrying(
            wait=wait_exponential_jitter(initial=1, max=60),
            retry=retry_if_exception_type(Exception),
            before_sleep=self._log_retry,
            reraise=True,
        )
        while not self._stopping:
            async for attempt in retrying:
                with attempt:
                    await self.poll_once()
                    await self._wait_for_mail()

    async def _wait_for_mail(self) -> None:
        config = self._config
        if config.imap_idle:
            conn = self._idle.connection
            try:
                await self._idle.call(conn.select, config.imap_folder)
                if await self._idle.call(conn.has_idle):
                    await self._idle.call(conn.idle_wait, config.imap_poll_seconds, lambda: self._stopping)
                    return
            except Exception:
                await self._idle.reset()
                raise
        await asyncio.sleep(config.imap_poll_seconds)

    async def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        metrics.ERRORS.labels("email").inc()
        log.warning("email.reconnect", attempt=state.attempt_number, error=type(error).__name__ if error else "")
        await self._idle.reset()
