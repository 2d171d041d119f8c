"""The mail servers email tests run against, as fixtures: a real Dovecot (`dovecot`) and a recording aiosmtpd
server (`smtp`), one of each per test. A plugin (registered in tests/conftest.py), so the email and the
escalation tests share them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.email.conftest import SmtpServer, start_smtp
from tests.email.dovecot import DovecotServer


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    server = DovecotServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = start_smtp()
    try:
        yield server
    finally:
        server.controller.stop()
