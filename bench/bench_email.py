"""Email channel throughput and crash safety against a real Dovecot and a real SMTP server.

Two runs of N customer emails appended to the inbox (N=1000, 200 with --quick), each through the service in a
subprocess (`tests/email/runner.py`) with the real knowledge engine and its extractive answerer (no API key),
after a first run with a scripted engine (a port double) that shows what the channel itself costs:
1. undisturbed: emails answered per second;
2. SIGKILLed twice mid-run and restarted: every email answered exactly once (distinct reply Message-IDs per
   email), plus how many SMTP deliveries were repeated with the same Message-ID (the at-least-once window
   between "sent" and "marked sent").
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.harness import Report
from tests.email.conftest import start_smtp
from tests.email.crashrun import run_with_kills
from tests.email.dovecot import DovecotServer


def _one(report: Report, label: str, emails: int, kill_at: tuple[float, ...], knowledge: str = "real") -> None:
    dovecot = DovecotServer().start()
    smtp = start_smtp()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_with_kills(
                dovecot, smtp, Path(tmp), emails=emails, kill_at=kill_at, knowledge=knowledge, timeout=1800
            )
    finally:
        smtp.controller.stop()
        dovecot.stop()
    note = f"n={emails}, SIGKILLs={result.kills}"
    report.add(f"{label}: answered", result.answered, "emails", note)
    report.add(f"{label}: answered twice (distinct ids)", result.doubly_answered, "emails")
    report.add(f"{label}: SMTP resends, same Message-ID", result.resent, "msgs")
    report.add(f"{label}: throughput", result.per_second, "mail/s", f"{result.seconds:.1f}s incl. startup")


async def run(report: Report, quick: bool) -> None:
    emails = 200 if quick else 1000
    _one(report, "channel only (scripted engine)", emails, (), knowledge="scripted")
    _one(report, "undisturbed", emails, ())
    _one(report, "killed twice", emails, (0.3, 0.65))
