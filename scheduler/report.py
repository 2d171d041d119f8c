"""The weekly report for managers: figures for one ISO week (in the configured time zone) and the week before.

Everything is computed from the stored traces, so the report says what happened, not what metrics a process
happened to see: bot turns (outcome, channel, tokens, cost), feedback, escalations and a person's first response,
tickets, channel hygiene events and the knowledge-gap backlog. A week with no traffic gives zeros and `None`
for rates and times (never a division by zero); the renderers say "no inquiries this week".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import func, select

from bot.messages import Outcome, Role
from bot.store.db import Database
from bot.store.tables import ChannelEventRow, ConversationRow, FeedbackRow, GapRow, TicketRow, TurnRow

ANSWERED = (Outcome.ANSWERED.value, Outcome.ANSWERED_OFFER.value)
ABSTAINED = (Outcome.ABSTAINED.value,)
ESCALATED = (Outcome.HANDOFF.value,)
FAILED = (Outcome.FAILED.value,)
INQUIRY_OUTCOMES = (*ANSWERED, *ABSTAINED, *ESCALATED, *FAILED)  # suppressed and rejected turns are not inquiries
HYGIENE_KINDS = ("auto_reply", "bounce", "list", "loop", "quarantined")


@dataclass(frozen=True, slots=True)
class Week:
    """An ISO week in a time zone: [start, end) as UTC instants."""

    year: int
    week: int
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    def previous(self, tz: tzinfo) -> Week:
        prior = (self.start.astimezone(tz) - timedelta(days=3)).date().isocalendar()
        return iso_week(prior.year, prior.week, tz)


def iso_week(year: int, week: int, tz: tzinfo) -> Week:
    monday = date.fromisocalendar(year, week, 1)
    start = datetime.combine(monday, time(0), tzinfo=tz)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=tz)
    return Week(year, week, start.astimezone(UTC), end.astimezone(UTC))


def parse_week(text: str, tz: tzinfo) -> Week:
    """`2026-W46` -> that week; ValueError with a readable message otherwise."""
    try:
        year_part, week_part = text.upper().split("-W")
        return iso_week(int(year_part), int(week_part), tz)
    except ValueError:
        raise ValueError(f"not an ISO week: {text!r} (use YYYY-Www, e.g. 2026-W46)") from None


def last_complete_week(now: datetime, tz: tzinfo) -> Week:
    """The ISO week before the one `now` falls in (a Monday-morning report covers last week)."""
    iso = (now.astimezone(tz) - timedelta(days=7)).date().isocalendar()
    return iso_week(iso.year, iso.week, tz)


@dataclass(frozen=True, slots=True)
class WeekFigures:
    """The figures for one week."""

    inquiries: int
    by_channel: tuple[tuple[str, int], ...]
    answered: int
    abstained: int
    escalated: int
    failed: int
    thumbs_up: int
    thumbs_down: int
    escalations: int  # conversations escalated this week
    awaiting_person: int  # of those, still without a person's response
    first_response_median_min: float | None
    first_response_p90_min: float | None
    tickets_opened: int
    tickets_resolved: int
    hygiene: tuple[tuple[str, int], ...]  # (kind, count) for HYGIENE_KINDS, in that order
    input_tokens: int
    output_tokens: int
    cost_usd: float

    @property
    def deflection_rate(self) -> float | None:
        """Answered / inquiries; None for a week without inquiries."""
        return self.answered / self.inquiries if self.inquiries else None


@dataclass(frozen=True, slots=True)
class GapLine:
    label: str
    count: int
    trend: str


@dataclass(frozen=True, slots=True)
class DayCounts:
    day: date
    answered: int
    abstained: int
    escalated: int


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    """One week's report with the week before for comparison, the top open gaps and per-day counts (the chart)."""

    week: Week
    timezone: str
    current: WeekFigures
    previous: WeekFigures
    top_gaps: tuple[GapLine, ...]
    daily: tuple[DayCounts, ...]

    @property
    def quiet(self) -> bool:
        return self.current.inquiries == 0


