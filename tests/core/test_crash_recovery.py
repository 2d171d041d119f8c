"""SIGKILL between "recorded" and "sent", then restart: every reply arrives exactly once (SQLite and PostgreSQL)."""

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


async def _spawn(phase: str, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.core.crash_runner",
        phase,
        str(N),
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
