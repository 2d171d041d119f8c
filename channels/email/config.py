"""What the email channel needs to know, as one frozen value the composition root builds from settings.

Defaults are today's (`IMAP_*`, `SMTP_*`, `SUPPORT_ADDRESS`, `EMAIL_*`). Secrets are plain strings here: the
root unwraps them from the settings' `SecretStr` and this value is never logged or printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Literal

Security = Literal["ssl", "starttls", "none"]


@dataclass(frozen=True, slots=True)
class EmailConfig:
    imap_host: str
    smtp_host: str
    support_address: str
    imap_port: int = 993
    imap_user: str = ""
    imap_password: str = field(default="", repr=False)
    imap_security: Security = "ssl"
    imap_folder: str = "INBOX"
    imap_done_action: Literal["seen", "move"] = "seen"
    imap_done_folder: str = "Processed"
    imap_quarantine_folder: str = "Quarantine"
    imap_sent_folder: str = ""  # "": found by its \Sent flag, else "Sent"
    imap_save_sent: bool = True  # APPEND each reply to the Sent folder
    imap_idle: bool = True
    imap_poll_seconds: float = 30.0
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    smtp_security: Security = "starttls"
    bot_addresses: tuple[str, ...] = ()  # other addresses of ours, never answered
    max_bytes: int = 10_000_000  # larger messages are quarantined unread
    fetch_batch_bytes: int = 20_000_000  # at most this many message bytes per IMAP fetch (at least one message)
    parse_timeout_seconds: float = 20.0  # the parser worker is killed and the message quarantined after this
    lease_seconds: float = 60.0  # the mailbox lease: one replica reads a folder at a time

    @property
    def mailbox(self) -> str:
        """The mailbox's name in positions, leases and logs."""
        return f"{self.imap_user}/{self.imap_folder}"

    @property
    def own_addresses(self) -> frozenset[str]:
        """Addresses that are ours: mail from them is never answered."""
        candidates = (self.support_address, self.imap_user, *self.bot_addresses)
        return frozenset(parseaddr(a)[1].strip().lower() for a in candidates if "@" in a)
