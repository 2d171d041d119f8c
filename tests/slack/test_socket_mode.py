"""Socket Mode end to end: apps.connections.open on the fake, a real websocket, envelopes acked, answers posted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from app.build import build_service
from app.wiring import Wiring
from channels.slack import SlackChannel
from tests.conftest import ManualClock
from tests.fakes.slack_server import FakeSlack
from tests.slack.conftest import TestKnowledge, channel_for, load_fixture, slack_settings

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier


@dataclass
class SocketHarness:
    services: Wiring
    channel: SlackChannel


@pytest.fixture
async def socket_channel(tmp_path: Path, fake_slack: FakeSlack, clock: ManualClock) -> AsyncIterator[SocketHarness]:
    settings = slack_settings(tmp_path, fake_slack, slack_app_token="xapp-1-A0001-test", slack_signing_secret=None)
    services = await build_service(settings, knowledge=TestKnowledge(), clock=clock)
    channel = channel_for(services)
    assert channel.socket_mode and channel.http_handler is None
    await channel.start()
    try:
        yield SocketHarness(services, channel)
    finally:
        await services.pipeline.drain()
        await channel.stop()
        await services.db.dispose()


async def _settle(harness: SocketHarness) -> None:
    services, channel = harness.services, harness.channel
    for _ in range(3):
        await services.pipeline.drain()
        await services.dispatcher.flush_once()
        await channel.drain()


async def test_events_over_the_websocket_are_acked_and_answered_once(
    socket_channel: SocketHarness, fake_slack: FakeSlack
) -> None:
    mention = load_fixture("01_app_mention")["body"]
    twin = load_fixture("02_message_twin_of_mention")["body"]
    first = await fake_slack.push(mention)
    second = await fake_slack.push(twin)
    retry = await fake_slack.push(mention, retry_attempt=1)
    for envelope_id in (first, second, retry):
        assert (await fake_slack.wait_ack(envelope_id))["envelope_id"] == envelope_id
    await _settle(socket_channel)
    assert [(m.channel, m.thread_ts) for m in fake_slack.messages] == [("C0GENERAL1", "1800000001.000100")]
    assert fake_slack.calls_to("apps.connections.open")
    assert fake_slack.reactions == set()


async def test_button_clicks_over_the_websocket(socket_channel: SocketHarness, fake_slack: FakeSlack) -> None:
    await fake_slack.push(load_fixture("01_app_mention")["body"])
    await fake_slack.wait_ack(await fake_slack.push(load_fixture("08_direct_message")["body"]))
    await _settle(socket_channel)
    payload = load_fixture("21_feedback_up")["body"]
    payload["container"]["message_ts"] = payload["message"]["ts"] = fake_slack.messages[0].ts
    envelope_id = await fake_slack.push(payload, kind="interactive")
    await fake_slack.wait_ack(envelope_id)
    await _settle(socket_channel)
    services = socket_channel.services
    now = services.clock.now()
    assert await services.feedback.counts(now - timedelta(hours=1), now + timedelta(hours=1)) == (1, 0)
    assert [e["user"] for e in fake_slack.ephemerals] == ["U0ASKER01"]
