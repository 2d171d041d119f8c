"""What retrieval and confidence read of a question: markup is not words of the question (a pasted tag's rare words
are on no page and would make an answerable question look off-topic), while code-like text and error codes stay.
The focus (greetings, stories and sign-offs left out) is tested in test_focus.py."""

from __future__ import annotations

import pytest

from knowledge.focus import search_text


@pytest.mark.parametrize(
    ("asked", "searched"),
    [
        (
            "How often do backups run? <script>alert('x')</script> <img src=x onerror=alert(1)> "
            '<a href="javascript:alert(2)">click</a>',
            "How often do backups run? click",
        ),
        ("Why does <E1042> show when 3 < 5 and 7 > 2?", "Why does <E1042> show when 3 < 5 and 7 > 2?"),
        ("Is List<String> allowed in <code>Java</code>?", "Is List<String> allowed in Java ?"),
        ("<b></b>", "<b></b>"),  # nothing but markup: searched as asked, so it still gets a (low) answer
    ],
)
def test_markup_is_not_searched_but_the_question_is(asked: str, searched: str) -> None:
    assert search_text(asked) == searched
