"""The console's read models: plain SQL over the store's tables, each list read with keyset pagination
(`WHERE id < :before ORDER BY id DESC LIMIT n`; the review queue orders by (priority, id) instead), so a page costs
the same on page 1 and page 20,000."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Float, Integer, and_, case, cast, exists, func, literal, or_, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from bot.messages import Citation
from bot.store.codec import citation_from_json
from bot.store.db import Database
from bot.store.ledger import DEAD_LETTER
from bot.store.tables import (
    ConversationRow,
    FeedbackRow,
    GapRow,
    HandoffRow,
    InboundRow,
    JobRunRow,
    OutboxRow,
    PendingActionRow,
    ReviewVerdictRow,
    TicketRow,
    TurnRow,
    handoff_conversation,
)

BOT = "bot"
REVIEWABLE = ("answered", "answered_offer", "abstained")


@dataclass(frozen=True, slots=True)
class Bands:
    """Confidence bands: low below the abstain threshold, high from the low-confidence threshold up."""

    abstain: float
    low_confidence: float

    def where(self, band: str) -> ColumnElement[bool] | None:
        conf = TurnRow.confidence
        if band == "low":
            return conf < self.abstain
        if band == "medium":
            return and_(conf >= self.abstain, conf < self.low_confidence)
        if band == "high":
            return conf >= self.low_confidence
        return None


@dataclass(frozen=True, slots=True)
class TurnFilter:
    channel: str = ""
    outcome: str = ""
    band: str = ""
    since: date | None = None
    until: date | None = None
    feedback: str = ""  # "down", "up", "any" or ""


@dataclass(frozen=True, slots=True)
class TurnLine:
    id: int
    conversation_id: int
    created_at: datetime
    channel: str
    outcome: str
    confidence: float | None
    latency_ms: float
    question: str


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    next_before: int | None  # the cursor of the next (older) page, None on the last one


def _page(rows: list[Any], size: int, key: Any) -> Page:
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, key(rows[-1]) if more and rows else None)


def _feedback(value: int | None) -> ColumnElement[bool]:
    cond = FeedbackRow.reply_ref == TurnRow.message_id
    if value is not None:
        cond = and_(cond, FeedbackRow.value == value)
    return exists(select(FeedbackRow.id).where(cond))


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


_LINE = (
    TurnRow.id,
    TurnRow.conversation_id,
    TurnRow.created_at,
    TurnRow.channel,
    TurnRow.outcome,
    TurnRow.confidence,
    TurnRow.latency_ms,
    TurnRow.question,
)


async def bot_turns(db: Database, bands: Bands, f: TurnFilter, before: int | None, size: int) -> Page:
    """Bot answers (one per inquiry), newest first, filtered; the cursor is the last row's id."""
    query = select(*_LINE).where(TurnRow.role == BOT)
    if f.channel:
        query = query.where(TurnRow.channel == f.channel)
    if f.outcome:
        query = query.where(TurnRow.outcome == f.outcome)
    band = bands.where(f.band)
    if band is not None:
        query = query.where(band)
    if f.since:
        query = query.where(TurnRow.created_at >= _day_start(f.since))
    if f.until:
        query = query.where(TurnRow.created_at < _day_start(f.until + timedelta(days=1)))
    if f.feedback:
        query = query.where(_has_feedback({"down": -1, "up": 1}.get(f.feedback)))
    if not (f.since or f.until):
        return await _lines(db, query, before, size)  # bot turns are stored in time order: id order is time order
    if before is not None:  # a date range reads the created_at index; the cursor row's time continues the list
        anchor = select(TurnRow.created_at).where(TurnRow.id == before).scalar_subquery()
        query = query.where(tuple_(TurnRow.created_at, TurnRow.id) < tuple_(anchor, before))
    query = query.order_by(TurnRow.created_at.desc(), TurnRow.id.desc()).limit(size + 1)
    async with db.sessions() as session:
        rows = [TurnLine(*r) for r in (await session.execute(query)).tuples()]
    return _page(rows, size, lambda r: r.id)


