"""The service killed with SIGKILL twice while answering: every email is still answered exactly once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.email.conftest import SmtpServer
from tests.email.crashrun import run_with_kills
from tests.email.dovecot import DovecotServer

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier


@pytest.mark.long
@pytest.mark.slow
def test_sigkill_twice_every_email_answered_exactly_once(
    dovecot: DovecotServer, smtp: SmtpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run_with_kills(dovecot, smtp, tmp_path, emails=150)
    with capsys.disabled():
        print(f"\nemail SIGKILL run: {result}")
    assert result.kills == 2
    assert result.answered == 150
    assert result.doubly_answered == 0  # a resend after a crash reuses the same Message-ID
