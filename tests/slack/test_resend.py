"""A resend after a crash looks for the reply in Slack first: a posted reply carries its idempotency key in message
metadata, and the outbox, before posting a reply whose earlier attempt may have gone out, reads the thread
(conversations.replies) or the channel (conversations.history) and marks it sent when the key is there."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.messages import Channel, Outcome, Reply
from bot.store.outbox import OutboxItem
from tests.slack.conftest import SlackHarness

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

THREAD = "1800001001.000100"


def reply(key: str, conversation_key: str = f"C0GENERAL1:{THREAD}") -> Reply:
    return Reply(Channel.SLACK, conversation_key, "Ev1", "Open Settings, then Backups.", Outcome.ANSWERED, key)


async def crashed_mid_send(harness: SlackHarness, r: Reply, *, posted: bool) -> OutboxItem:
    """The first process claimed `r`, maybe posted it, and died before marking it sent."""
    await harness.services.outbox.enqueue(r)
    [item] = await harness.services.outbox.claim_due()
    if posted:
        await harness.channel.sender.send(r)
    harness.clock.advance(harness.services.settings.processing_lease_seconds + 1)
    return item


async def test_a_posted_reply_is_found_in_its_thread_and_not_posted_again(harness: SlackHarness) -> None:
    fake = harness.fake
    fake.seed("C0GENERAL1", THREAD, text="How do I back up?")
    await crashed_mid_send(harness, reply("slack:Ev1:0"), posted=True)
    assert await harness.services.dispatcher.flush_once() == 1
    [post] = fake.calls_to("chat.postMessage")
    assert post.args["metadata"] == {"event_type": "supportbot_reply", "event_payload": {"key": "slack:Ev1:0"}}
    [read] = fake.calls_to("conversations.replies")
    assert (read.args["channel"], read.args["ts"], read.args["include_all_metadata"]) == ("C0GENERAL1", THREAD, "1")
    assert len(fake.in_thread("C0GENERAL1", THREAD)) == 1
    assert await harness.services.outbox.stats() == (0, 0.0, 0)
    [sent] = await harness.services.outbox.sent_for(f"C0GENERAL1:{THREAD}")
    assert sent.idempotency_key == "slack:Ev1:0"


async def test_a_reply_that_never_went_out_is_posted_on_resend(harness: SlackHarness) -> None:
    fake = harness.fake
    fake.seed("C0GENERAL1", THREAD)
    await harness.channel.sender.send(reply("slack:Ev0:0"))  # another reply of ours: a different key
    await crashed_mid_send(harness, reply("slack:Ev1:0"), posted=False)
    assert await harness.services.dispatcher.flush_once() == 1
    assert len(fake.calls_to("conversations.replies")) == 1
    assert [m.metadata for m in fake.in_thread("C0GENERAL1", THREAD)] == [
        {"event_type": "supportbot_reply", "event_payload": {"key": "slack:Ev0:0"}},
        {"event_type": "supportbot_reply", "event_payload": {"key": "slack:Ev1:0"}},
    ]


async def test_another_apps_message_with_our_key_does_not_suppress_the_reply(harness: SlackHarness) -> None:
    fake = harness.fake
    fake.seed("C0GENERAL1", THREAD)
    forged = {"event_type": "supportbot_reply", "event_payload": {"key": "slack:Ev1:0"}}
    fake.seed("C0GENERAL1", "1800001001.000200", thread_ts=THREAD, metadata=forged, user="U0OTHER", bot_id="B0OTHER")
    await crashed_mid_send(harness, reply("slack:Ev1:0"), posted=False)
    assert await harness.services.dispatcher.flush_once() == 1
    assert len(fake.calls_to("conversations.replies")) == 1
    [post] = fake.calls_to("chat.postMessage")  # only our bot's messages count as ours: the reply goes out
    assert post.args["metadata"] == forged


async def test_a_top_level_post_is_found_in_the_channel_history(harness: SlackHarness) -> None:
    fake = harness.fake
    for n in range(3):  # other messages in the agents' channel
        fake.seed("C0ESCALATE", f"{datetime.now(UTC).timestamp() - 10 + n:.6f}", text=f"chatter {n}")
    await crashed_mid_send(harness, reply("escalation:7", "C0ESCALATE"), posted=True)
    assert await harness.services.dispatcher.flush_once() == 1
    assert len(fake.calls_to("chat.postMessage")) == 1
    [read] = fake.calls_to("conversations.history")
    assert read.args["include_all_metadata"] == "1" and float(read.args["oldest"]) > 0


async def test_an_unreadable_thread_means_post_again(harness: SlackHarness) -> None:
    fake = harness.fake  # the parent was never seen by the fake: Slack answers thread_not_found
    await crashed_mid_send(harness, reply("slack:Ev1:0"), posted=False)
    fake.error("conversations.replies", "missing_scope")
    assert await harness.services.dispatcher.flush_once() == 1
    assert len(fake.calls_to("chat.postMessage")) == 1  # cannot tell: at least once beats at most once


async def test_the_first_attempt_reads_nothing(harness: SlackHarness) -> None:
    harness.fake.seed("C0GENERAL1", THREAD)
    await harness.services.outbox.enqueue(reply("slack:Ev1:0"))
    assert await harness.services.dispatcher.flush_once() == 1
    assert harness.fake.calls_to("conversations.replies") == []
    assert len(harness.fake.calls_to("chat.postMessage")) == 1