def _has_feedback(value: int | None) -> ColumnElement[bool]:
    """Answers with feedback, as an IN over the (small) feedback table: one hashed lookup per scanned turn."""
    refs = select(FeedbackRow.reply_ref)
    if value is not None:
        refs = refs.where(FeedbackRow.value == value)
    return TurnRow.message_id.in_(refs)


@dataclass(frozen=True, slots=True)
class ReviewPage:
    """One page of the review queue; `next_after` is the cursor of the next page ("priority:id"), None on the last."""

    rows: list[TurnLine]
    next_after: str | None


def review_cursor(raw: str) -> tuple[float, int] | None:
    """The (priority, id) a `next_after` cursor names, or None for anything else (a hand-edited URL: page one)."""
    priority, _, turn = raw.partition(":")
    try:
        value = float(priority)
    except ValueError:
        return None
    return (value, int(turn)) if turn.isdigit() and -1.0 <= value <= 1.0 else None


async def review_queue(db: Database, bands: Bands, after: tuple[float, int] | None, size: int) -> ReviewPage:
    """Answers to review: a 👎 or a confidence below the low-confidence threshold, not yet reviewed. Most likely
    wrong first: 👎 answers, then by confidence from the lowest (an abstention, then the least sure answer), oldest
    first within a level. Most answers sit under the low-confidence threshold, which is set strict, so a queue in
    time order would put a 0.84 answer above a 0.21 one; keyset pagination on (priority, id)."""
    priority = case(
        (_feedback(-1), literal(-1.0)), else_=func.coalesce(cast(TurnRow.confidence, Float), literal(0.0))
    ).label("priority")
    query = (
        select(*_LINE, priority)
        .where(TurnRow.role == BOT, TurnRow.outcome.in_(REVIEWABLE))
        .where(or_(TurnRow.confidence < bands.low_confidence, _feedback(-1)))
        .where(~exists(select(ReviewVerdictRow.id).where(ReviewVerdictRow.turn_id == TurnRow.id)))
    )
    if after is not None:
        query = query.where(tuple_(priority, TurnRow.id) > tuple_(literal(after[0]), literal(after[1])))
    query = query.order_by(priority, TurnRow.id).limit(size + 1)
    async with db.sessions() as session:
        found = (await session.execute(query)).tuples().all()
    rows = [TurnLine(*row[:-1]) for row in found[:size]]
    last = found[size - 1] if len(found) > size else None
    return ReviewPage(rows, f"{float(last[-1])!r}:{last[0]}" if last is not None else None)


async def _lines(db: Database, query: Any, before: int | None, size: int) -> Page:
    if before is not None:
        query = query.where(TurnRow.id < before)
    query = query.order_by(TurnRow.id.desc()).limit(size + 1)
    async with db.sessions() as session:
        rows = [TurnLine(*r) for r in (await session.execute(query)).tuples()]
    return _page(rows, size, lambda r: r.id)


@dataclass(frozen=True, slots=True)
class TurnView:
    row: TurnRow
    citations: tuple[Citation, ...] = ()
    thumbs_up: int = 0
    thumbs_down: int = 0
    verdict: ReviewVerdictRow | None = None
    passages: tuple[Citation, ...] = ()  # retrieved but not cited


def _citations(stored: list[Any]) -> tuple[Citation, ...]:
    return tuple(citation_from_json(c) for c in stored if isinstance(c, dict) and "index" in c)


@dataclass(frozen=True, slots=True)
class ConversationView:
    conversation: ConversationRow
    turns: list[TurnView]


