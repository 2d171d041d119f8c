"""200 mentions at once, each delivered twice (app_mention + message) plus one Slack retry, mixed with bot
messages: exactly 200 answers, each in its own thread, none to a bot. Also with two replicas on PostgreSQL, the
deliveries of one mention landing on different replicas."""

from __future__ import annotations

import asyncio
import copy
import random
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ManualClock
from tests.dbs import fresh_database_url
from tests.fakes.slack_server import FakeSlack
from tests.slack.conftest import SlackHarness, load_fixture, open_harness, slack_settings

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

MENTIONS = 200
BOTS = 40


def deliveries(n: int) -> list[tuple[dict[str, Any], dict[str, str]]]:
    """The three deliveries Slack makes for mention `n`: app_mention, the message twin, an app_mention retry."""
    ts = f"1800002{n:03d}.000100"
    text = f"<@UBOT> question number {n}: how do I rotate API keys?"
    mention = copy.deepcopy(load_fixture("01_app_mention")["body"])
    mention["event_id"] = f"EvA{n:05d}"
    mention["event"].update(ts=ts, event_ts=ts, text=text, user=f"U{n:05d}")
    twin = copy.deepcopy(load_fixture("02_message_twin_of_mention")["body"])
    twin["event_id"] = f"EvM{n:05d}"
    twin["event"].update(ts=ts, event_ts=ts, text=text, user=f"U{n:05d}")
    retry = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}
    return [(mention, {}), (twin, {}), (copy.deepcopy(mention), retry)]


def bot_message(n: int) -> dict[str, Any]:
    body = copy.deepcopy(load_fixture("09_bot_message")["body"])
    ts = f"1800003{n:03d}.000100"
    body["event_id"] = f"EvB{n:05d}"
    body["event"].update(ts=ts, event_ts=ts, text=f"<@UBOT> build {n} failed, please advise")
    return body


@pytest.mark.long
@pytest.mark.parametrize(("database", "replicas"), [("sqlite", 1), ("postgres", 2)])
async def test_200_mentions_are_answered_exactly_once(
    database: str, replicas: int, tmp_path: Path, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    rng = random.Random(4)
    async with AsyncExitStack() as stack:
        url = await stack.enter_async_context(fresh_database_url(database, tmp_path))
        settings = slack_settings(tmp_path, fake_slack, database_url=url)
        harnesses: list[SlackHarness] = [
            await stack.enter_async_context(open_harness(settings, fake_slack, clock)) for _ in range(replicas)
        ]
        requests = [d for n in range(MENTIONS) for d in deliveries(n)] + [(bot_message(n), {}) for n in range(BOTS)]
        rng.shuffle(requests)
        statuses = await asyncio.gather(*(rng.choice(harnesses).event(body, headers) for body, headers in requests))
        assert set(statuses) == {200}
        for harness in harnesses:
            await harness.settle()
        for harness in harnesses:
            await harness.settle()

    answers = [m for m in fake_slack.messages if m.channel == "C0GENERAL1"]
    assert len(answers) == MENTIONS
    assert sorted(m.thread_ts for m in answers) == sorted(f"1800002{n:03d}.000100" for n in range(MENTIONS))
    for answer in answers:  # the right answer in the right thread
        n = int(answer.thread_ts[7:10])
        assert f"question number {n}:" in answer.text
    assert len(fake_slack.calls_to("chat.postMessage")) == MENTIONS
    assert fake_slack.reactions == set()
