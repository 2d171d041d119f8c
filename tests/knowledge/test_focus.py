"""The focus of a message: retrieval and confidence read the question, not the greeting, the story and the sign-off
around it (their names, order numbers and devices are on no page and made answerable questions abstain)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bot.messages import Role, Turn
from knowledge.engine import heuristic_condense
from knowledge.focus import MAX_QUESTIONS, question_focus, search_text
from knowledge.noise import wrap

NOW = datetime(2026, 11, 30, tzinfo=UTC)

EMAIL = """Hi team,

my name is Dana Whitfield from Orbital Labs. We bought the Personal plan last week (order #A-88213) and I'm not
happy with it. How long do I have to ask for a refund?

Thanks in advance,
Dana"""


@pytest.mark.parametrize(
    ("message", "focus"),
    [
        (EMAIL, "How long do I have to ask for a refund?"),
        ("How long do I have to ask for a refund? Sent from my iPhone", "How long do I have to ask for a refund?"),
        (
            "@here quick q: our finance team asked me this morning and nobody in the office knew the answer, so here "
            "goes. Which macOS versions does the desktop app support? ty!",
            "Which macOS versions does the desktop app support?",
        ),
        (  # the question first, the story after it
            "Hello, how are you? How do I restore a deleted folder? I dragged a folder called Invoices 2023 into "
            "the bin on my HP Pavilion yesterday and emptied it. My manager Claire needs those files by Monday.\n\n"
            "Many thanks,\nOlu",
            "How do I restore a deleted folder?",
        ),
        (  # no question mark: the sentence that asks
            "Good afternoon, our accountant Mrs. Eriksen needs copies of everything we paid for our tax return by "
            "Friday. Please tell me where I can download my invoices as PDFs.\nKind regards,\nNils Halvorsen",
            "Please tell me where I can download my invoices as PDFs.",
        ),
        (  # two questions: both are the focus, the story between them is not
            "Hi, I'm Chloe from Blue Heron Media. Our IT lead Marcus asked me to compare options for the whole studio "
            "before Friday's meeting. How long is the free trial of the Team plan? We are fourteen people in two "
            "offices. Do I need a card for it?",
            "How long is the free trial of the Team plan? Do I need a card for it?",
        ),
    ],
)
def test_the_focus_is_the_question_without_greeting_story_or_sign_off(message: str, focus: str) -> None:
    assert question_focus(message) == focus


def test_in_a_letter_the_statement_before_a_question_is_story() -> None:
    message = "Hi, I lost my phone on holiday in Crete. How do I get back into my account?\n\nThanks, Giorgos"
    assert question_focus(message) == "How do I get back into my account?"


def test_a_question_that_points_back_keeps_the_sentence_it_points_to() -> None:
    message = (
        "Hi there, I've been a customer for years and never had trouble until our office moved last month. "
        "Since then the app says error E1550 on every computer in the building. How can I fix this?\n\nThanks, Aiko"
    )
    assert question_focus(message) == (
        "Since then the app says error E1550 on every computer in the building. How can I fix this?"
    )


@pytest.mark.parametrize(
    "question",
    [
        "How long do I have to ask for a refund?",
        "I lost my phone and my recovery codes. How do I get back into my account?",  # bare: no letter, no story
        "Can I turn off the single-key shortcuts in the web console? They clash with my screen reader.",
        "Wireless network signal is too weak. How can I fix this?",
        "Anynet+ is not working. What should I do?",
        "How do I update TV’s software through Internet?",
        "This is Ubuntu 22.04 and the app will not start.",  # not a self-introduction
    ],
)
def test_a_plain_question_is_read_whole(question: str) -> None:
    assert question_focus(question) == question


@pytest.mark.parametrize("message", ["Hi team,\n\nThanks in advance,\nDana", "Sent from my iPhone", "", "   "])
def test_a_message_with_nothing_but_courtesies_is_searched_as_written(message: str) -> None:
    assert question_focus(message) == message


def test_without_a_question_a_long_message_is_searched_without_its_courtesies() -> None:
    message = (
        "Hello, my name is Ruairi Doyle. The desktop app on my ThinkPad shows error E1203 since the weekend and the "
        "backup has stopped completely, which worries me a lot because my thesis is on that laptop.\n\nCheers, Ruairi"
    )
    assert question_focus(message) == message[len("Hello, my name is Ruairi Doyle. ") : message.index("\n\n")]


def test_at_most_a_few_questions_are_kept_from_a_message_full_of_them() -> None:
    questions = [f"Does feature number {n} work on the Team plan?" for n in range(1, 40)]
    message = "Hi, we are evaluating you for our whole company and I have a long list. " + " ".join(questions)
    assert question_focus(message) == " ".join(questions[:MAX_QUESTIONS])


def test_hostile_input_is_bounded() -> None:
    long_story = "We bought it last week and it is fine. " * 5000 + "How long do I have to ask for a refund?"
    assert len(question_focus(long_story)) <= 20_000  # the question lies past the bound; the result stays bounded
    for message in ("a" + " " * 60_000 + "b?", "?" * 50_000, "Hi, " * 20_000, "\n" * 50_000 + "x"):
        assert len(question_focus(message)) <= len(message)


def test_search_text_reads_the_focus_of_a_slack_message() -> None:
    # as `channels.slack.events.readable_text` hands it on: mentions out or by name, links by their label
    asked = "@here quick q: a customer asked this on a call. How long does a team invitation stay valid?"
    assert search_text(asked) == "How long does a team invitation stay valid?"


def test_a_noisy_follow_up_is_still_joined_to_the_previous_question() -> None:
    history = [
        Turn(Role.CUSTOMER, "How much does the Team plan cost per user?", NOW),
        Turn(Role.BOT, "$12 per user and month.", NOW),
    ]
    follow_up = "Thanks a lot! And with annual billing?\n\nCheers,\nHarriet\nSent from my iPhone"
    joined = heuristic_condense(follow_up, history)
    assert joined.startswith("How much does the Team plan cost per user?")
    new_question = (
        "Hi again, my colleague Marcus set up the app on his laptop yesterday and says it is slow, and he wants to "
        "check something else first. How do I limit the upload speed to 5 Mbps during office hours on weekdays only?"
    )
    assert heuristic_condense(new_question, history) == new_question  # the story's "it" is no follow-up


def test_the_noise_wrapper_keeps_the_question_and_is_repeatable() -> None:
    question = "How long do I have to ask for a refund?"
    first = [wrap(question, random.Random(3)) for _ in range(2)]
    assert first[0] == first[1] and question in first[0] and first[0] != question
    wrapped = [wrap(question, random.Random(seed)) for seed in range(30)]
    assert len(set(wrapped)) == 30
    assert sum(question_focus(message) == question for message in wrapped) >= 27
