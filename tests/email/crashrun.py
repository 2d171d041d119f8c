"""Run N customer emails through the service in a subprocess, SIGKILLing it along the way (test and bench)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.email.conftest import SmtpServer, customer_email
from tests.email.dovecot import DovecotServer

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class CrashRunResult:
    emails: int
    answered: int  # parents with at least one answer
    doubly_answered: int  # parents answered with two different Message-IDs (must be 0)
    resent: int  # SMTP deliveries repeated with the SAME Message-ID (crash between send and mark-sent)
    kills: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def _env(dovecot: DovecotServer, smtp: SmtpServer, data_dir: Path, knowledge: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATA_DIR=str(data_dir),
        DATABASE_URL=f"sqlite+aiosqlite:///{data_dir / 'bot.db'}",
        IMAP_HOST="127.0.0.1",
        IMAP_PORT=str(dovecot.imap_port),
        IMAP_USER=dovecot.user,
        IMAP_PASSWORD=dovecot.password,
        IMAP_SECURITY="none",
        IMAP_POLL_SECONDS="1",
        SMTP_HOST="127.0.0.1",
        SMTP_PORT=str(smtp.port),
        SMTP_SECURITY="none",
        SUPPORT_ADDRESS="support@acme.test",
        OUTBOX_FLUSH_SECONDS="0.5",
        PROCESSING_LEASE_SECONDS="3",
        LOG_LEVEL="WARNING",
        RUNNER_KNOWLEDGE=knowledge,
        PYTHONPATH=str(ROOT),
    )
    if knowledge == "real":
        env["KNOWLEDGE_PATHS"] = str(ROOT / "examples" / "kb")
    return env


def _start(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.email.runner"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def run_with_kills(
    dovecot: DovecotServer,
    smtp: SmtpServer,
    data_dir: Path,
    *,
    emails: int,
    kill_at: tuple[float, ...] = (0.3, 0.65),
    knowledge: str = "scripted",
    timeout: float = 240.0,
) -> CrashRunResult:
    """Append `emails` customer emails, run the service, SIGKILL it when the answered share passes each of
    `kill_at`, restart it, and wait until every email is answered (or `timeout`)."""
    dovecot.append([customer_email(n) for n in range(1, emails + 1)])
    env = _env(dovecot, smtp, data_dir, knowledge)
    log = data_dir / "runner.log"
    started = time.monotonic()
    process = _start(env, log)
    kills = 0
    try:
        while time.monotonic() - started < timeout:
            answered = len({str(m["In-Reply-To"]) for m in list(smtp.handler.messages)})
            if answered >= emails:
                break
            if kills < len(kill_at) and answered >= kill_at[kills] * emails:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                process = _start(env, log)
            time.sleep(0.05)
        elapsed = time.monotonic() - started
        time.sleep(2.0)  # anything still in flight would show up as a double answer now
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    ids_by_parent: dict[str, set[str]] = defaultdict(set)
    deliveries = Counter(str(m["Message-ID"]) for m in smtp.handler.messages)
    for m in smtp.handler.messages:
        ids_by_parent[str(m["In-Reply-To"])].add(str(m["Message-ID"]))
    return CrashRunResult(
        emails=emails,
        answered=sum(1 for n in range(1, emails + 1) if f"<q{n}@example.org>" in ids_by_parent),
        doubly_answered=sum(1 for ids in ids_by_parent.values() if len(ids) > 1),
        resent=sum(c - 1 for c in deliveries.values()),
        kills=kills,
        seconds=elapsed,
    )
