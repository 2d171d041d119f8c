"""Slack channel fixtures: the fake Slack server, full services over a real database, the real HTTP endpoint.

`SlackHarness` sends *signed* requests to the service's own aiohttp app (POST /slack/events, as `app/http.py`
mounts it) and settles the work: pipeline drained, outbox flushed through `SlackSender` to the fake server.
The knowledge engine is a small test double of the knowledge *port* (the channel is under test, not retrieval).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from app.build import build_service, build_slack
from app.http import Readiness, build_http_app
from app.settings import Settings
from app.wiring import Wiring
from bot.messages import Answer, Citation, Turn
from bot.ports import KnowledgeEngine
from channels.slack import SlackChannel
from channels.slack.client import RetryPolicy
from tests.conftest import ManualClock
from tests.fakes.slack_server import FakeSlack

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "slack"


class TestKnowledge:
    """A knowledge-port double: answers every question with one citation; "no longer have access" is answered
    with low confidence (so a ticket is offered), "quantum" is abstained, "explode" raises."""

    __test__ = False

    def __init__(self) -> None:
        self.questions: list[str] = []

    async def answer(
        self, question: str, history: Sequence[Turn] = (), filters: Mapping[str, str] | None = None
    ) -> Answer:
        self.questions.append(question)
        if "explode" in question:
            raise RuntimeError("vector store exploded: secret-internal-detail")
        citation = Citation(
            1, "Resetting your password", "kb/account/reset-password.md", "https://docs.example.com/reset"
        )
        if "quantum" in question:
            return Answer("", (), 0.1, False, True, "test")
        confidence = 0.3 if "no longer have access" in question else 0.9
        text = f"**Answer:** for _{question[:60]}_ see the guide [1].\n\n- step one\n- step two"
        return Answer(text, (citation,), confidence, True, False, "test")

    async def ready(self) -> bool:
        return True


def slack_settings(tmp_path: Path, fake: FakeSlack, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": tmp_path,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'slack.db'}",
        "slack_bot_token": "xoxb-test-token",
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": fake.api_url,
        "slack_escalation_channel": "C0ESCALATE",
        "slack_allowed_channels": "C0GENERAL1,C0TOPLEVEL,C0NOFOLLOW,C0ESCALATE",
        "slack_top_level_channels": "C0TOPLEVEL",
        "slack_no_followup_channels": "C0NOFOLLOW",
        "slack_allowed_bots": "B0ALLOWED1",
        "slack_agent_users": "U0AGENT01",
        "outbox_flush_seconds": 3600,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


FAST_RETRY = RetryPolicy(rate_limited=3, server_errors=1, backoff_factor=0.01, timeout_seconds=10)


@dataclass
class SlackHarness:
    services: Wiring
    channel: SlackChannel
    fake: FakeSlack
    knowledge: TestKnowledge
    clock: ManualClock
    url: str
    http: aiohttp.ClientSession
    server_ack_ms: list[float]  # time inside the /slack/events handler, per request

    async def post(
        self, body: str, content_type: str, headers: Mapping[str, str] | None = None
    ) -> aiohttp.ClientResponse:
        timestamp = str(int(time.time()))
        signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
        all_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
            **(headers or {}),
        }
        async with self.http.post(self.url, data=body.encode(), headers=all_headers) as response:
            await response.read()
            return response

    async def event(self, body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> int:
        response = await self.post(json.dumps(body), "application/json", headers)
        return response.status

    async def click(self, payload: Mapping[str, Any]) -> int:
        body = urlencode({"payload": json.dumps(payload)})
        response = await self.post(body, "application/x-www-form-urlencoded")
        return response.status

    async def settle(self) -> None:
        """Finish everything in flight: answers, outbox deliveries, clicks, reactions."""
        for _ in range(3):
            await self.services.pipeline.drain()
            await self.services.dispatcher.flush_once()
            await self.channel.drain()


def channel_for(services: Wiring, retry: RetryPolicy = FAST_RETRY) -> SlackChannel:
    """The Slack channel on the core's narrow ports, as the composition root builds it."""
    return build_slack(services, retry=retry)


@pytest.fixture
async def fake_slack() -> AsyncIterator[FakeSlack]:
    fake = await FakeSlack().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def harness(tmp_path: Path, fake_slack: FakeSlack, clock: ManualClock) -> AsyncIterator[SlackHarness]:
    async with open_harness(slack_settings(tmp_path, fake_slack), fake_slack, clock) as h:
        yield h


class open_harness:
    """Build services + channel + HTTP endpoint; tear them down in order."""

    def __init__(
        self,
        settings: Settings,
        fake: FakeSlack,
        clock: ManualClock,
        retry: RetryPolicy = FAST_RETRY,
        knowledge: KnowledgeEngine | None = None,
    ):
        self.settings, self.fake, self.clock, self.retry = settings, fake, clock, retry
        self.knowledge = knowledge

    async def __aenter__(self) -> SlackHarness:
        knowledge = TestKnowledge()
        services = await build_service(self.settings, knowledge=self.knowledge or knowledge, clock=self.clock)
        self.channel = channel_for(services, retry=self.retry)
        await self.channel.start()
        handler = self.channel.http_handler
        assert handler is not None
        server_ack_ms: list[float] = []

        async def timed(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            try:
                return await handler(request)
            finally:
                server_ack_ms.append((time.perf_counter() - started) * 1000)

        app = build_http_app(services, Readiness(), slack_handler=timed)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.http = aiohttp.ClientSession()
        self.services = services
        return SlackHarness(
            services,
            self.channel,
            self.fake,
            knowledge,
            self.clock,
            f"http://127.0.0.1:{port}/slack/events",
            self.http,
            server_ack_ms,
        )

    async def __aexit__(self, *_exc: object) -> None:
        await self.http.close()
        await self.services.pipeline.drain()
        await self.channel.stop()
        await self.runner.cleanup()
        await self.services.db.dispose()


def load_fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def fixture_names() -> list[str]:
    return sorted(p.stem for p in FIXTURES.glob("*.json"))
