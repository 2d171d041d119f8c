"""A seeded support history for the weekly report, and the figures it should give, computed here from the plan
(never by the report's code): what each inquiry was, who voted, whether a person was asked for after it and when,
what a reviewer said.

The history is written through the store's own API (`ConversationStore.record_turn`, `FeedbackStore.record`,
`mark_escalated`, `record_human_message`), so a 👎 lands on the reply key the real service gives an answer; tickets
and reviewer verdicts (written by the escalation service and the console) are inserted as rows.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update

from bot.messages import Channel, Citation, InboundMessage, Outcome, Reply
from bot.store.conversations import ConversationStore, Trace
from bot.store.db import Database
from bot.store.feedback import FeedbackStore
from bot.store.outbox import Outbox
from bot.store.tables import GapRow, OutboxRow, ReviewVerdictRow, TicketRow, TurnRow
from tests.conftest import ManualClock

REPORT_WEEK = "2026-W49"
WEEK_STARTS = [datetime(2026, 10, 12, tzinfo=UTC) + timedelta(weeks=n) for n in range(8)]  # W42..W49, by hand
SLA = timedelta(hours=4)
QUESTIONS = [
    "How do I reset my password?",
    "Can I get a refund to a gift card?",
    "how do i  reset my PASSWORD?",  # the same question, other case and spacing
    "Why was I charged twice? write to jane.doe@example.com",  # PII: masked in the report
    "Does SAML work on <mobile> & tablets?",  # markup: escaped in every medium
    "Where is my invoice?",
]
DOCS = [
    Citation(1, "Resetting your password", "kb/account/reset.md", "https://help.example.com/reset"),
    Citation(1, "Refunds & gift cards", "kb/billing/refunds.md", "https://help.example.com/refunds"),
    Citation(1, "Invoices", "/srv/kb/billing/invoices.md"),  # no public URL: shown by title only
]


@dataclass
class Planned:
    """One inquiry as planned: its outcome and everything that follows it."""

    n: int
    at: datetime
    channel: Channel
    outcome: str
    question: str
    requester: str
    doc: Citation | None = None
    votes: tuple[int, ...] = ()
    escalation: str = ""  # "" | handoff | ticket | button | late (a hand-off 30 h later)
    escalate_after: timedelta = timedelta(0)
    verdict: str = ""
    person_after: timedelta | None = None  # a person wrote this long after the hand-off (None: nobody yet)
    turn_id: int = 0

    @property
    def answered(self) -> bool:
        return self.outcome in ("answered", "answered_offer")

    @property
    def escalated_at(self) -> datetime | None:
        """When the conversation was first handed to a person (the inquiry itself, or what followed it)."""
        if self.outcome == "handoff":
            return self.at
        return self.at + self.escalate_after if self.escalation in ("handoff", "late", "button") else None


@dataclass
class History:
    planned: list[Planned] = field(default_factory=list)
    gaps: list[tuple[str, list[int], str]] = field(default_factory=list)  # label, planned n's, example


def _plan(rng: random.Random, n: int, at: datetime, outcome: str | None = None) -> Planned:
    outcome = (
        outcome or rng.choices(["answered", "answered_offer", "abstained", "handoff", "failed"], [45, 20, 15, 12, 8])[0]
    )
    p = Planned(
        n=n,
        at=at,
        channel=rng.choice([Channel.SLACK, Channel.SLACK, Channel.EMAIL, Channel.API]),
        outcome=outcome,
        question=rng.choice(QUESTIONS),
        requester=f"customer{rng.randrange(40)}@shop.example",
    )
    if p.answered:
        p.doc = rng.choice(DOCS)
        p.votes = rng.choice([(), (), (), (1,), (1,), (-1,), (1, -1)])
        p.escalation = rng.choices(["", "handoff", "ticket", "button", "late"], [60, 12, 10, 8, 10])[0]
        p.escalate_after = timedelta(hours=30) if p.escalation == "late" else timedelta(minutes=rng.randrange(5, 1400))
        p.verdict = rng.choices(["", "correct", "wrong", "should_abstain"], [60, 20, 12, 8])[0]
    if p.outcome == "abstained":
        p.verdict = rng.choices(["", "correct"], [80, 20])[0]
    if p.escalated_at is not None and p.escalation != "ticket":
        p.person_after = rng.choice([None, timedelta(minutes=rng.randrange(1, 600))])
    return p


def plan_history(seed: int = 49, per_week: int = 16) -> History:
    rng = random.Random(seed)
    history = History()
    for start in WEEK_STARTS:
        for _ in range(per_week + rng.randrange(-5, 6)):
            at = start + timedelta(minutes=rng.randrange(0, 7 * 24 * 60 - 60))
            history.planned.append(_plan(rng, len(history.planned), at))
    return history


def _msg(p: Planned, suffix: str, at: datetime, text: str) -> InboundMessage:
    return InboundMessage(p.channel, f"conv-{p.n}", f"m-{p.n}-{suffix}", p.requester, text, at)


def _reply(msg: InboundMessage, outcome: str) -> Reply:
    """The reply key the conversation service gives a turn's first reply (bot/conversation.py `_reply_key`)."""
    key = f"{msg.channel.value}:{msg.message_id}:0"
    return Reply(msg.channel, msg.conversation_key, msg.message_id, "text", Outcome(outcome), key)


