"""Clicks end to end through the signed HTTP endpoint: recorded once, handled by the core, answered through the
outbox; and who may press what (hand-off, claim, resolve, taking a thread), and whose payloads count at all."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

from bot.messages import Channel
from channels.slack.escape import with_mentions
from channels.slack.interactions import clicks
from tests.conftest import ManualClock
from tests.fakes.slack_server import FakeSlack
from tests.slack.conftest import SlackHarness, load_fixture, open_harness, slack_settings

T1 = "1800000001.000100"
KEY = f"C0GENERAL1:{T1}"
_press = iter(range(100, 10_000))


def click(
    action: str,
    value: str,
    *,
    user: str = "U0ASKER01",
    channel: str = "C0GENERAL1",
    message_ts: str = T1,
    thread_ts: str = T1,
    action_ts: str | None = None,
) -> dict[str, Any]:
    """A block_actions payload for one press of one of our buttons (a fresh action_ts unless given)."""
    body = copy.deepcopy(load_fixture("21_feedback_up")["body"])
    body["user"]["id"] = user
    body["channel"]["id"] = body["container"]["channel_id"] = channel
    body["container"]["message_ts"] = body["message"]["ts"] = message_ts
    body["container"]["thread_ts"] = body["message"]["thread_ts"] = thread_ts
    [button] = body["actions"]
    button.update(
        action_id=f"supportbot_{action}", value=value, action_ts=action_ts or f"1800000100.{next(_press):06d}"
    )
    return dict(body)


async def ask(harness: SlackHarness) -> None:
    """U0ASKER01 asks in C0GENERAL1 (thread T1) and gets an answer."""
    assert await harness.event(load_fixture("01_app_mention")["body"]) == 200
    await harness.settle()


async def press(harness: SlackHarness, payload: dict[str, Any]) -> None:
    assert await harness.click(payload) == 200
    await harness.settle()


def ephemeral_texts(fake: FakeSlack) -> list[tuple[str, str]]:
    return [(e["user"], e["text"]) for e in fake.ephemerals]


# --- clicks are inbound messages: recorded once, answered through the outbox ---------------------------------


async def test_a_redelivered_press_is_one_action(harness: SlackHarness) -> None:
    await ask(harness)
    payload = click("feedback_up", f"slack:{KEY}:0", action_ts="1800000200.000100")
    for _ in range(3):  # Slack retrying, a second replica receiving it
        await press(harness, payload)
    now = harness.clock.now()
    assert await harness.services.feedback.counts(now - timedelta(hours=1), now + timedelta(hours=1)) == (1, 0)
    assert len(harness.fake.ephemerals) == 1
    assert await harness.services.ledger.seen("slack:action:1800000200.000100:U0ASKER01:supportbot_feedback_up")


async def test_a_click_reply_survives_a_slack_outage(harness: SlackHarness) -> None:
    fake, clock = harness.fake, harness.clock
    await ask(harness)
    fake.fail(500, seconds=3600, methods={"chat.postEphemeral"})
    await press(harness, click("feedback_down", f"slack:{KEY}:0"))
    assert fake.ephemerals == []
    assert (await harness.services.outbox.stats())[0] == 1  # the thank-you waits in the outbox
    fake.recover()
    clock.advance(700)
    await harness.settle()
    assert ephemeral_texts(fake) == [("U0ASKER01", "Thanks for the feedback. We'll use it to improve the answers.")]


async def test_an_offer_that_is_gone_is_explained_to_the_clicker_only(harness: SlackHarness) -> None:
    await ask(harness)
    posts_before = len(harness.fake.messages)
    await press(harness, click("confirm", "no-such-token"))
    assert len(harness.fake.messages) == posts_before and harness.fake.updates == []
    [(user, text)] = ephemeral_texts(harness.fake)
    assert user == "U0ASKER01" and "can't find that request" in text


# --- authority ------------------------------------------------------------------------------------------------


async def test_only_the_requester_or_an_agent_hands_off(harness: SlackHarness) -> None:
    fake, conversations = harness.fake, harness.services.conversations
    await ask(harness)
    await press(harness, click("talk_to_person", KEY, user="U0OTHER01"))
    assert [e for e in fake.ephemerals if e["user"] == "U0OTHER01"]
    state = await conversations.get(Channel.SLACK, KEY)
    assert state is not None and state.escalated_at is None
    assert [m for m in fake.messages if m.channel == "C0ESCALATE"] == []

    await press(harness, click("talk_to_person", KEY, user="U0ASKER01"))
    assert "asked a person" in fake.in_thread("C0GENERAL1", T1)[-1].text
    assert len([m for m in fake.messages if m.channel == "C0ESCALATE"]) == 1
    state = await conversations.get(Channel.SLACK, KEY)
    assert state is not None and state.escalated_at is not None


async def test_only_agents_claim_or_resolve(harness: SlackHarness) -> None:
    await ask(harness)
    case = f"slack|{KEY}"
    for action in ("claim", "resolve"):
        await press(harness, click(action, case, user="U0OTHER01", channel="C0ESCALATE", message_ts="1.1"))
    assert [t for _u, t in ephemeral_texts(harness.fake)] == ["Only support agents can claim or resolve cases."] * 2
    state = await harness.services.conversations.get(Channel.SLACK, KEY)
    assert state is not None and state.state == "bot"
    await press(harness, click("claim", case, user="U0AGENT01", channel="C0ESCALATE", message_ts="1.1"))
    state = await harness.services.conversations.get(Channel.SLACK, KEY)
    assert state is not None and state.human_on_case and state.assignee == "U0AGENT01"


async def test_claim_and_resolve_name_the_agent_as_a_mention(harness: SlackHarness) -> None:
    """The agent's id comes from Slack's signed payload, so it is shown as a mention; the text around it stays
    escaped, and an id-shaped word typed by a customer never becomes one (`with_mentions` only takes ids the
    reply carries from the payload)."""
    await ask(harness)
    case = f"slack|{KEY}"
    for action in ("claim", "resolve"):
        await press(harness, click(action, case, user="U0AGENT01", channel="C0ESCALATE", message_ts="1.1"))
    posts = [(p.channel, p.thread_ts, p.text) for p in harness.fake.messages if p.channel == "C0ESCALATE"]
    assert posts[-2:] == [
        ("C0ESCALATE", T1, "<@U0AGENT01> is on this case."),
        ("C0ESCALATE", T1, "<@U0AGENT01> marked this case as resolved."),
    ]
    assert with_mentions("U0AGENT01 &lt;!channel&gt; xU0AGENT01", ["U0AGENT01"]) == (
        "<@U0AGENT01> &lt;!channel&gt; xU0AGENT01"
    )
    for not_an_id in ("C0GENERAL1", "u0agent01", "U0AGENT01>|<!channel", "<!here>", "W"):
        assert with_mentions(f"{not_an_id} claimed", [not_an_id]) == f"{not_an_id} claimed"


async def test_a_second_agents_claim_names_the_first_as_a_mention(
    tmp_path: Path, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    settings = slack_settings(tmp_path, fake_slack, slack_agent_users="U0AGENT01,U0AGENT02")
    async with open_harness(settings, fake_slack, clock) as harness:
        await ask(harness)
        await press(harness, click("claim", f"slack|{KEY}", user="U0AGENT01", channel="C0ESCALATE", message_ts="1.1"))
        await press(harness, click("claim", f"slack|{KEY}", user="U0AGENT02", channel="C0ESCALATE", message_ts="1.1"))
        assert ephemeral_texts(fake_slack)[-1] == ("U0AGENT02", "This case is already claimed by <@U0AGENT01>.")


async def test_claim_and_resolve_only_count_in_the_agents_channel(harness: SlackHarness) -> None:
    await ask(harness)
    await press(harness, click("claim", f"slack|{KEY}", user="U0AGENT01", channel="C0GENERAL1"))
    assert [t for _u, t in ephemeral_texts(harness.fake)] == ["Claim and Resolve work only in the agents' channel."]
    state = await harness.services.conversations.get(Channel.SLACK, KEY)
    assert state is not None and not state.human_on_case


async def test_an_empty_agent_list_denies_claims(tmp_path: Path, fake_slack: FakeSlack, clock: ManualClock) -> None:
    settings = slack_settings(tmp_path, fake_slack, slack_agent_users="")
    async with open_harness(settings, fake_slack, clock) as harness:
        await ask(harness)
        await press(harness, click("claim", f"slack|{KEY}", user="U0AGENT01", channel="C0ESCALATE"))
        assert [t for _u, t in ephemeral_texts(fake_slack)] == ["Only support agents can claim or resolve cases."]
        state = await harness.services.conversations.get(Channel.SLACK, KEY)
        assert state is not None and not state.human_on_case


async def test_only_an_agent_takes_a_thread_from_the_bot(harness: SlackHarness) -> None:
    """A third person in an escalated thread is not "a person on the case": the bot keeps answering."""
    conversations = harness.services.conversations
    await ask(harness)
    await conversations.mark_escalated(Channel.SLACK, KEY)
    follow_up = copy.deepcopy(load_fixture("04_thread_followup")["body"])
    follow_up["event"].update(user="U0OTHER01", ts="1800000001.000900", text="Same problem here, any news?")
    follow_up["event_id"] = "EvOTHER0001"
    assert await harness.event(follow_up) == 200
    await harness.settle()
    state = await conversations.get(Channel.SLACK, KEY)
    assert state is not None and not state.human_on_case
    assert len(harness.fake.in_thread("C0GENERAL1", T1)) == 2  # answered, not silenced


async def test_events_and_clicks_from_another_workspace_or_app_are_ignored(harness: SlackHarness) -> None:
    fake, services = harness.fake, harness.services
    await ask(harness)
    posts = len(fake.messages)
    foreign_team = copy.deepcopy(load_fixture("08_direct_message")["body"])
    foreign_team["team_id"] = "T0OTHER"
    foreign_app = copy.deepcopy(load_fixture("08_direct_message")["body"])
    foreign_app["api_app_id"] = "A0OTHER"
    for body in (foreign_team, foreign_app):
        assert await harness.event(body) == 200
    other_app = click("feedback_up", f"slack:{KEY}:0", action_ts="1800000300.000100")
    other_app["api_app_id"] = "A0OTHER"
    other_team = click("feedback_up", f"slack:{KEY}:0", action_ts="1800000300.000200")
    other_team["team"]["id"] = other_team["user"]["team_id"] = "T0OTHER"
    for payload in (other_app, other_team):
        await press(harness, payload)
    await harness.settle()
    assert len(fake.messages) == posts and fake.ephemerals == []
    assert not await services.ledger.seen("slack:event:" + foreign_team["event_id"])
    assert not await services.ledger.seen("slack:action:1800000300.000100:U0ASKER01:supportbot_feedback_up")


async def test_a_click_recorded_before_a_crash_is_answered_on_recovery(harness: SlackHarness) -> None:
    """The process died after recording (and acking) the click, before handling it: recovery answers it once."""
    await ask(harness)
    [pressed] = clicks(click("feedback_up", f"slack:{KEY}:0"))
    msg = pressed.inbound(harness.clock.now(), agents_channel="C0ESCALATE")
    assert await harness.services.ledger.record(msg, pressed.keys()) is not None  # what the adapter did
    for _ in range(2):  # a second recovery pass (another replica) finds nothing left to do
        await harness.services.pipeline.recover()
        await harness.settle()
    assert ephemeral_texts(harness.fake) == [("U0ASKER01", "Thanks for the feedback! :+1:")]
