"""Delivering the weekly report: to Slack through `ReportPublisher`, and optionally by email via `ReportMailer`.

The Slack and email channels implement these Protocols; the scheduler never imports a channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from bot.ports import Clock
from bot.store.db import Database
from scheduler.config import ReportConfig
from scheduler.jobs import JobFn
from scheduler.render import render_blocks, render_chart, render_html, render_text, title
from scheduler.report import Week, WeeklyReport, last_complete_week, weekly_report

log = structlog.get_logger(__name__)


class ReportPublisher(Protocol):
    """Posts a report message (text fallback, Block Kit blocks, an optional PNG uploaded with the files API)."""

    async def post_report(
        self, channel: str, text: str, blocks: list[dict[str, Any]], png: bytes | None, filename: str
    ) -> None: ...


class ReportMailer(Protocol):
    """Sends a report by email (text and HTML, the chart attached)."""

    async def send_report(self, to: list[str], subject: str, text: str, html: str, png: bytes | None) -> None: ...


@dataclass(frozen=True, slots=True)
class RenderedReport:
    report: WeeklyReport
    text: str
    blocks: list[dict[str, Any]]
    html: str
    png: bytes

    @property
    def filename(self) -> str:
        return f"support-report-{self.report.week.label}.png"


async def build_report(db: Database, config: ReportConfig, week: Week) -> RenderedReport:
    report = await weekly_report(db, week, config.tz, timezone_name=config.timezone)
    return RenderedReport(report, render_text(report), render_blocks(report), render_html(report), render_chart(report))


async def deliver_report(
    rendered: RenderedReport,
    config: ReportConfig,
    publisher: ReportPublisher | None,
    mailer: ReportMailer | None = None,
) -> list[str]:
    """Post to `SLACK_REPORT_CHANNEL` and mail `REPORT_EMAIL_TO` when configured; returns where it went."""
    sent: list[str] = []
    if publisher is not None and config.slack_report_channel:
        await publisher.post_report(
            config.slack_report_channel, rendered.text, rendered.blocks, rendered.png, rendered.filename
        )
        sent.append(f"slack:{config.slack_report_channel}")
    if mailer is not None and config.report_email_to:
        await mailer.send_report(
            list(config.report_email_to), title(rendered.report), rendered.text, rendered.html, rendered.png
        )
        sent.append(f"email:{len(config.report_email_to)}")
    if not sent:
        log.warning("report.not_delivered", reason="no SLACK_REPORT_CHANNEL or REPORT_EMAIL_TO configured")
    return sent


def weekly_report_job(
    db: Database,
    config: ReportConfig,
    clock: Clock,
    publisher: ReportPublisher | None,
    mailer: ReportMailer | None = None,
) -> JobFn:
    """The `weekly_report` job: last complete week, rendered and delivered."""

    async def run() -> str:
        week = last_complete_week(clock.now(), config.tz)
        rendered = await build_report(db, config, week)
        sent = await deliver_report(rendered, config, publisher, mailer)
        log.info("report.sent", week=week.label, to=sent, inquiries=rendered.report.current.inquiries)
        return f"{week.label} -> {', '.join(sent) or 'nowhere'}"

    return run
