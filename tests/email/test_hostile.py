"""Hostile mail: bodies and headers that make the parser or the trimmer slow must never stall the event loop,
must be handled (answered or quarantined) in one poll, and must never be parsed again and again."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from app.build import build_email, build_service
from app.serve import SupportApp
from app.wiring import Wiring
from bot.messages import Channel
from bot.store.mailboxes import MailboxStore
from channels.email import EmailChannel
from channels.email.worker import ProcessWorker, WorkerTimeout
from tests.doubles import ScriptedKnowledge
from tests.email.conftest import SUPPORT, SmtpServer, customer_email, email_settings
from tests.email.dovecot import DovecotServer

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

LAG_BOUND = 0.1  # no callback may hold the loop longer than this
WALL_BOUND = 0.5  # wall-clock lateness, which also counts the OS descheduling us on a loaded machine


class LoopLag:
    """Ticks every 10 ms on the event loop and keeps the worst lateness between two ticks, twice: the CPU time
    the loop's thread spent on other work in between (`worst`: the loop was blocked by code running on it,
    which is what a parse on the loop did for 36 s), and the wall-clock lateness (`worst_wall`: also counts GIL
    waits and the OS running other processes, so it is noisy on a busy test machine)."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.worst = 0.0
        self.worst_wall = 0.0
        self.ticks = 0

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            start, busy = loop.time(), time.thread_time()
            await asyncio.sleep(self.interval)
            self.ticks += 1
            self.worst = max(self.worst, time.thread_time() - busy)
            self.worst_wall = max(self.worst_wall, loop.time() - start - self.interval)


@contextlib.asynccontextmanager
async def loop_lag() -> AsyncIterator[LoopLag]:
    """Measure loop lag the way the service runs: `SupportApp.start()` freezes the heap built at start-up out of
    the collector's reach, so here pytest's own heap is frozen too (a full collection of it pauses ~100 ms)."""
    gc.collect()
    gc.freeze()
    lag = LoopLag()
    task = asyncio.create_task(lag._tick())
    try:
        yield lag
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        gc.unfreeze()


def mail(n: int, headers: list[str], body: str | bytes, content_type: str = "text/plain; charset=utf-8") -> bytes:
    lines = [
        f"From: Customer {n} <customer{n}@example.org>",
        f"Subject: Question {n}",
        f"Message-ID: <q{n}@example.org>",
        "Date: Tue, 10 Nov 2026 09:15:00 +0000",
        "MIME-Version: 1.0",
        f"Content-Type: {content_type}",
        *headers,
    ]
    payload = body if isinstance(body, bytes) else body.encode()
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload + b"\r\n"


def whitespace_mail(n: int) -> bytes:
    """The 79 KB body that kept mail-parser-reply's signature regex busy for 36 s on the event loop."""
    return mail(n, [f"To: {SUPPORT}"], "a" + " " * 60000 + "b")


def recipients_mail(n: int, count: int = 10_000) -> bytes:
    to = ", ".join(f"Person {i} <person{i}@example.org>" for i in range(count))
    return mail(n, [f"To: {SUPPORT}, {to}"], "How do I restore a file?")


