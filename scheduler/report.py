"""The weekly report for managers: one ISO week (in the configured time zone), its quality, its trend over the last
eight weeks, and what to fix first.

Everything is computed from the stored traces, so the report says what happened, not what metrics a process
happened to see: bot turns (outcome, confidence, channel, tokens, cost), feedback on each answer, escalations after
answers, reviewer verdicts, a person's response to hand-offs, tickets, channel hygiene events and the knowledge-gap
backlog (see `scheduler.quality` for the definitions). A week with no traffic gives zeros and `None` for rates and
times (never a division by zero); the renderers say "no inquiries this week".
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from sqlalchemy import func, select

from bot.messages import Role
from bot.store.db import Database
from bot.store.tables import ChannelEventRow, TicketRow, TurnRow
from scheduler.fixes import Fixes, disliked_documents, low_confidence_questions, top_gaps
from scheduler.quality import PersonWait, Quality, by_channel, inquiries, person_wait

HYGIENE_KINDS = ("auto_reply", "bounce", "list", "loop", "quarantined")
TREND_WEEKS = 8


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
class Operations:
    """What the week cost and what the channels did besides answering."""

    tickets_opened: int
    tickets_resolved: int
    hygiene: tuple[tuple[str, int], ...]  # (kind, count) for HYGIENE_KINDS, in that order
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class WeekPoint:
    """One week of the trend: its label, its quality in total and its waits for a person."""

    label: str
    quality: Quality
    wait: PersonWait


@dataclass(frozen=True, slots=True)
class Series:
    """One headline figure over the trend weeks (oldest first; None where the week had nothing to measure)."""

    name: str
    unit: str  # "count" | "rate" | "minutes"
    values: tuple[float | None, ...]

    @property
    def now(self) -> float | None:
        return self.values[-1]

    @property
    def previous(self) -> float | None:
        return self.values[-2] if len(self.values) > 1 else None

    @property
    def median(self) -> float | None:
        """The median of the weeks that have a value (all trend weeks, this one included)."""
        present = [v for v in self.values if v is not None]
        return float(statistics.median(present)) if present else None

    @property
    def vs_previous(self) -> float | None:
        return self.now - self.previous if self.now is not None and self.previous is not None else None

    @property
    def vs_median(self) -> float | None:
        median = self.median
        return self.now - median if self.now is not None and median is not None else None


SERIES: tuple[tuple[str, str, Callable[[WeekPoint], float | None]], ...] = (
    ("Resolved without a person", "rate", lambda p: p.quality.resolved_rate),
    ("Inquiries", "count", lambda p: float(p.quality.inquiries)),
    ("👎 rate", "rate", lambda p: p.quality.down_rate),
    ("Answered, then escalated", "rate", lambda p: p.quality.escalated_after_rate),
    ("Time to a person (median)", "minutes", lambda p: p.wait.median_min),
    ("SLA breaches", "count", lambda p: float(p.wait.sla_breaches)),
)


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    """One week's report: quality per channel, operations, eight weeks of trend and what to fix first."""

    week: Week
    timezone: str
    quality: tuple[Quality, ...]  # per channel, busiest first, then ALL
    operations: Operations
    previous_operations: Operations
    trend: tuple[WeekPoint, ...]  # TREND_WEEKS weeks, oldest first; the last is this week
    fixes: Fixes

    @property
    def total(self) -> Quality:
        return self.quality[-1]

    @property
    def wait(self) -> PersonWait:
        return self.trend[-1].wait

    @property
    def series(self) -> tuple[Series, ...]:
        return tuple(Series(name, unit, tuple(f(p) for p in self.trend)) for name, unit, f in SERIES)

    @property
    def quiet(self) -> bool:
        return self.total.inquiries == 0


async def _operations(db: Database, since: datetime, until: datetime) -> Operations:
    async with db.sessions() as session:
        usage = (
            await session.execute(
                select(
                    func.coalesce(func.sum(TurnRow.input_tokens), 0),
                    func.coalesce(func.sum(TurnRow.output_tokens), 0),
                    func.coalesce(func.sum(TurnRow.cost_usd), 0.0),
                ).where(TurnRow.role == Role.BOT.value, TurnRow.created_at >= since, TurnRow.created_at < until)
            )
        ).one()
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
        events = {
            str(kind): int(n)
            for kind, n in (
                await session.execute(
                    select(ChannelEventRow.kind, func.count())
                    .where(ChannelEventRow.created_at >= since, ChannelEventRow.created_at < until)
                    .group_by(ChannelEventRow.kind)
                )
            ).tuples()
        }
    return Operations(
        tickets_opened=int(opened or 0),
        tickets_resolved=int(resolved or 0),
        hygiene=tuple((kind, events.get(kind, 0)) for kind in HYGIENE_KINDS),
        input_tokens=int(usage[0]),
        output_tokens=int(usage[1]),
        cost_usd=float(usage[2]),
    )


def trend_weeks(week: Week, tz: tzinfo, n: int = TREND_WEEKS) -> list[Week]:
    """`week` and the n-1 weeks before it, oldest first."""
    weeks = [week]
    while len(weeks) < n:
        weeks.append(weeks[-1].previous(tz))
    return weeks[::-1]


async def weekly_report(
    db: Database,
    week: Week,
    tz: tzinfo,
    *,
    timezone_name: str = "",
    sla: timedelta = timedelta(hours=4),
) -> WeeklyReport:
    """Compute the report for `week`: its quality, the trend of the eight weeks ending with it, what to fix."""
    trend: list[WeekPoint] = []
    this_week = []
    for w in trend_weeks(week, tz):
        found = await inquiries(db, w.start, w.end)
        trend.append(WeekPoint(w.label, by_channel(found)[-1], await person_wait(db, w.start, w.end, sla)))
        this_week = found
    fixes = Fixes(await top_gaps(db), disliked_documents(this_week), low_confidence_questions(this_week))
    previous = week.previous(tz)
    quality = by_channel(this_week)
    return WeeklyReport(
        week=week,
        timezone=timezone_name or str(tz),
        quality=quality,
        operations=await _operations(db, week.start, week.end),
        previous_operations=await _operations(db, previous.start, previous.end),
        trend=tuple(trend),
        fixes=fixes,
    )