async def conversation(db: Database, conversation_id: int, limit: int = 500) -> ConversationView | None:
    async with db.sessions() as session:
        conv = await session.get(ConversationRow, conversation_id)
        if conv is None:
            return None
        turns = list(
            (
                await session.execute(
                    select(TurnRow).where(TurnRow.conversation_id == conversation_id).order_by(TurnRow.id).limit(limit)
                )
            ).scalars()
        )
        refs = [t.message_id for t in turns if t.role == BOT and t.message_id]
        votes: dict[str, list[int]] = {}
        if refs:
            for ref, value in (
                await session.execute(
                    select(FeedbackRow.reply_ref, FeedbackRow.value).where(FeedbackRow.reply_ref.in_(refs))
                )
            ).tuples():
                votes.setdefault(ref, []).append(value)
        ids = [t.id for t in turns if t.role == BOT]
        verdicts = (
            {
                v.turn_id: v
                for v in (
                    await session.execute(select(ReviewVerdictRow).where(ReviewVerdictRow.turn_id.in_(ids)))
                ).scalars()
            }
            if ids
            else {}
        )
    views = [
        TurnView(
            t,
            _citations(t.citations),
            votes.get(t.message_id, []).count(1),
            votes.get(t.message_id, []).count(-1),
            verdicts.get(t.id),
            _citations(t.passages or []),
        )
        for t in turns
    ]
    return ConversationView(conv, views)


@dataclass(frozen=True, slots=True)
class Overview:
    since: datetime
    total: int
    by_channel_outcome: dict[tuple[str, str], int]
    deflection: float | None  # answered without a person / all inquiries
    p50_ms: float | None
    p95_ms: float | None
    confidence: list[tuple[str, int]]  # (band label, count)
    thumbs_down: int
    pending_confirmations: int
    handoffs_waiting: int
    dead_letters: int
    dead_replies: int
    last_kb_sync: datetime | None
    cost_usd: float = 0.0
    channels: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)


async def overview(db: Database, since: datetime) -> Overview:
    recent = and_(TurnRow.role == BOT, TurnRow.created_at >= since)
    bucket = cast(TurnRow.confidence * 5, Integer)
    async with db.sessions() as session:
        grid: dict[tuple[str, str], int] = {}
        buckets: dict[int, int] = {}
        cost = 0.0
        rows = await session.execute(  # one pass over the period's answers for counts, confidence and cost
            select(TurnRow.channel, TurnRow.outcome, bucket, func.count(), func.sum(TurnRow.cost_usd))
            .where(recent)
            .group_by(TurnRow.channel, TurnRow.outcome, bucket)
        )
        for channel, outcome, band, n, spent in rows.tuples():
            grid[(channel, outcome)] = grid.get((channel, outcome), 0) + int(n)
            if band is not None:
                buckets[int(band)] = buckets.get(int(band), 0) + int(n)
            cost += float(spent or 0.0)
        total = sum(grid.values())
        p50, p95 = await _latency_percentiles(session, db.dialect, recent, total)
        down = (
            await session.execute(
                select(func.count())
                .select_from(FeedbackRow)
                .where(FeedbackRow.value == -1, FeedbackRow.created_at >= since)
            )
        ).scalar_one()
        pending = (
            await session.execute(
                select(func.count()).select_from(PendingActionRow).where(PendingActionRow.state == "pending")
            )
        ).scalar_one()
        waiting = (
            await session.execute(
                select(func.count())
                .select_from(ConversationRow)
                .where(ConversationRow.escalated_at.is_not(None), ConversationRow.first_human_response_at.is_(None))
                .where(ConversationRow.state != "resolved")
            )
        ).scalar_one()
        dead = (
            await session.execute(select(func.count()).select_from(InboundRow).where(InboundRow.status == DEAD_LETTER))
        ).scalar_one()
        dead_replies = (
            await session.execute(select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "dead"))
        ).scalar_one()
        synced = (
            await session.execute(
                select(func.max(JobRunRow.finished_at)).where(JobRunRow.job == "kb_sync", JobRunRow.status == "ok")
            )
        ).scalar_one()
    handled = sum(n for (_, o), n in grid.items() if o in ("answered", "answered_offer"))
    labels = ["0.0–0.2", "0.2–0.4", "0.4–0.6", "0.6–0.8", "0.8–1.0"]
    confidence = [(labels[i], buckets.get(i, 0) + (buckets.get(5, 0) if i == 4 else 0)) for i in range(5)]
    return Overview(
        since,
        total,
        grid,
        handled / total if total else None,
        p50,
        p95,
        confidence,
        int(down),
        int(pending),
        int(waiting),
        int(dead),
        int(dead_replies),
        synced,
        cost,
        sorted({c for c, _ in grid}),
        sorted({o for _, o in grid}),
    )