def parts_mail(n: int, count: int = 20_000) -> bytes:
    boundary = "b0undary"
    body = "".join(f"--{boundary}\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(count))
    return mail(n, [f"To: {SUPPORT}"], body + f"--{boundary}--", f'multipart/mixed; boundary="{boundary}"')


async def settle(services: Wiring, channel: EmailChannel) -> int:
    accepted = await channel.poll_once()
    await services.pipeline.drain()
    await services.dispatcher.flush_once()
    return accepted


async def events(services: Wiring) -> dict[str, int]:
    now = services.clock.now()
    return await services.events.counts(now.replace(year=2000), now.replace(year=2100))


async def test_hostile_mails_are_handled_while_the_event_loop_stays_responsive(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer, capsys: pytest.CaptureFixture[str]
) -> None:
    dovecot.append([whitespace_mail(1), recipients_mail(2), parts_mail(3), customer_email(4)])
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    try:
        asyncio.get_running_loop().slow_callback_duration = 0.02
        started = time.monotonic()
        async with loop_lag() as lag:
            accepted = await settle(services, channel)
        with capsys.disabled():
            print(
                f"\nhostile mails: loop blocked at most {lag.worst * 1000:.1f} ms (wall-clock lateness "
                f"{lag.worst_wall * 1000:.1f} ms) over {time.monotonic() - started:.2f} s"
            )
        assert lag.ticks > 0 and lag.worst < LAG_BOUND and lag.worst_wall < WALL_BOUND
        # the whitespace mail is answered (bounded for the trimmer), the 10,000-recipient one (its lists cut to
        # MAX_ADDRESSES before parsing) to its sender alone, and the plain one
        assert accepted == 3
        answered = Counter(str(m["In-Reply-To"]) for m in smtp.handler.messages)
        assert answered == Counter({"<q1@example.org>": 1, "<q2@example.org>": 1, "<q4@example.org>": 1})
        [crowd] = [m for m in smtp.handler.messages if str(m["In-Reply-To"]) == "<q2@example.org>"]
        assert [a.addr_spec for a in crowd["To"].addresses] == ["customer2@example.org"]
        assert crowd["Cc"] is None and crowd["Bcc"] is None
        assert await events(services) == {"quarantined": 1}  # 20,000 parts
        with dovecot.client() as imap:
            assert imap.select_folder("Quarantine")[b"EXISTS"] == 1
        assert await settle(services, channel) == 0
    finally:
        await channel.stop()


async def test_the_service_starts_ready_with_such_mail_unread_and_health_answers_while_it_is_handled(
    dovecot: DovecotServer, smtp: SmtpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A (re)start with the 10,000-recipient mail still unread: HTTP listens and is ready at once (parsing is off
    the loop and after start-up), /health/live keeps answering promptly while the poller handles it (a Slack ack
    is a handler on the same loop), and it is answered once, to its sender."""
    dovecot.append([recipients_mail(1), customer_email(2)])
    settings = email_settings(dovecot, smtp.port, tmp_path, http_port=0)
    knowledge = ScriptedKnowledge({"": ("Here is what our guide says [1].", 0.9)})
    app = SupportApp(await build_service(settings, knowledge=knowledge, with_escalation=False))
    await app.start()
    worst = 0.0
    try:
        async with aiohttp.ClientSession() as http, loop_lag() as lag:
            base = f"http://127.0.0.1:{app.port}"
            assert (await http.get(f"{base}/health/ready")).status == 200
            deadline = time.monotonic() + 60.0
            while len(smtp.handler.messages) < 2 and time.monotonic() < deadline:
                asked = time.perf_counter()
                assert (await http.get(f"{base}/health/live")).status == 200
                worst = max(worst, time.perf_counter() - asked)
                await asyncio.sleep(0.02)
        with capsys.disabled():
            print(f"\nstart with hostile mail unread: /health/live worst {worst * 1000:.1f} ms")
        assert worst < WALL_BOUND and lag.worst < LAG_BOUND
        answered = sorted(str(m["In-Reply-To"]) for m in smtp.handler.messages)
        assert answered == ["<q1@example.org>", "<q2@example.org>"]
    finally:
        await app.stop(grace_seconds=0)


async def test_a_parse_that_overruns_is_quarantined_and_the_next_mail_answered(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    # ~800 KB of HTML (under MAX_HTML_CHARS): ~5 s in html2text, 25x the 0.2 s deadline. (A bounded plain-text body
    # takes the trimmer only ~0.2 s on a fast machine: too close to the deadline to overrun reliably.)
    slow = mail(1, [f"To: {SUPPORT}"], "<p>x</p>\n" * 90_000, "text/html; charset=utf-8")
    dovecot.append([slow, customer_email(2)])
    channel = build_email(services, parse_timeout_seconds=0.2)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    try:
        async with loop_lag() as lag:
            assert await settle(services, channel) == 1
        assert lag.worst < LAG_BOUND and lag.worst_wall < WALL_BOUND
        assert [str(m["In-Reply-To"]) for m in smtp.handler.messages] == ["<q2@example.org>"]
        assert await events(services) == {"quarantined": 1}
    finally:
        await channel.stop()


async def test_a_mail_whose_parse_keeps_dying_is_quarantined_without_parsing_it_again(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    dovecot.append([customer_email(1), customer_email(2)])
    with dovecot.client() as imap:
        uidvalidity = int(imap.select_folder("INBOX")[b"UIDVALIDITY"])
    channel = build_email(services)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    # Two earlier processes began parsing UID 1 and died before settling it (the marker survives them).
    positions = MailboxStore(services.db, services.clock)
    for _ in range(2):
        await positions.begin_parse(f"{dovecot.user}/INBOX", uidvalidity, 1)
    try:
        assert await settle(services, channel) == 1
        assert [str(m["In-Reply-To"]) for m in smtp.handler.messages] == ["<q2@example.org>"]
        assert await events(services) == {"quarantined": 1}
        with dovecot.client() as imap:
            assert imap.select_folder("Quarantine")[b"EXISTS"] == 1
    finally:
        await channel.stop()


async def test_the_worker_is_killed_on_timeout_and_replaced() -> None:
    worker = ProcessWorker()
    try:
        await worker.start()
        first = worker.pid
        assert first is not None
        with pytest.raises(WorkerTimeout):
            await worker.call(time.sleep, 30.0, 0.3)
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)  # killed and reaped
        assert await worker.call(abs, -3, 30.0) == 3  # a fresh worker takes the next call
        assert worker.pid not in (None, first)
        assert worker.restarts == 1
    finally:
        await worker.close()


async def test_an_exception_in_the_worker_reaches_the_caller() -> None:
    worker = ProcessWorker()
    try:
        with pytest.raises(ValueError, match="invalid literal"):
            await worker.call(int, "not a number", 30.0)
        assert await worker.call(int, "7", 30.0) == 7  # the same worker carries on
        assert worker.restarts == 0
    finally:
        await worker.close()


async def test_fetches_are_capped_in_bytes_and_every_mail_is_still_read(
    services: Wiring, smtp: SmtpServer, dovecot: DovecotServer
) -> None:
    dovecot.append([customer_email(n) for n in range(1, 5)])
    channel = build_email(services, fetch_batch_bytes=1)  # every fetch takes one message (at least one)
    services.dispatcher.register(Channel.EMAIL, channel.sender)
    try:
        assert await settle(services, channel) == 4
        assert Counter(str(m["In-Reply-To"]) for m in smtp.handler.messages) == Counter(
            {f"<q{n}@example.org>": 1 for n in range(1, 5)}
        )
    finally:
        await channel.stop()