async def seed(db: Database, history: History) -> None:
    clock = ManualClock()
    conversations = ConversationStore(db, clock, Outbox(db, clock))
    feedback = FeedbackStore(db, clock)
    for p in history.planned:
        clock.current = p.at
        msg = _msg(p, "q", p.at, p.question)
        citations = (p.doc,) if p.doc else ()
        trace = Trace(p.outcome, p.question, "answer", 10.0, {}, confidence=0.5, citations=citations)
        reply = _reply(msg, p.outcome)
        await conversations.record_turn(msg, trace, [reply])
        for voter, value in enumerate(p.votes):
            await feedback.record(p.channel, msg.conversation_key, reply.idempotency_key, f"U{voter}", value)
        if p.outcome == "handoff":
            await conversations.mark_escalated(p.channel, msg.conversation_key)
        if p.escalation:
            clock.current = p.at + p.escalate_after
            if p.escalation in ("handoff", "late"):
                follow = _msg(p, "h", clock.current, "can I talk to a person?")
                await conversations.record_turn(
                    follow, Trace("handoff", follow.text, "ok", 1.0, {}), [_reply(follow, "handoff")]
                )
                await conversations.mark_escalated(p.channel, msg.conversation_key)
            elif p.escalation == "button":
                await conversations.mark_escalated(p.channel, msg.conversation_key)
            else:
                async with db.transaction() as session:
                    session.add(
                        TicketRow(
                            action_token=f"t{p.n}",
                            backend="internal",
                            state="open",
                            channel=p.channel.value,
                            conversation_key=msg.conversation_key,
                            created_at=clock.current,
                            updated_at=clock.current,
                        )
                    )
        if p.person_after is not None and p.escalated_at is not None:
            clock.current = p.escalated_at + p.person_after
            await conversations.record_human_message(p.channel, msg.conversation_key, "UAGENT", "on it", f"a-{p.n}")
    async with db.sessions() as session:
        rows = await session.execute(select(TurnRow.message_id, TurnRow.id).where(TurnRow.role == "bot"))
        ids = dict(rows.tuples().all())
    for p in history.planned:
        p.turn_id = ids[f"{p.channel.value}:m-{p.n}-q:0"]
    async with db.transaction() as session:
        await session.execute(update(OutboxRow).values(status="sent"))  # the answers went out long ago
        for p in history.planned:
            if p.verdict:
                session.add(
                    ReviewVerdictRow(
                        turn_id=p.turn_id, verdict=p.verdict, reviewer="lead", created_at=p.at + timedelta(days=1)
                    )
                )
        report_week = [p for p in history.planned if p.at >= WEEK_STARTS[-1]]
        groups = [
            ("refunds to gift cards", [p for p in report_week if "refund" in p.question][:6]),
            ("SAML on mobile", [p for p in report_week if "SAML" in p.question][:4]),
        ]
        now = WEEK_STARTS[-1] + timedelta(days=7)
        for label, members in groups:
            if not members:
                continue
            history.gaps.append((label, [p.n for p in members], members[0].question))
            session.add(
                GapRow(
                    label=label,
                    count=len(members),
                    examples=[m.question for m in members],
                    turn_ids=[m.turn_id for m in members],
                    trend="new",
                    first_seen=now,
                    last_seen=now,
                    updated_at=now,
                )
            )


# --- the expected figures, from the plan ----------------------------------------------------------------------


@dataclass
class Expected:
    by_channel: dict[str, dict[str, int]]
    waits: list[float]
    handoffs: int
    waiting: int
    breaches: int

    def total(self, key: str) -> int:
        return self.by_channel["all"][key]


def _inquiry_turns(history: History) -> list[tuple[datetime, str, str, Planned | None]]:
    """Every bot turn that is an inquiry: (time, channel, outcome, the planned inquiry if it is one)."""
    turns: list[tuple[datetime, str, str, Planned | None]] = []
    for p in history.planned:
        turns.append((p.at, p.channel.value, p.outcome, p))
        if p.escalation in ("handoff", "late"):
            turns.append((p.at + p.escalate_after, p.channel.value, "handoff", None))
    return turns


def expected(history: History, week_start: datetime) -> Expected:
    end = week_start + timedelta(days=7)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for at, channel, outcome, p in _inquiry_turns(history):
        if not week_start <= at < end:
            continue
        for key in (channel, "all"):
            c = counts[key]
            c[outcome] += 1
            c["inquiries"] += 1
            if p is None or not p.answered:
                if p is not None and p.verdict:
                    c[p.verdict] += 1
                continue
            down = -1 in p.votes
            escalated = p.escalation in ("handoff", "ticket", "button")  # "late" is 30 h after: not counted
            c["answers"] += 1
            c["rated"] += bool(p.votes)
            c["up"] += 1 in p.votes
            c["down"] += down
            c["escalated_after"] += escalated
            if p.verdict:
                c[p.verdict] += 1
            c["resolved"] += not escalated and not down and p.verdict not in ("wrong", "should_abstain")
    waits, waiting, breaches, handoffs = [], 0, 0, 0
    for p in history.planned:
        esc = p.escalated_at
        if esc is None or not week_start <= esc < end:
            continue
        handoffs += 1
        if p.person_after is None:
            waiting += 1
            breaches += end - esc > SLA
        else:
            waits.append(p.person_after.total_seconds() / 60)
            breaches += p.person_after > SLA
    return Expected({k: dict(v) for k, v in counts.items()}, waits, handoffs, waiting, breaches)


def nearest_rank(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct * len(ordered) / 100) - 1)]


def median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None
