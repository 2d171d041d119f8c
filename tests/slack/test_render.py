"""Rendering replies as Block Kit and routing events: pure functions, no server."""

from __future__ import annotations

import json

from bot.messages import Action, ActionKind, Channel, Citation, Outcome, Reply
from channels.slack.events import Ignored, SlackPolicy, Verdict, decide, parse
from channels.slack.render import MAX_BLOCKS, SECTION_LIMIT, action_kind, render_reply, split_text
from tests.slack.conftest import load_fixture


def _reply(text: str, **extra: object) -> Reply:
    return Reply(Channel.SLACK, "C1:1.0", "C1:1.0", text, Outcome.ANSWERED, "k", **extra)  # type: ignore[arg-type]


def test_markdown_becomes_mrkdwn_with_numbered_sources_and_buttons() -> None:
    reply = _reply(
        "**Reset** it under [Settings](https://app.example.com/settings) [1]. Use a < b & c > d.",
        citations=(
            Citation(2, "Two-factor", "kb/security/2fa.md"),
            Citation(1, "Reset <password>", "kb/a.md", url="https://docs.example.com/reset", section="Steps"),
        ),
        actions=(
            Action(ActionKind.FEEDBACK_UP, "Helpful", "k"),
            Action(ActionKind.FEEDBACK_DOWN, "Not helpful", "k"),
            Action(ActionKind.OFFER_TICKET, "Create a ticket", "tok"),
        ),
        low_confidence=True,
    )
    text, blocks = render_reply(reply, link_domains={"app.example.com"})
    body = blocks[0]["text"]["text"]
    assert body.startswith("*Reset*") and "<https://app.example.com/settings|Settings>" in body
    assert "a &lt; b &amp; c &gt; d" in body
    sources = next(b for b in blocks if b["type"] == "section" and "*Sources*" in b["text"]["text"])["text"]["text"]
    assert sources.splitlines()[1:] == [
        "1. <https://docs.example.com/reset|Reset &lt;password&gt;> — Steps",
        "2. Two-factor",
    ]
    assert any(b["type"] == "context" and "not fully sure" in json.dumps(b) for b in blocks)
    buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert [(e["action_id"], e["value"]) for e in buttons] == [
        ("supportbot_feedback_up", "k"),
        ("supportbot_feedback_down", "k"),
        ("supportbot_offer_ticket", "tok"),
    ]
    assert [action_kind(e["action_id"]) for e in buttons] == [
        ActionKind.FEEDBACK_UP,
        ActionKind.FEEDBACK_DOWN,
        ActionKind.OFFER_TICKET,
    ]
    assert text.startswith("*Reset*")


def test_long_answers_stay_under_slack_limits() -> None:
    paragraph = "word " * 400  # 2000 characters
    text, blocks = render_reply(_reply("\n\n".join([paragraph] * 120), actions=(Action(ActionKind.FEEDBACK_UP, "x"),)))
    assert len(blocks) <= MAX_BLOCKS
    assert all(len(b["text"]["text"]) <= SECTION_LIMIT for b in blocks if "text" in b)
    assert blocks[-1]["type"] == "actions"  # buttons survive truncation
    assert "shortened" in json.dumps(blocks[-2])
    assert len(text) <= 3000


def test_split_text_prefers_boundaries_and_never_exceeds_the_limit() -> None:
    pieces = split_text("a" * 7000 + " tail", 3000)
    assert all(len(p) <= 3000 for p in pieces) and "".join(pieces).replace(" ", "") == "a" * 7000 + "tail"
    assert split_text("one\n\ntwo", 5) == ["one", "two"]


def test_parse_strips_the_mention_and_unescapes() -> None:
    body = load_fixture("01_app_mention")["body"]
    body["event"]["text"] = "<@UBOT|supportbot> is 2 &lt; 3 &amp; true?"
    msg = parse(body, "UBOT", "BBOT")
    assert not isinstance(msg, Ignored)
    assert msg.text == "is 2 < 3 & true?" and msg.mentioned
    assert msg.conversation_key == "C0GENERAL1:1800000001.000100"
    assert msg.keys() == ["slack:ts:C0GENERAL1:1800000001.000100", "slack:event:Ev0001MENTION"]


def test_parse_reads_slack_markup_as_a_person_would() -> None:
    """Links by their label, channels and user groups by name, other people's mentions out: the question the core
    stores, shows and searches holds no Slack syntax, and an escaped "<b>" the person typed stays text."""
    body = load_fixture("01_app_mention")["body"]
    body["event"]["text"] = (
        "<@UBOT> <!here> <@U0CUSTOMER> per <https://help.acme.com/refunds|the refund page> in <#C0BILLING|billing>, "
        "ask <!subteam^S0TEAM|@support> by <!date^1392734382^{date}|Feb 18>: &lt;b&gt;14 days&lt;/b&gt;? "
        "<mailto:a@b.io>"
    )
    msg = parse(body, "UBOT", "BBOT")
    assert not isinstance(msg, Ignored)
    assert msg.text == "@here per the refund page in #billing, ask @support by Feb 18: <b>14 days</b>? a@b.io"


def test_decide_without_allowed_channels_answers_mentions_anywhere() -> None:
    msg = parse(load_fixture("15_not_allowed_channel")["body"], "UBOT", "BBOT")
    assert not isinstance(msg, Ignored)
    assert decide(msg, SlackPolicy(), None) == (Verdict.ANSWER, "mention")
    assert decide(msg, SlackPolicy(allowed_channels=frozenset({"C0GENERAL1"})), None)[0] is Verdict.IGNORE


def test_community_tips_are_marked_in_the_sources() -> None:
    reply = _reply(
        "Pause backups during calls [1]. Cards: Visa [2].",
        citations=(Citation(1, "Slow line tips", "Slow line tips", community=True), Citation(2, "Payments", "Pay")),
    )
    sources = json.dumps(render_reply(reply))
    assert "1. Slow line tips _(community tip, not an official article)_" in sources
    assert "2. Payments" in sources and sources.count("community tip") == 1
