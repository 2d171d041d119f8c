"""The weekly reports as they were built (title, text, HTML, chart), one per week, for the console's Reports page.

The outbox carries a report to Slack or email and forgets it with retention; this archive keeps what managers were
sent, and also the weeks built with no destination configured. Building a week again replaces its entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select

from bot.ports import Clock
from bot.store.db import Database
from bot.store.tables import WeeklyReportRow


@dataclass(frozen=True, slots=True)
class ArchivedReport:
    """One week's report without its chart (the list and the page read this; the chart is served on its own)."""

    id: int
    week: str
    title: str
    text: str
    inquiries: int
    has_chart: bool
    created_at: datetime


class ReportArchive:
    """The `weekly_reports` table."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def save(self, week: str, title: str, text: str, html: str, png: bytes, inquiries: int) -> None:
        async with self._db.transaction() as session:
            await session.execute(delete(WeeklyReportRow).where(WeeklyReportRow.week == week))
            session.add(
                WeeklyReportRow(
                    week=week,
                    title=title[:256],
                    text=text,
                    html=html,
                    chart_png=png,
                    inquiries=inquiries,
                    created_at=self._clock.now(),
                )
            )

    async def recent(self, limit: int, before: str | None = None) -> list[ArchivedReport]:
        """Newest week first; `before` a week label continues the list (ISO week labels sort as weeks do)."""
        query = select(*_COLUMNS).order_by(WeeklyReportRow.week.desc()).limit(limit)
        if before:
            query = query.where(WeeklyReportRow.week < before)
        async with self._db.sessions() as session:
            return [_entry(*row) for row in (await session.execute(query)).tuples()]

    async def get(self, week: str) -> ArchivedReport | None:
        async with self._db.sessions() as session:
            row = (await session.execute(select(*_COLUMNS).where(WeeklyReportRow.week == week))).tuples().first()
        return _entry(*row) if row is not None else None

    async def chart(self, week: str) -> bytes:
        """The week's chart (PNG), or b"" when there is none."""
        async with self._db.sessions() as session:
            png = (
                await session.execute(select(WeeklyReportRow.chart_png).where(WeeklyReportRow.week == week))
            ).scalar_one_or_none()
        return bytes(png or b"")


_COLUMNS = (
    WeeklyReportRow.id,
    WeeklyReportRow.week,
    WeeklyReportRow.title,
    WeeklyReportRow.text,
    WeeklyReportRow.inquiries,
    func.length(WeeklyReportRow.chart_png),
    WeeklyReportRow.created_at,
)


def _entry(
    id_: int, week: str, title: str, text: str, inquiries: int, chart_bytes: int | None, created_at: datetime
) -> ArchivedReport:
    return ArchivedReport(id_, week, title, text, inquiries, bool(chart_bytes), created_at)