def nearest_rank(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _pairs(rows: Iterable[tuple[Any, Any]]) -> dict[Any, int]:
    return {key: int(n) for key, n in rows}


async def _figures(db: Database, since: datetime, until: datetime) -> WeekFigures:
    async with db.sessions() as session:
        turns = (
            await session.execute(
                select(TurnRow.channel, TurnRow.outcome, func.count())
                .where(TurnRow.role == Role.BOT.value, TurnRow.created_at >= since, TurnRow.created_at < until)
                .where(TurnRow.outcome.in_(INQUIRY_OUTCOMES))
                .group_by(TurnRow.channel, TurnRow.outcome)
            )
        ).tuples()
        by_outcome: Counter[str] = Counter()
        by_channel: Counter[str] = Counter()
        for channel, outcome, n in turns:
            by_outcome[outcome] += int(n)
            by_channel[channel] += int(n)
        usage = (
            await session.execute(
                select(
                    func.coalesce(func.sum(TurnRow.input_tokens), 0),
                    func.coalesce(func.sum(TurnRow.output_tokens), 0),
                    func.coalesce(func.sum(TurnRow.cost_usd), 0.0),
                ).where(TurnRow.role == Role.BOT.value, TurnRow.created_at >= since, TurnRow.created_at < until)
            )
        ).one()
        votes = _pairs(
            (
                await session.execute(
                    select(FeedbackRow.value, func.count())
                    .where(FeedbackRow.created_at >= since, FeedbackRow.created_at < until)
                    .group_by(FeedbackRow.value)
                )
            ).tuples()
        )
        escalations = list(
            (
                await session.execute(
                    select(ConversationRow.escalated_at, ConversationRow.first_human_response_at).where(
                        ConversationRow.escalated_at >= since, ConversationRow.escalated_at < until
                    )
                )
            ).tuples()
        )
        waits = [(first - esc).total_seconds() / 60 for esc, first in escalations if esc and first]
        opened = await session.scalar(
            select(func.count())
            .select_from(TicketRow)
            .where(TicketRow.created_at >= since, TicketRow.created_at < until)
        )
        resolved = await session.scalar(
            select(func.count())
            .select_from(TicketRow)
            .where(TicketRow.resolved_at >= since, TicketRow.resolved_at < until)
        )
        events = _pairs(
            (
                await session.execute(
                    select(ChannelEventRow.kind, func.count())
                    .where(ChannelEventRow.created_at >= since, ChannelEventRow.created_at < until)
                    .group_by(ChannelEventRow.kind)
                )
            ).tuples()
        )
    return WeekFigures(
        inquiries=sum(by_outcome.values()),
        by_channel=tuple(sorted(by_channel.items(), key=lambda kv: (-kv[1], kv[0]))),
        answered=sum(by_outcome[o] for o in ANSWERED),
        abstained=sum(by_outcome[o] for o in ABSTAINED),
        escalated=sum(by_outcome[o] for o in ESCALATED),
        failed=sum(by_outcome[o] for o in FAILED),
        thumbs_up=int(votes.get(1, 0)),
        thumbs_down=int(votes.get(-1, 0)),
        escalations=len(escalations),
        awaiting_person=sum(1 for _, first in escalations if first is None),
        first_response_median_min=nearest_rank(waits, 50),
        first_response_p90_min=nearest_rank(waits, 90),
        tickets_opened=int(opened or 0),
        tickets_resolved=int(resolved or 0),
        hygiene=tuple((kind, int(events.get(kind, 0))) for kind in HYGIENE_KINDS),
        input_tokens=int(usage[0]),
        output_tokens=int(usage[1]),
        cost_usd=float(usage[2]),
    )


async def _daily(db: Database, week: Week, tz: tzinfo) -> tuple[DayCounts, ...]:
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(TurnRow.created_at, TurnRow.outcome).where(
                    TurnRow.role == Role.BOT.value,
                    TurnRow.created_at >= week.start,
                    TurnRow.created_at < week.end,
                    TurnRow.outcome.in_((*ANSWERED, *ABSTAINED, *ESCALATED)),
                )
            )
        ).tuples()
        counts: Counter[tuple[date, str]] = Counter()
        for at, outcome in rows:
            kind = "answered" if outcome in ANSWERED else "abstained" if outcome in ABSTAINED else "escalated"
            counts[(at.astimezone(tz).date(), kind)] += 1
    first = week.start.astimezone(tz).date()
    days = [first + timedelta(days=i) for i in range(7)]
    return tuple(
        DayCounts(d, counts[(d, "answered")], counts[(d, "abstained")], counts[(d, "escalated")]) for d in days
    )


async def _top_gaps(db: Database, limit: int) -> tuple[GapLine, ...]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(GapRow.label, GapRow.count, GapRow.trend)
            .where(GapRow.status == "open")
            .order_by(GapRow.count.desc(), GapRow.id)
            .limit(limit)
        )
        return tuple(GapLine(label, int(count), trend) for label, count, trend in rows.tuples())


async def weekly_report(
    db: Database, week: Week, tz: tzinfo, *, timezone_name: str = "", top_gaps: int = 5
) -> WeeklyReport:
    """Compute the report for `week` (and the week before, for the changes)."""
    return WeeklyReport(
        week=week,
        timezone=timezone_name or str(tz),
        current=await _figures(db, week.start, week.end),
        previous=await _figures(db, *_bounds(week.previous(tz))),
        top_gaps=await _top_gaps(db, top_gaps),
        daily=await _daily(db, week, tz),
    )


def _bounds(week: Week) -> tuple[datetime, datetime]:
    return week.start, week.end
