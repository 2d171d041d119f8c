"""Email rendering of sources: links, titles, and community tips marked as such."""

from __future__ import annotations

from bot.messages import Channel, Citation, Outcome, Reply
from channels.email.render import render_html, render_text


def test_community_tips_are_marked_in_text_and_html() -> None:
    reply = Reply(
        Channel.EMAIL,
        "thread",
        "<m1@example.com>",
        "Pause backups during calls [1]. We accept Visa [2].",
        Outcome.ANSWERED,
        "k",
        citations=(
            Citation(1, "Slow line tips", "Slow line tips", url="https://community.acme.example/t/1", community=True),
            Citation(2, "Payment methods", "Payment methods", url="https://help.acme.example/payments"),
        ),
    )
    text, page = render_text(reply), render_html(reply)
    assert "[1] Slow line tips (community tip, not an official article) - https://community.acme.example/t/1" in text
    assert "[2] Payment methods - https://help.acme.example/payments" in text
    assert "Slow line tips (community tip, not an official article)</a>" in page
    assert page.count("community tip") == 1
