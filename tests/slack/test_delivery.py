"""When Slack fails: 429 honoured with Retry-After, an outage loses no answer, permanent errors dead-letter, internal
errors become an apology with a reference id; the working reaction is cleared in every case."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ManualClock
from tests.fakes.slack_server import FakeSlack
from tests.slack.conftest import SlackHarness, load_fixture, open_harness, slack_settings

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier


def mention(n: int, text: str = "How do I reset my password?") -> dict[str, Any]:
    body = copy.deepcopy(load_fixture("01_app_mention")["body"])
    ts = f"1800001{n:03d}.000100"
    body["event_id"] = f"EvOUT{n:04d}"
    body["event"].update(ts=ts, event_ts=ts, text=f"<@UBOT> {text}")
    return body


async def test_rate_limit_is_honoured_with_retry_after(harness: SlackHarness) -> None:
    fake = harness.fake
    fake.fail(429, count=1, retry_after=1, methods={"chat.postMessage"})
    assert await harness.event(mention(1)) == 200
    await harness.settle()
    posts = fake.calls_to("chat.postMessage")
    assert [c.status for c in posts] == [429, 200]
    assert posts[1].at - posts[0].at >= 1.0  # waited at least Retry-After before trying again
    assert len(fake.messages) == 1
    assert fake.reactions == set()


async def test_an_outage_loses_no_answer(harness: SlackHarness) -> None:
    fake, services, clock = harness.fake, harness.services, harness.clock
    fake.fail(500, seconds=3600)  # Slack is down until recover()
    for n in range(12):
        assert await harness.event(mention(n)) == 200
    await harness.settle()
    for _ in range(4):  # a minute of retries, all failing
        clock.advance(15)
        await services.dispatcher.flush_once()
    assert fake.messages == []
    pending, _age, dead = await services.outbox.stats()
    assert (pending, dead) == (12, 0)
    fake.recover()
    clock.advance(700)  # past any backoff
    await harness.settle()
    threads = sorted(m.thread_ts for m in fake.messages)
    assert threads == sorted(f"1800001{n:03d}.000100" for n in range(12))  # every answer, once, in its thread
    assert await services.outbox.stats() == (0, 0.0, 0)
    assert fake.reactions == set()


async def test_a_permanent_error_dead_letters_and_clears_the_signal(harness: SlackHarness) -> None:
    fake = harness.fake
    fake.error("chat.postMessage", "channel_not_found")
    assert await harness.event(mention(1)) == 200
    await harness.settle()
    assert fake.messages == []
    assert (await harness.services.outbox.stats())[2] == 1
    assert fake.calls_to("reactions.add", ok_only=True) and fake.calls_to("reactions.remove", ok_only=True)
    assert fake.reactions == set()


async def test_internal_errors_become_an_apology_with_a_reference(harness: SlackHarness) -> None:
    fake = harness.fake
    assert await harness.event(mention(1, "why does everything explode?")) == 200
    await harness.settle()
    [reply] = fake.messages
    shown = reply.text + json.dumps(reply.blocks)
    assert "reference:" in shown
    assert "exploded" not in shown and "RuntimeError" not in shown and "secret-internal-detail" not in shown
    assert fake.reactions == set()


async def test_the_working_signal_is_added_then_cleared(harness: SlackHarness) -> None:
    fake = harness.fake
    assert await harness.event(mention(1)) == 200
    await harness.settle()
    methods = [c.method for c in fake.calls if c.method.startswith("reactions.") or c.method == "chat.postMessage"]
    assert methods.count("reactions.add") == 1 and methods[-1] == "reactions.remove"
    add = fake.calls_to("reactions.add")[0].args
    assert (add["channel"], add["timestamp"]) == ("C0GENERAL1", "1800001001.000100")
    assert fake.reactions == set()


async def test_abstained_answers_offer_a_ticket_and_a_person(harness: SlackHarness) -> None:
    fake = harness.fake
    assert await harness.event(mention(1, "Explain quantum billing")) == 200
    await harness.settle()
    [reply] = fake.messages
    action_ids = [e["action_id"] for b in reply.blocks if b["type"] == "actions" for e in b["elements"]]
    assert action_ids == ["supportbot_offer_ticket", "supportbot_talk_to_person"]


async def test_events_get_a_retryable_error_while_slack_auth_is_down(
    tmp_path: Path, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    """Before the bot knows who it is (auth.test failing), events get HTTP 500 so Slack redelivers them, instead
    of bolt's default 200 that would drop them; the redelivery is answered."""
    fake_slack.fail(500, methods={"auth.test"}, seconds=3600)
    async with open_harness(slack_settings(tmp_path, fake_slack), fake_slack, clock) as harness:
        assert await harness.event(mention(1)) == 500
        fake_slack.recover()
        assert await harness.event(mention(1), {"X-Slack-Retry-Num": "1"}) == 200
        await harness.settle()
        assert [m.thread_ts for m in fake_slack.messages] == ["1800001001.000100"]
