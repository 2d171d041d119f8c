"""The IMAP side: one imapclient connection, driven from asyncio through its own single-thread executor.

imapclient is blocking and a connection is not thread-safe, so every call for one connection runs on one
dedicated thread, in order. TLS is IMAPS (`ssl`) or STARTTLS (`starttls`); `none` is plaintext, meant for
loopback tests only. Messages are fetched with BODY.PEEK[] (reading never sets \\Seen); after their inquiry is
committed they are marked \\Seen or moved, per `IMAP_DONE_ACTION`.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.imapclient import SENT as SENT_FLAG

from channels.email.config import EmailConfig

T = TypeVar("T")
SEEN = b"\\Seen"


@dataclass(frozen=True, slots=True)
class Fetched:
    """One message as fetched: its bytes, or None when it is larger than the limit (then only `size`)."""

    uid: int
    size: int
    raw: bytes | None


class ImapConnection:
    """A logged-in connection with the folder selected; all methods block (run them via `AsyncMailbox`)."""

    def __init__(self, config: EmailConfig, ssl_context: ssl.SSLContext | None = None, timeout: float = 30.0) -> None:
        self._config = config
        self._ssl_context = ssl_context or ssl.create_default_context()
        self._timeout = timeout
        self._client: IMAPClient | None = None

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _connect(self) -> IMAPClient:
        s = self._config
        implicit = s.imap_security == "ssl"
        client = IMAPClient(
            s.imap_host, port=s.imap_port, ssl=implicit, ssl_context=self._ssl_context, timeout=self._timeout
        )
        try:
            if s.imap_security == "starttls":
                client.starttls(self._ssl_context)
            client.login(s.imap_user, s.imap_password)
        except Exception:
            _close_quietly(client)
            raise
        return client

    def select(self, folder: str) -> int:
        """Select `folder` and return its UIDVALIDITY."""
        info = self.client.select_folder(folder)
        return int(info[b"UIDVALIDITY"])

    def has_idle(self) -> bool:
        return bool(self.client.has_capability("IDLE"))

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than `last_uid`, ascending ("n:*" always returns the highest UID, so filter)."""
        found = self.client.search(["UID", f"{last_uid + 1}:*"])
        return sorted(int(u) for u in found if int(u) > last_uid)

    def start_after(self) -> int:
        """Where a poller with no stored position starts: just before the oldest unread message, or after the
        newest message when all are read. So a fresh database answers the mail waiting for an answer, never the
        mailbox's history."""
        unseen = self.client.search(["UNSEEN"])
        if unseen:
            return min(int(u) for u in unseen) - 1
        every = self.client.search(["ALL"])
        return max((int(u) for u in every), default=0)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each message, so the poller can leave oversized ones unread and cap a batch in bytes."""
        if not uids:
            return {}
        found = self.client.fetch(uids, ["RFC822.SIZE"])
        return {int(uid): int(data.get(b"RFC822.SIZE", 0)) for uid, data in found.items()}

    def bodies(self, uids: Sequence[int]) -> dict[int, bytes]:
        """The full bytes of each message (BODY.PEEK[]: reading never sets \\Seen)."""
        if not uids:
            return {}
        bodies: dict[int, bytes] = {}
        for uid, data in self.client.fetch(uids, ["BODY.PEEK[]"]).items():
            raw = data.get(b"BODY[]")
            if isinstance(raw, bytes):
                bodies[int(uid)] = raw
        return bodies

    def ensure_folder(self, folder: str) -> None:
        if not self.client.folder_exists(folder):
            self.client.create_folder(folder)

    def sent_folder(self, configured: str) -> str:
        """The folder our replies are filed in: `configured`, else the one flagged \\Sent (RFC 6154
        SPECIAL-USE) or named like a Sent folder, else "Sent"; created when missing."""
        folder = configured or self.client.find_special_folder(SENT_FLAG) or "Sent"
        self.ensure_folder(folder)
        return folder

    def append_seen(self, folder: str, raw: bytes) -> None:
        """File a message we sent (flagged \\Seen: it is ours, nobody needs to read it as new)."""
        self.client.append(folder, raw, flags=[SEEN])

    def has_message_id(self, folder: str, message_id: str, since: date) -> bool:
        """Whether `folder` holds a message with this Message-ID header, filed on or after `since`."""
        self.client.select_folder(folder, readonly=True)
        return bool(self.client.search(["SINCE", since, "HEADER", "Message-ID", message_id]))

    def move(self, uids: Sequence[int], folder: str) -> None:
        if not uids:
            return
        self.ensure_folder(folder)
        if self.client.has_capability("MOVE"):
            self.client.move(uids, folder)
        else:
            self.client.copy(uids, folder)
            self.client.delete_messages(uids)
            self.client.uid_expunge(uids) if self.client.has_capability("UIDPLUS") else self.client.expunge()

    def mark_seen(self, uids: Sequence[int]) -> None:
        if uids:
            self.client.add_flags(uids, [SEEN], silent=True)

    def idle_wait(self, seconds: float, stop: Callable[[], bool]) -> bool:
        """IDLE until the server reports a change (True), `seconds` pass or `stop()` says so (False)."""
        client = self.client
        client.idle()
        try:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not stop():
                if client.idle_check(timeout=min(1.0, max(0.05, deadline - time.monotonic()))):
                    return True
            return False
        finally:
            client.idle_done()

    def close(self) -> None:
        if self._client is not None:
            _close_quietly(self._client)
            self._client = None


def _close_quietly(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:
        try:
            client.shutdown()
        except Exception:
            return


class AsyncMailbox:
    """`ImapConnection` for asyncio: every call runs, in order, on the connection's own thread."""

    def __init__(self, connection: ImapConnection) -> None:
        self.connection = connection
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def reset(self) -> None:
        """Drop the connection (after an error); the next call reconnects."""
        await self.call(self.connection.close)

    async def close(self) -> None:
        await self.reset()
        self._executor.shutdown(wait=False)