async def _latency_percentiles(
    session: Any, dialect: str, where: ColumnElement[bool], total: int
) -> tuple[float | None, float | None]:
    """p50 and p95 of answer latency: PostgreSQL computes them in one pass; elsewhere, by rank with OFFSET."""
    if not total:
        return None, None
    if dialect == "postgresql":
        pair = select(
            func.percentile_disc(0.5).within_group(TurnRow.latency_ms),
            func.percentile_disc(0.95).within_group(TurnRow.latency_ms),
        ).where(where)
        p50, p95 = (await session.execute(pair)).one()
        return float(p50), float(p95)
    return await _percentile(session, where, total, 0.50), await _percentile(session, where, total, 0.95)


async def _percentile(session: Any, where: ColumnElement[bool], total: int, q: float) -> float | None:
    """The q-quantile of answer latency by rank (nearest rank), portable across SQLite and PostgreSQL."""
    if not total:
        return None
    rank = min(total - 1, max(0, int(q * total + 0.5) - 1))
    query = select(TurnRow.latency_ms).where(where).order_by(TurnRow.latency_ms).offset(rank).limit(1)
    value = (await session.execute(query)).scalar_one_or_none()
    return float(value) if value is not None else None


async def tickets(db: Database, before: int | None, size: int) -> Page:
    query = select(TicketRow).order_by(TicketRow.id.desc()).limit(size + 1)
    if before is not None:
        query = query.where(TicketRow.id < before)
    async with db.sessions() as session:
        rows = list((await session.execute(query)).scalars())
    return _page(rows, size, lambda r: r.id)


async def handoffs(db: Database, before: int | None, size: int) -> Page:
    """Conversations handed to a person, newest first (the id orders them as well as the time would)."""
    query = (
        select(ConversationRow)
        .where(ConversationRow.escalated_at.is_not(None))
        .order_by(ConversationRow.id.desc())
        .limit(size + 1)
    )
    if before is not None:
        query = query.where(ConversationRow.id < before)
    async with db.sessions() as session:
        rows = list((await session.execute(query)).scalars())
    return _page(rows, size, lambda r: r.id)


async def gaps(db: Database, limit: int = 100) -> list[GapRow]:
    query = select(GapRow).where(GapRow.status == "open").order_by(GapRow.count.desc(), GapRow.id).limit(limit)
    async with db.sessions() as session:
        return list((await session.execute(query)).scalars())


async def dead_letters(db: Database, before: int | None, size: int) -> Page:
    query = select(InboundRow).where(InboundRow.status == DEAD_LETTER).order_by(InboundRow.id.desc()).limit(size + 1)
    if before is not None:
        query = query.where(InboundRow.id < before)
    async with db.sessions() as session:
        rows = list((await session.execute(query)).scalars())
    return _page(rows, size, lambda r: r.id)


@dataclass(frozen=True, slots=True)
class LateHandoff:
    """A hand-off nobody claimed or resolved within HANDOFF_SLA_MINUTES."""

    channel: str
    conversation_key: str
    conversation_id: int | None
    requested_at: datetime


async def late_handoffs(db: Database, now: datetime, sla: timedelta, limit: int = 10) -> tuple[int, list[LateHandoff]]:
    """How many hand-offs are unclaimed and unresolved past the SLA, and the oldest `limit` of them."""
    late = and_(HandoffRow.claimed_at.is_(None), HandoffRow.resolved_at.is_(None), HandoffRow.requested_at < now - sla)
    async with db.sessions() as session:
        count = (await session.execute(select(func.count()).select_from(HandoffRow).where(late))).scalar_one()
        rows = (
            await session.execute(
                select(HandoffRow.channel, HandoffRow.conversation_key, ConversationRow.id, HandoffRow.requested_at)
                .outerjoin(ConversationRow, handoff_conversation())
                .where(late)
                .order_by(HandoffRow.requested_at, HandoffRow.id)
                .limit(limit)
            )
        ).tuples()
        return int(count), [LateHandoff(*r) for r in rows]
