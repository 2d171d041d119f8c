"""Fixtures for the email channel: a real Dovecot, a real SMTP server (aiosmtpd) that records what it gets,
and `Wiring` from the composition root on SQLite with a scripted knowledge engine (a port double)."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from app.build import build_service
from app.settings import Settings, load_settings
from app.wiring import Wiring
from tests.doubles import ScriptedKnowledge
from tests.email.dovecot import DovecotServer
from tests.ports import free_port

SUPPORT = "support@acme.test"


@dataclass
class RecordingHandler:
    """aiosmtpd handler: keeps every message; `on_message` lets a test react (e.g. an autoresponder)."""

    messages: list[EmailMessage] = field(default_factory=list)
    on_message: Callable[[EmailMessage], None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.messages.append(msg)
        if self.on_message is not None:
            self.on_message(msg)
        return "250 OK"


@dataclass
class SmtpServer:
    handler: RecordingHandler
    port: int
    controller: Controller


def start_smtp(tls_context: Any = None) -> SmtpServer:
    handler = RecordingHandler()
    port = free_port()
    kwargs: dict[str, Any] = {"tls_context": tls_context} if tls_context is not None else {}
    controller = Controller(handler, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    return SmtpServer(handler, port, controller)


def email_settings(dovecot: DovecotServer, smtp_port: int, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'bot.db'}",
        "imap_host": "127.0.0.1",
        "imap_port": dovecot.imap_port,
        "imap_user": dovecot.user,
        "imap_password": dovecot.password,
        "imap_security": "none",
        "imap_poll_seconds": 0.5,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_security": "none",
        "support_address": SUPPORT,
        "outbox_flush_seconds": 0.2,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def settings(dovecot: DovecotServer, smtp: SmtpServer, tmp_path: Path) -> Settings:
    return email_settings(dovecot, smtp.port, tmp_path)


@pytest.fixture
async def services(settings: Settings) -> AsyncIterator[Wiring]:
    knowledge = ScriptedKnowledge({"": ("Here is what our guide says [1].", 0.9)})
    built = await build_service(settings, knowledge=knowledge, with_escalation=False)
    try:
        yield built
    finally:
        await built.pipeline.drain()
        await built.dispatcher.stop()
        await built.db.dispose()


def customer_email(n: int, *, sender: str = "", subject: str = "", in_reply_to: str = "", body: str = "") -> bytes:
    """A plain customer question, unique per `n`."""
    sender = sender or f"customer{n}@example.org"
    lines = [
        f"From: Customer {n} <{sender}>",
        f"To: {SUPPORT}",
        f"Subject: {subject or f'Question {n}'}",
        f"Message-ID: <q{n}@example.org>",
        "Date: Tue, 10 Nov 2026 09:15:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    text = body or f"How do I configure backups for project {n}?"
    return ("\r\n".join(lines) + "\r\n\r\n" + text + "\r\n").encode()


def parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg
