"""How good the week's answers were, not only how many: the figures behind the report's honest headline.

Every bot turn that is an inquiry (answered, answered with a ticket offer, abstained, handed off, failed) is
classified once, with what happened after it:

- feedback: the 👍/👎 on that very reply (`FeedbackRow.reply_ref` is the reply's idempotency key, which the
  conversation store keeps as the bot turn's `message_id`), counted for the answer whenever the vote came;
- "answered, then escalated": within `FOLLOW_UP` after the answer, the same conversation asked for a person (a
  hand-off turn, or the conversation's `escalated_at` when the request was a click) or got a ticket;
- a reviewer's verdict (`review_verdicts`, written by the console's review queue): correct, wrong, should_abstain.

**Resolved without a person** counts only answers with none of: an escalation within `FOLLOW_UP`, a 👎, a wrong
or should-have-abstained verdict; its rate is over all inquiries (an abstention or a hand-off is not resolved).

Time to a person runs from the hand-off (`escalated_at`) to the first sign of a person: an agent's claim of the
case (`handoffs.claimed_at`, a Claim click) or the agent's first message in the conversation
(`first_human_response_at`), whichever came first. Breaches are hand-offs whose wait exceeded
the SLA, or that were still waiting at the end of the week and had already waited longer than it.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot.messages import Outcome, Role
from bot.store.db import Database
from bot.store.tables import ConversationRow, FeedbackRow, HandoffRow, ReviewVerdictRow, TicketRow, TurnRow

FOLLOW_UP = timedelta(hours=24)
CHUNK = 500
ANSWERED = (Outcome.ANSWERED.value, Outcome.ANSWERED_OFFER.value)
INQUIRY_OUTCOMES = (*ANSWERED, Outcome.ABSTAINED.value, Outcome.HANDOFF.value, Outcome.FAILED.value)
VERDICTS = ("correct", "wrong", "should_abstain")
NOT_RESOLVING_VERDICTS = ("wrong", "should_abstain")
ALL = "all"

HEADLINE_DEFINITION = (
    "Resolved without a person: answers not followed within 24 h by a request for a person or a ticket in the same "
    "conversation, without a 👎 and without a reviewer's 'wrong' or 'should have abstained' verdict, as a share "
    "of all inquiries (abstentions, hand-offs and errors count as not resolved)."
)
PERSON_SIGNAL = "agent's claim or first message"


@dataclass(frozen=True, slots=True)
class Inquiry:
    """One inquiry (a bot turn) with what followed it."""

    turn_id: int
    channel: str
    outcome: str
    question: str
    citations: tuple[tuple[str, str], ...]  # (title, public URL or "") of each cited source
    thumbs_up: bool
    thumbs_down: bool
    escalated_after: bool
    verdict: str  # "" when not reviewed

    @property
    def answered(self) -> bool:
        return self.outcome in ANSWERED

    @property
    def resolved(self) -> bool:
        """Answered and nothing says it failed: no escalation after it, no 👎, no wrong/should-abstain verdict."""
        return (
            self.answered
            and not self.escalated_after
            and not self.thumbs_down
            and self.verdict not in NOT_RESOLVING_VERDICTS
        )


def _rate(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True, slots=True)
class Quality:
    """Quality figures for one channel (or `ALL`) in one week."""

    channel: str
    confident: int = 0  # answered with high confidence
    low_confidence: int = 0  # answered with low confidence, a ticket offered
    abstained: int = 0
    handed_off: int = 0
    failed: int = 0
    rated: int = 0  # answers with any feedback
    thumbs_up: int = 0  # answers with a 👍
    thumbs_down: int = 0  # answers with a 👎
    escalated_after: int = 0  # answers followed within 24 h by a hand-off request or a ticket
    correct: int = 0  # reviewer verdicts on this week's inquiries
    wrong: int = 0
    should_abstain: int = 0
    resolved: int = 0

    @property
    def inquiries(self) -> int:
        return self.confident + self.low_confidence + self.abstained + self.handed_off + self.failed

    @property
    def answers(self) -> int:
        return self.confident + self.low_confidence

    @property
    def reviewed(self) -> int:
        return self.correct + self.wrong + self.should_abstain

    @property
    def resolved_rate(self) -> float | None:
        return _rate(self.resolved, self.inquiries)

    @property
    def feedback_share(self) -> float | None:
        return _rate(self.rated, self.answers)

    @property
    def up_rate(self) -> float | None:
        return _rate(self.thumbs_up, self.rated)

    @property
    def down_rate(self) -> float | None:
        return _rate(self.thumbs_down, self.rated)

    @property
    def escalated_after_rate(self) -> float | None:
        return _rate(self.escalated_after, self.answers)


def summarise(channel: str, inquiries: Iterable[Inquiry]) -> Quality:
    counts: dict[str, int] = defaultdict(int)
    for q in inquiries:
        kind = {
            Outcome.ANSWERED.value: "confident",
            Outcome.ANSWERED_OFFER.value: "low_confidence",
            Outcome.ABSTAINED.value: "abstained",
            Outcome.HANDOFF.value: "handed_off",
        }.get(q.outcome, "failed")
        counts[kind] += 1
        if q.verdict in VERDICTS:
            counts[q.verdict] += 1
        if q.answered:
            counts["rated"] += q.thumbs_up or q.thumbs_down
            counts["thumbs_up"] += q.thumbs_up
            counts["thumbs_down"] += q.thumbs_down
            counts["escalated_after"] += q.escalated_after
            counts["resolved"] += q.resolved
    return Quality(channel, **counts)


def by_channel(inquiries: Sequence[Inquiry]) -> tuple[Quality, ...]:
    """Quality per channel (busiest first), then `ALL`."""
    channels: dict[str, list[Inquiry]] = defaultdict(list)
    for q in inquiries:
        channels[q.channel].append(q)
    ordered = sorted(channels.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return (*(summarise(name, items) for name, items in ordered), summarise(ALL, inquiries))


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def _citations(raw: Any) -> tuple[tuple[str, str], ...]:
    """(title, public URL) per citation; a server path is never kept (citations show URLs or titles only)."""
    out = []
    for c in raw or []:
        if isinstance(c, dict):
            url = str(c.get("url", "") or "")
            title = str(c.get("title", "") or "") or url
            if title:
                out.append((title, url))
    return tuple(dict.fromkeys(out))


async def inquiries(db: Database, since: datetime, until: datetime) -> list[Inquiry]:
    """The inquiries of [since, until), each with its feedback, escalation-after and verdict."""
    async with db.sessions() as session:
        turns = (
            await session.execute(
                select(
                    TurnRow.id,
                    TurnRow.conversation_id,
                    TurnRow.channel,
                    TurnRow.outcome,
                    TurnRow.message_id,
                    TurnRow.question,
                    TurnRow.citations,
                    TurnRow.created_at,
                )
                .where(TurnRow.role == Role.BOT.value, TurnRow.created_at >= since, TurnRow.created_at < until)
                .where(TurnRow.outcome.in_(INQUIRY_OUTCOMES))
                .order_by(TurnRow.id)
            )
        ).all()
        refs = sorted({t.message_id for t in turns if t.message_id})
        votes: dict[str, set[int]] = defaultdict(set)
        for chunk in _chunks(refs):
            rows = await session.execute(
                select(FeedbackRow.reply_ref, FeedbackRow.value).where(FeedbackRow.reply_ref.in_(chunk))
            )
            for ref, value in rows.tuples():
                votes[ref].add(int(value))
        verdicts: dict[int, str] = {}
        for chunk in _chunks([t.id for t in turns]):
            rows2 = await session.execute(
                select(ReviewVerdictRow.turn_id, ReviewVerdictRow.verdict).where(ReviewVerdictRow.turn_id.in_(chunk))
            )
            verdicts.update({int(turn_id): str(verdict) for turn_id, verdict in rows2.tuples()})
        answered_in = sorted({t.conversation_id for t in turns if t.outcome in ANSWERED})
        escalations = await _escalation_times(session, answered_in, since, until + FOLLOW_UP)
    out = []
    for t in turns:
        at: datetime = t.created_at
        followed = t.outcome in ANSWERED and any(
            at < e <= at + FOLLOW_UP for e in escalations.get(t.conversation_id, ())
        )
        vote = votes.get(t.message_id, set()) if t.message_id else set()
        out.append(
            Inquiry(
                turn_id=int(t.id),
                channel=str(t.channel or "unknown"),
                outcome=str(t.outcome),
                question=str(t.question or ""),
                citations=_citations(t.citations),
                thumbs_up=1 in vote,
                thumbs_down=-1 in vote,
                escalated_after=followed,
                verdict=verdicts.get(int(t.id), ""),
            )
        )
    return out


async def _escalation_times(
    session: Any, conversation_ids: Sequence[int], since: datetime, until: datetime
) -> dict[int, list[datetime]]:
    """Per conversation: when a person was asked for (hand-off turns, `escalated_at`) or a ticket was opened."""
    times: dict[int, list[datetime]] = defaultdict(list)
    for chunk in _chunks(conversation_ids):
        handoffs = await session.execute(
            select(TurnRow.conversation_id, TurnRow.created_at).where(
                TurnRow.conversation_id.in_(chunk),
                TurnRow.role == Role.BOT.value,
                TurnRow.outcome == Outcome.HANDOFF.value,
                TurnRow.created_at >= since,
                TurnRow.created_at < until,
            )
        )
        for conv_id, at in handoffs.tuples():
            times[int(conv_id)].append(at)
        convs = (
            await session.execute(
                select(
                    ConversationRow.id, ConversationRow.channel, ConversationRow.key, ConversationRow.escalated_at
                ).where(ConversationRow.id.in_(chunk))
            )
        ).all()
        by_key = {(c.channel, c.key): int(c.id) for c in convs}
        for c in convs:
            if c.escalated_at is not None:
                times[int(c.id)].append(c.escalated_at)
        tickets = await session.execute(
            select(TicketRow.channel, TicketRow.conversation_key, TicketRow.created_at).where(
                TicketRow.conversation_key.in_([c.key for c in convs]),
                TicketRow.created_at >= since,
                TicketRow.created_at < until,
            )
        )
        for channel, key, at in tickets.tuples():
            if (channel, key) in by_key:
                times[by_key[(channel, key)]].append(at)
    return times


@dataclass(frozen=True, slots=True)
class PersonWait:
    """Time from a hand-off to a person, for hand-offs made in one week."""

    handoffs: int
    waiting: int  # still without a person
    median_min: float | None
    p90_min: float | None
    sla_breaches: int
    sla_hours: float


def nearest_rank(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


async def person_wait(db: Database, since: datetime, until: datetime, sla: timedelta) -> PersonWait:
    """Hand-offs in [since, until): median and p90 minutes to a person, and how many broke the SLA."""
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(
                    ConversationRow.channel,
                    ConversationRow.key,
                    ConversationRow.escalated_at,
                    ConversationRow.first_human_response_at,
                ).where(ConversationRow.escalated_at >= since, ConversationRow.escalated_at < until)
            )
        ).all()
        claims: dict[tuple[str, str], list[datetime]] = defaultdict(list)
        for start in range(0, len(rows), CHUNK):
            keys = [row.key for row in rows[start : start + CHUNK]]
            for channel, key, claimed in await session.execute(
                select(HandoffRow.channel, HandoffRow.conversation_key, HandoffRow.claimed_at).where(
                    HandoffRow.conversation_key.in_(keys), HandoffRow.claimed_at.is_not(None)
                )
            ):
                if claimed is not None:
                    claims[(channel, key)].append(claimed)
    waits: list[float] = []
    waiting = breaches = 0
    for row in rows:
        escalated: datetime = row.escalated_at
        signs = [row.first_human_response_at, *claims[(row.channel, row.key)]]
        seen = [at for at in signs if at is not None and at >= escalated]
        if seen:
            wait = min(seen) - escalated
            waits.append(wait.total_seconds() / 60)
            breaches += wait > sla
        else:
            waiting += 1
            breaches += until - escalated > sla
    return PersonWait(
        handoffs=len(rows),
        waiting=waiting,
        median_min=nearest_rank(waits, 50),
        p90_min=nearest_rank(waits, 90),
        sla_breaches=breaches,
        sla_hours=sla.total_seconds() / 3600,
    )
