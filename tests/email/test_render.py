"""Email bodies: Markdown as a real HTML part and a clean text part; sources: no path, community tips marked."""

from __future__ import annotations

from bot.messages import Channel, Citation, Outcome, Reply
from channels.email.render import render_html, render_text

ANSWER = (
    "Here is what the help centre says:\n\n"
    "> You can get a **full refund** within **14 days** of the charge, if it was for:\n>\n"
    "> - a new plan\n> - an upgrade\n\n"
    'See <a href="https://evil.example">this</a> and <script>alert(1)</script> [1] [2]'
)


def _reply() -> Reply:
    citations = (
        Citation(
            1,
            "Refund policy",
            "https://help.acme.example/billing/refund-policy",
            url="https://help.acme.example/billing/refund-policy",
        ),
        Citation(2, "Invoices", "Invoices"),  # no public URL: named, never located
    )
    return Reply(
        Channel.EMAIL, "c", "m", ANSWER, Outcome.ANSWERED, "k", citations=citations, recipient="ann@example.org"
    )


def test_the_text_part_is_clean_text() -> None:
    text = render_text(_reply())
    assert "**" not in text and "full refund within 14 days" in text
    assert "  * a new plan" in text
    assert "[1] Refund policy - https://help.acme.example/billing/refund-policy" in text
    assert "[2] Invoices\n" in text and "Invoices - " not in text


def test_the_html_part_renders_markdown_and_escapes_everything_else() -> None:
    page = render_html(_reply())
    assert "<strong>full refund</strong>" in page and "<blockquote>" in page and "<li>a new plan</li>" in page
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'href="https://evil.example"' not in page  # raw HTML from an answer is text, not a link
    assert '<a href="https://help.acme.example/billing/refund-policy">Refund policy</a>' in page
    assert '<li value="2">Invoices</li>' in page


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
