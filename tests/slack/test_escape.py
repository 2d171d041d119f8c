"""One escaping rule for words we did not write: customer text and model answers never carry a live broadcast,
mention, channel link or disguised link into Slack, and answers link only to allowed help-centre hosts."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime

from bot.messages import Action, ActionKind, Channel, Citation, Outcome, Reply
from channels.slack.escape import slack_text
from channels.slack.render import render_reply
from escalation.handoff import agent_post
from scheduler.gaps import Gap, backlog_blocks
from tests.slack.conftest import SlackHarness, load_fixture

HOSTILE = (
    "<!channel> <!here> <!everyone> hi <@U0BOSS01> see <#C0SECRET|secret> "
    "<https://evil.example/login|Reset your password> [Reset your password](https://evil.example/login) "
    "&lt;!channel&gt;"
)
LIVE = ("<!channel", "<!here", "<!everyone", "<@U", "<#C", "<https://evil", "<http://evil", "|Reset your password>")


def assert_inert(shown: str) -> None:
    for live in LIVE:
        assert live not in shown, live


def test_customer_text_is_shown_literally() -> None:
    shown = slack_text(HOSTILE)
    assert_inert(shown)
    assert "&lt;!channel&gt;" in shown and "&lt;@U0BOSS01&gt;" in shown
    assert "[Reset your password](https://evil.example/login)" in shown  # Markdown stays text, not a link
    assert "&amp;lt;!channel&amp;gt;" in shown  # already-escaped text cannot be un-escaped into a live one


def test_model_text_links_only_to_allowed_hosts() -> None:
    answer = (
        "See [the guide](https://help.example.com/reset) or [this](https://evil.example/x) "
        "or https://evil.example/bare or https://help.example.com/bare. <!here> **done**"
    )
    shown = slack_text(answer, markdown=True, link_hosts={"help.example.com"})
    assert "<https://help.example.com/reset|the guide>" in shown
    assert "evil.example/x" not in shown and " this " in shown  # the label stays, the link goes
    assert "`https://evil.example/bare`" in shown  # shown as code: Slack does not link it
    assert " https://help.example.com/bare" in shown
    assert "&lt;!here&gt;" in shown and "*done*" in shown
    assert_inert(slack_text(HOSTILE, markdown=True, link_hosts={"help.example.com"}))


def test_answers_may_link_to_their_own_sources_and_configured_domains() -> None:
    reply = Reply(
        Channel.SLACK,
        "C1:1.1",
        "C1:1.1",
        "From [the docs](https://docs.example.com/a), [the blog](https://blog.example.org/b), "
        "[status](https://status.example.net/) and [phish](https://example.com.evil.example/)",
        Outcome.ANSWERED,
        "k",
        citations=(Citation(1, "Docs", "kb/a.md", url="https://docs.example.com/a"),),
    )
    _text, blocks = render_reply(reply, link_domains={"example.net"})
    body = blocks[0]["text"]["text"]
    assert "<https://docs.example.com/a|the docs>" in body and "<https://status.example.net/|status>" in body
    assert "blog.example.org" not in body and "evil.example" not in body


def test_previews_and_click_results_are_plain() -> None:
    preview = Reply(
        Channel.SLACK,
        "C1:1.1",
        "action:1",
        f"Create this ticket?\n\nSubject: {HOSTILE}",
        Outcome.ANSWERED,
        "k",
        actions=(Action(ActionKind.CONFIRM, "Confirm", "tok"),),
        plain=True,
    )
    text, blocks = render_reply(preview, link_domains={"evil.example"})  # even an allowed host: no links at all
    assert_inert(text + json.dumps(blocks))
    assert "[Reset your password](https://evil.example/login)" in blocks[0]["text"]["text"]


def test_hand_off_posts_to_agents_are_plain() -> None:
    post = agent_post(
        escalation_channel="C0ESCALATE",
        idempotency_key="k",
        headline="<@U0ASKER01> asked for a person (slack).",
        summary=HOSTILE,
        channel=Channel.SLACK,
        conversation_key="C1:1.1",
        links={"permalink": "https://acme.slack.com/archives/C1/p1"},
    )
    text, blocks = render_reply(post)
    assert_inert(text + json.dumps(blocks))
    assert "Conversation: https://acme.slack.com/archives/C1/p1" in blocks[0]["text"]["text"]


async def test_reports_escape_gap_labels_and_examples(harness: SlackHarness) -> None:
    at = datetime(2026, 11, 16, tzinfo=UTC)
    gap = Gap(1, HOSTILE, "open", 4, ("<!channel> why is this broken", "> quoted"), "rising", at, at)
    blocks = backlog_blocks([gap])
    await harness.channel.post_report("C0REPORTS1", HOSTILE, blocks, None, "")
    [posted] = harness.fake.messages
    assert_inert(posted.text + json.dumps(posted.blocks))
    section = posted.blocks[1]["text"]["text"]
    assert section.startswith("*&lt;!channel&gt;") and "\n> &lt;!channel&gt; why is this broken" in section


async def test_a_hostile_question_echoed_in_an_answer_stays_inert(harness: SlackHarness) -> None:
    body = copy.deepcopy(load_fixture("08_direct_message")["body"])
    body["event"]["text"] = "<!here> <@U0BOSS01> [win](https://evil.example/x) how?"
    assert await harness.event(body) == 200
    await harness.settle()
    [answer] = harness.fake.messages
    assert "<!here" in body["event"]["text"]  # what Slack delivered was live
    assert_inert(answer.text + json.dumps(answer.blocks))
