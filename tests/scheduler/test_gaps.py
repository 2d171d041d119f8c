"""The knowledge-gap backlog on seeded questions from five topics the knowledge base does not cover.

Embeddings are real: the product's default model (all-MiniLM-L6-v2 through fastembed, bundled offline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from bot.store.db import Database
from bot.store.reviews import ReviewStore
from bot.store.tables import ConversationRow, FeedbackRow, GapRow, TurnRow
from knowledge.embedding import DEFAULT_MODEL, load_text_embedding
from scheduler.config import ReportConfig
from scheduler.gaps import GapBacklog, format_gaps, gaps_job
from tests.conftest import ManualClock
from tests.doubles import CountingEmbedder

TOPICS: dict[str, list[tuple[str, str]]] = {  # question, how the bot handled it
    "gift card refund": [
        ("Can I get my refund as a gift card instead of back to my credit card?", "abstained"),
        ("Is it possible to receive store credit on a gift card for a return?", "low"),
        ("I want the refund put on a gift card, how?", "down"),
        ("Refund to gift card rather than original payment method?", "abstained"),
        ("Could you refund my order onto a gift card?", "handoff"),
        ("do you offer gift card refunds", "low"),
    ],
    "saml on mobile": [
        ("How do I sign in with SAML single sign-on in the iOS app?", "abstained"),
        ("SSO login does not work on the Android app, what do I configure?", "handoff"),
        ("Does the mobile app support SAML SSO with Okta?", "low"),
        ("Single sign-on on my phone keeps failing with our identity provider", "down"),
        ("Can our employees use Azure AD SSO on the mobile app?", "abstained"),
    ],
    "csv export": [
        ("How can I export all my data to a CSV file?", "abstained"),
        ("Is there a way to download my reports as Excel or CSV?", "low"),
        ("export transactions to spreadsheet", "down"),
        ("Can I get a CSV export of my customer list?", "abstained"),
        ("Where is the button to export data as CSV?", "handoff"),
        ("Bulk export of records to .csv possible?", "low"),
    ],
    "vat number on invoice": [
        ("How do I add our VAT number to invoices?", "abstained"),
        ("The invoice is missing my company's VAT ID, can you fix that?", "handoff"),
        ("Where do I enter a tax ID so it shows on the invoice?", "down"),
        ("Please put our EU VAT registration number on future invoices", "low"),
        ("Can I change the VAT number printed on my invoices?", "abstained"),
    ],
    "delete account": [
        ("How do I permanently delete my account and all my data?", "abstained"),
        ("I want you to erase my personal data under GDPR", "handoff"),
        ("Close my account and remove everything you store about me", "down"),
        ("Where can I request deletion of my user account?", "low"),
        ("delete my profile completely please", "abstained"),
        ("What is the process to have my account data removed?", "abstained"),
    ],
}
WELL_ANSWERED = [
    "How do I reset my password?",
    "What are your opening hours?",
    "How long does shipping take to Germany?",
    "Which payment methods do you accept?",
]
NOW = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def embed_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return load_text_embedding(DEFAULT_MODEL, tmp_path_factory.mktemp("models"))


def embedder(model: Any) -> Any:
    async def embed(texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(lambda: [v.tolist() for v in model.embed(list(texts))])

    return embed


async def _add_turn(db: Database, n: int, question: str, how: str, at: datetime) -> int:
    outcome = {"abstained": "abstained", "handoff": "handoff"}.get(how, "answered")
    confidence = 0.3 if how == "low" else 0.9
    async with db.transaction() as session:
        conv = ConversationRow(channel="slack", key=f"C:{n}", created_at=at, updated_at=at)
        session.add(conv)
        await session.flush()
        session.add(TurnRow(conversation_id=conv.id, role="customer", text=question, channel="slack", created_at=at))
        turn = TurnRow(
            conversation_id=conv.id,
            role="bot",
            message_id=f"reply-{n}",
            text="...",
            channel="slack",
            outcome=outcome,
            question=question,
            confidence=confidence,
            created_at=at,
        )
        session.add(turn)
        if how == "down":
            session.add(
                FeedbackRow(
                    channel="slack",
                    conversation_key=f"C:{n}",
                    reply_ref=f"reply-{n}",
                    user="U1",
                    value=-1,
                    created_at=at,
                )
            )
        if how == "up":
            session.add(
                FeedbackRow(
                    channel="slack",
                    conversation_key=f"C:{n}",
                    reply_ref=f"reply-{n}",
                    user="U1",
                    value=1,
                    created_at=at,
                )
            )
        await session.flush()
        return turn.id


async def _seed(db: Database) -> dict[str, set[int]]:
    ids: dict[str, set[int]] = {}
    n = 0
    for topic, questions in TOPICS.items():
        ids[topic] = set()
        for question, how in questions:
            n += 1
            at = NOW - timedelta(hours=3 * n)
            ids[topic].add(await _add_turn(db, n, question, how, at))
    for question in WELL_ANSWERED:  # confident answers, one with a 👍: never gaps
        n += 1
        await _add_turn(db, n, question, "up" if n % 2 else "ok", NOW - timedelta(hours=n))
    return ids


async def test_backlog_finds_the_five_gaps_and_merges_on_rerun(db: Database, embed_model: Any) -> None:
    clock = ManualClock(NOW)
    seeded = await _seed(db)
    backlog = GapBacklog(db, clock, embedder(embed_model))

    first = await backlog.refresh()
    gaps = await backlog.list()
    assert (first.candidates, first.new_gaps, first.waiting) == (28, 5, 0)
    assert len(gaps) == 5
    async with db.sessions() as session:
        stored = {frozenset(int(t) for t in row.turn_ids) for row in (await session.execute(select(GapRow))).scalars()}
    assert stored == {frozenset(ids) for ids in seeded.values()}  # each gap is exactly one topic
    assert all(g.trend == "new" and g.status == "open" for g in gaps)
    listing = format_gaps(gaps)
    assert "gift card" in listing and "CSV" in listing and "VAT" in listing

    again = await backlog.refresh()  # nothing new: nothing duplicated
    assert (again.candidates, again.new_gaps) == (0, 0)
    assert [(g.id, g.count) for g in await backlog.list()] == [(g.id, g.count) for g in gaps]

    clock.advance(3600)  # new questions on a known topic join its gap
    for k, question in enumerate(["Refund me with a gift card please", "gift card instead of a refund to my bank?"]):
        await _add_turn(db, 100 + k, question, "abstained", clock.now() - timedelta(minutes=k + 1))
    merged = await backlog.refresh()
    assert (merged.candidates, merged.new_gaps, merged.merged) == (2, 0, 1)
    after = {g.label: g.count for g in await backlog.list()}
    assert len(after) == 5
    gift = next(g for g in await backlog.list() if "gift card" in g.label.lower())
    assert gift.count == len(TOPICS["gift card refund"]) + 2


async def test_gap_answered_by_new_documents_is_marked_covered(sqlite_db: Database, embed_model: Any) -> None:
    clock = ManualClock(NOW)
    await _seed(sqlite_db)
    embed = embedder(embed_model)
    documents: list[str] = []

    async def answers_confidently(question: str) -> bool:  # a test double of the knowledge port's verdict
        if not documents:
            return False
        vectors = np.asarray(await embed([question, *documents]))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return bool((vectors[1:] @ vectors[0]).max() >= 0.6)

    backlog = GapBacklog(sqlite_db, clock, embed, answers_confidently)
    assert (await backlog.refresh()).covered == 0
    documents.append("Refunds to a gift card: you can ask for your refund as a gift card instead of your card.")
    clock.advance(86400)
    run = await backlog.refresh()
    assert run.covered == 1
    open_labels = [g.label for g in await backlog.list()]
    assert len(open_labels) == 4 and not any("gift card" in label.lower() for label in open_labels)
    covered = [g for g in await backlog.list(include_closed=True) if g.status == "covered"]
    assert len(covered) == 1 and "gift card" in covered[0].label.lower()

    class Recorder:
        def __init__(self) -> None:
            self.posts: list[tuple[str, str, list[dict[str, Any]]]] = []

        async def post_report(
            self, channel: str, text: str, blocks: list[dict[str, Any]], png: bytes | None, filename: str
        ) -> None:
            self.posts.append((channel, text, blocks))

    recorder = Recorder()
    job = gaps_job(backlog, ReportConfig(slack_report_channel="C-GAPS"), recorder)
    await job()
    channel, text, blocks = recorder.posts[0]
    assert channel == "C-GAPS" and len(blocks) == 1 + 4 and "VAT" in text


async def test_a_reviewers_wrong_verdict_makes_a_gap_and_correct_takes_one_out(sqlite_db: Database) -> None:
    """Verdicts from the console's review queue feed the backlog: a confident answer judged wrong is a gap at once
    (alone: a person already judged it), and a low-confidence answer judged correct is not a candidate."""
    clock = ManualClock(NOW - timedelta(minutes=30))  # reviewed half an hour ago
    wrong = await _add_turn(sqlite_db, 1, "Do you ship to the Canary Islands?", "ok", NOW - timedelta(hours=2))
    fine = await _add_turn(sqlite_db, 2, "How do I reset my password?", "low", NOW - timedelta(hours=1))
    reviews = ReviewStore(sqlite_db, clock)
    assert await reviews.record(wrong, "wrong", "Dana (admin:abc)", expected_source="shipping/islands.md")
    assert await reviews.record(fine, "correct", "Dana (admin:abc)")
    clock.current = NOW
    backlog = GapBacklog(sqlite_db, clock, CountingEmbedder().embed)
    assert [(c.turn_id, c.reason) for c in await backlog.candidates(NOW - timedelta(days=28), NOW)] == [
        (wrong, "reviewed")
    ]
    run = await backlog.refresh()
    assert run.new_gaps == 1
    [gap] = await backlog.list()
    assert gap.examples == ("Do you ship to the Canary Islands?",)
