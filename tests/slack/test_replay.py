"""Replay every payload in tests/fixtures/slack/ through the real, signed HTTP endpoint, in order, and check each
one's outcome: answered (once, in the right thread), deduplicated, ignored, a person on the case, feedback stored,
the ticket confirmation flow, an agent's claim."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from bot.messages import Channel, Role
from tests.slack.conftest import SlackHarness, fixture_names, load_fixture

T1 = "1800000001.000100"


def _button(blocks: list[dict[str, Any]], action_id: str) -> dict[str, Any] | None:
    for block in blocks:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return dict(element)
    return None


def _fill(payload: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    text = json.dumps(payload)
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    return dict(json.loads(text))


async def test_every_fixture_has_the_expected_outcome(harness: SlackHarness) -> None:
    fake, services = harness.fake, harness.services
    values: dict[str, str] = {}
    outcomes: dict[str, str] = {}
    for name in fixture_names():
        fixture = load_fixture(name)
        for conv in [fixture.get("setup", {}).get("conversation")]:
            if conv:
                await services.conversations.ensure(Channel.SLACK, f"{conv[0]}:{conv[1]}", requester=conv[2])
        posts_before, updates_before = len(fake.messages), len(fake.updates)
        ephemerals_before = len(fake.ephemerals)
        if fixture["kind"] == "event":
            status = await harness.event(fixture["body"], fixture["headers"])
        else:
            status = await harness.click(_fill(fixture["body"], values))
        assert status == 200, name
        await harness.settle()
        new_posts = fake.messages[posts_before:]
        expect = fixture["expect"]
        outcomes[name] = expect
        if expect == "answered":
            channel, thread = fixture["thread"]
            assert [(p.channel, p.thread_ts) for p in new_posts] == [(channel, thread)], name
            answer = new_posts[0]
            assert answer.blocks and "Sources" in json.dumps(answer.blocks), name
            if name == "01_app_mention":
                values["answer_ts"] = answer.ts
            offer = _button(answer.blocks, "supportbot_offer_ticket")
            if offer is not None:
                values["token"] = offer["value"]
        elif expect in ("ignored", "deduplicated"):
            assert new_posts == [], name
            assert len(fake.ephemerals) == ephemerals_before, name
            assert len(fake.updates) == updates_before, name
        elif expect == "human":
            assert new_posts == [], name
            state = await services.conversations.get(Channel.SLACK, f"C0GENERAL1:{T1}")
            assert state is not None and state.human_on_case and state.assignee == "U0AGENT01"
            history = await services.conversations.history(Channel.SLACK, f"C0GENERAL1:{T1}")
            assert history[-1].role is Role.AGENT
        elif expect == "suppressed":
            assert new_posts == [], name
            history = await services.conversations.history(Channel.SLACK, f"C0GENERAL1:{T1}")
            assert history[-1].text.startswith("Thanks! Still waiting")
        elif expect in ("feedback_up", "feedback_down"):
            assert new_posts == []
            assert len(fake.ephemerals) == ephemerals_before + 1
        elif expect == "preview":
            assert [(p.channel, p.thread_ts) for p in new_posts] == [("C0GENERAL1", T1)], name
            assert _button(new_posts[0].blocks, "supportbot_confirm") is not None
            values["preview_ts"] = new_posts[0].ts
        elif expect == "ticket":
            update = fake.updates[-1]
            assert len(fake.updates) == updates_before + 1, name
            assert update["ts"] == values["preview_ts"] and "Ticket" in update["text"], name
            case_posts = [p for p in fake.messages if p.channel == "C0ESCALATE" and not p.thread_ts]
            if case_posts:
                values["case_ts"] = case_posts[-1].ts
        elif expect == "claimed":
            assert [(p.channel, p.thread_ts) for p in new_posts] == [("C0ESCALATE", values["case_ts"])], name
            assert "is on this case" in new_posts[0].text
        else:
            raise AssertionError(f"{name}: unknown expectation {expect}")

    now = services.clock.now()
    assert await services.feedback.counts(now - timedelta(days=1), now + timedelta(days=1)) == (1, 1)
    tickets = [c for c in fake.updates if "Ticket" in c["text"]]
    assert len(tickets) == 2 and tickets[0]["text"] == tickets[1]["text"]  # the second click: same ticket
    assert fake.reactions == set()  # every working signal was cleared
    answered = sorted(n for n, e in outcomes.items() if e == "answered")
    assert answered == [
        "01_app_mention",
        "04_thread_followup",
        "07_top_level_channel",
        "08_direct_message",
        "19_allowed_bot",
    ]
    # nothing ever answered a bot message, and bot posts only went where people asked
    for post in fake.messages:
        assert post.thread_ts not in ("1800000006.000100", "1800000006.000200")
