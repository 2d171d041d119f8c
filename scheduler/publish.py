"""Delivering the weekly report: to Slack through `ReportPublisher` (blocks and the chart), and by email through
the outbox (`scheduler.mail`), so the email goes out once per week whatever retries or crashes happen.

The Slack channel implements `ReportPublisher`; the scheduler never imports a channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog

from bot.messages import Reply
from bot.ports import Clock
from bot.store.db import Database
from scheduler.blocks import render_blocks
from scheduler.chart import render_chart
from scheduler.config import ReportConfig
from scheduler.jobs import JobFn
from scheduler.mail import report_reply
from scheduler.render import ReportDocument, render_html, render_text, report_document
from scheduler.report import Week, WeeklyReport, last_complete_week, weekly_report

log = structlog.get_logger(__name__)


class ReportPublisher(Protocol):
    """Posts a report message (text fallback, Block Kit blocks, an optional PNG uploaded with the files API)."""

    async def post_report(
        self, channel: str, text: str, blocks: list[dict[str, Any]], png: bytes | None, filename: str
    ) -> None: ...


class ReportQueue(Protocol):
    """Where the report email is queued (implemented by `bot.store.outbox.Outbox`; a repeated key is ignored)."""

    async def enqueue(self, *replies: Reply) -> None: ...


@dataclass(frozen=True, slots=True)
class RenderedReport:
    report: WeeklyReport
    document: ReportDocument
    text: str
    blocks: list[dict[str, Any]]
    html: str
    png: bytes

    @property
    def filename(self) -> str:
        return f"support-report-{self.report.week.label}.png"


async def build_report(db: Database, config: ReportConfig, week: Week) -> RenderedReport:
    report = await weekly_report(
        db, week, config.tz, timezone_name=config.timezone, sla=timedelta(hours=config.handoff_sla_hours)
    )
    doc = report_document(report)
    return RenderedReport(report, doc, render_text(doc), render_blocks(doc), render_html(doc), render_chart(report))


async def deliver_report(
    rendered: RenderedReport,
    config: ReportConfig,
    publisher: ReportPublisher | None,
    queue: ReportQueue | None = None,
) -> list[str]:
    """Queue the email to `REPORT_EMAIL` and post to `SLACK_REPORT_CHANNEL`, when configured; returns where it went.

    The email is queued first: queuing is idempotent, so if the Slack post fails and the job is retried, the
    email is not queued twice.
    """
    sent: list[str] = []
    if queue is not None and config.report_email_to:
        doc = rendered.document
        await queue.enqueue(
            report_reply(
                rendered.report.week.label,
                config.report_email_to,
                doc.title,
                rendered.text,
                rendered.html,
                rendered.png,
            )
        )
        sent.append(f"email:{len(config.report_email_to)}")
    if publisher is not None and config.slack_report_channel:
        await publisher.post_report(
            config.slack_report_channel, rendered.text, rendered.blocks, rendered.png, rendered.filename
        )
        sent.append(f"slack:{config.slack_report_channel}")
    if not sent:
        log.warning("report.not_delivered", reason="no SLACK_REPORT_CHANNEL or REPORT_EMAIL configured")
    return sent


def weekly_report_job(
    db: Database,
    config: ReportConfig,
    clock: Clock,
    publisher: ReportPublisher | None,
    queue: ReportQueue | None = None,
) -> JobFn:
    """The `weekly_report` job: last complete week, rendered and delivered."""

    async def run() -> str:
        week = last_complete_week(clock.now(), config.tz)
        rendered = await build_report(db, config, week)
        sent = await deliver_report(rendered, config, publisher, queue)
        log.info("report.sent", week=week.label, to=sent, inquiries=rendered.report.total.inquiries)
        return f"{week.label} -> {', '.join(sent) or 'nowhere'}"

    return run
