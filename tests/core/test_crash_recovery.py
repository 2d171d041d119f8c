"""SIGKILL between "recorded" and "sent", then restart: every reply arrives exactly once (SQLite and PostgreSQL); and
the real Slack sender, killed twice mid-run, posts no answer twice."""

from __future__ import annotations

import asyncio
import collections
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from tests.fakes.slack_server import FakeSlack

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

N = 30


@dataclass
class Sink:
    """Records replies. While `stall` is set it accepts requests and never answers them."""

    stall: bool = True
    attempted: list[str] = field(default_factory=list)
    delivered: collections.Counter[str] = field(default_factory=collections.Counter)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.attempted.append(body["key"])
        if self.stall:
            await asyncio.Event().wait()
        self.delivered[body["key"]] += 1
        return web.json_response({"ok": True})


@pytest.fixture
async def sink() -> AsyncIterator[tuple[Sink, str]]:
    state = Sink()
    app = web.Application()
    app.router.add_post("/deliver", state.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield state, f"http://127.0.0.1:{port}/deliver"
    finally:
        await runner.cleanup()


async def _spawn(phase: str, env: dict[str, str], n: int = N) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.core.crash_runner",
        phase,
        str(n),
        env=env,
        cwd=Path(__file__).parents[2],
        stdout=asyncio.subprocess.DEVNULL,
        stderr=None,
    )


async def _until(predicate: object, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():  # type: ignore[operator]
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_sigkill_between_decided_and_sent_resends_exactly_once(
    db_url: str, tmp_path: Path, sink: tuple[Sink, str]
) -> None:
    state, url = sink
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "DATA_DIR": str(tmp_path),
        "HTTP_PORT": "0",
        "SINK_URL": url,
        "PROCESSING_LEASE_SECONDS": "1",
        "OUTBOX_FLUSH_SECONDS": "0.2",
        "SHUTDOWN_GRACE_SECONDS": "0",
        "LOG_LEVEL": "ERROR",
    }
    first = await _spawn("first", env)
    await _until(lambda: len(state.attempted) >= 1, 60)  # a reply is being sent: the peer hangs
    await asyncio.sleep(0.3)  # more replies get decided (outbox) while others are still only recorded
    first.send_signal(signal.SIGKILL)
    await first.wait()
    assert sum(state.delivered.values()) == 0  # nothing was sent before the crash

    state.stall = False
    second = await _spawn("restart", env)
    try:
        await _until(lambda: len(state.delivered) == N, 60)
        await asyncio.sleep(1.5)  # past a lease period: any duplicate would have shown up by now
    finally:
        second.send_signal(signal.SIGTERM)
        await asyncio.wait_for(second.wait(), 30)
    assert len(state.delivered) == N
    assert all(count == 1 for count in state.delivered.values()), state.delivered
    assert second.returncode == 0


SLACK_ANSWERS = 200


@pytest.mark.long
async def test_slack_answers_over_two_sigkills_are_posted_once(tmp_path: Path) -> None:
    """The real Slack sender against the fake Slack, SIGKILLed twice while posting: every thread gets its answer,
    and a reply posted just before a kill is found in its thread (metadata) instead of being posted again."""
    fake = await FakeSlack().start()
    for i in range(SLACK_ANSWERS):
        fake.seed("C1", f"{i}.0", user="U1", text=f"backup question {i}")
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.db'}",
        "DATA_DIR": str(tmp_path),
        "HTTP_PORT": "0",
        "SLACK_BOT_TOKEN": "xoxb-crash-test",
        "SLACK_SIGNING_SECRET": "crash-test-signing-secret",
        "SLACK_API_URL": fake.api_url,
        "PROCESSING_LEASE_SECONDS": "1",
        "OUTBOX_FLUSH_SECONDS": "0.2",
        "SHUTDOWN_GRACE_SECONDS": "0",
        "LOG_LEVEL": "ERROR",
    }
    env.pop("SINK_URL", None)

    def answered() -> int:
        return len({m.thread_ts for m in fake.messages if m.user == fake.bot_user_id})

    process = await _spawn("slack", env, SLACK_ANSWERS)
    kills = 0
    try:
        for share in (0.3, 0.65):
            await _until(lambda share=share: answered() >= share * SLACK_ANSWERS, 300)
            process.send_signal(signal.SIGKILL)
            await process.wait()
            kills += 1
            process = await _spawn("slack", env, SLACK_ANSWERS)
        await _until(lambda: answered() == SLACK_ANSWERS, 300)
        await asyncio.sleep(1.5)  # past a lease period: any repeat would have shown up by now
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 30)
        await fake.stop()
    posts = collections.Counter(m.thread_ts for m in fake.messages if m.user == fake.bot_user_id)
    repeats = sum(count - 1 for count in posts.values())
    print(
        f"\nslack SIGKILL run: answers={len(posts)} kills={kills} repeats={repeats} resend_reads="
        f"{len(fake.calls_to('conversations.replies'))}"
    )
    assert (len(posts), kills) == (SLACK_ANSWERS, 2)
    assert repeats == 0, posts
