"""Delivering the weekly report: queued in the outbox (`bot.reports`), one row per destination and week, so it
goes out once per week whatever retries, second schedulers or crashes happen. The Slack report sender (Block Kit
and the chart as a file) and `scheduler.mail.ReportMailSender` (HTML with the chart inline, and a text part)
deliver it; the composition root registers them with the outbox dispatcher.

`ReportPublisher` is the port the gap backlog posts through (the Slack channel implements it); the scheduler never
imports a channel.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import structlog

from bot.messages import Channel, Reply
from bot.ports import Clock
from bot.reports import ReportParts, report_reply
from bot.store.db import Database
from bot.store.report_archive import ReportArchive
from scheduler.blocks import render_blocks
from scheduler.chart import render_chart
from scheduler.config import ReportConfig
from scheduler.jobs import JobFn
from scheduler.render import ReportDocument, render_html, render_text, report_document
from scheduler.report import Week, WeeklyReport, last_complete_week, weekly_report

log = structlog.get_logger(__name__)


class ReportPublisher(Protocol):
    """Posts a report message (text fallback, Block Kit blocks, an optional PNG uploaded with the files API)."""

    async def post_report(
        self, channel: str, text: str, blocks: list[dict[str, Any]], png: bytes | None, filename: str
    ) -> None: ...


class ReportQueue(Protocol):
    """Where reports are queued (implemented by `bot.store.outbox.Outbox`; a repeated key is ignored)."""

    async def enqueue(self, *replies: Reply) -> None: ...


def report_key(destination: str, week_label: str) -> str:
    """The outbox idempotency key of a week's report to one destination ("slack" or "email"): once per week."""
    return f"report:{destination}:{week_label}"


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
        db, week, config.tz, timezone_name=config.timezone, sla=timedelta(minutes=config.handoff_sla_minutes)
    )
    doc = report_document(report)
    return RenderedReport(report, doc, render_text(doc), render_blocks(doc), render_html(doc), render_chart(report))


async def archive_report(rendered: RenderedReport, archive: ReportArchive) -> None:
    """Keep the week's report (text, HTML, chart) for the console's Reports page, delivered or not."""
    report = rendered.report
    title = rendered.document.title
    await archive.save(report.week.label, title, rendered.text, rendered.html, rendered.png, report.total.inquiries)


async def deliver_report(rendered: RenderedReport, config: ReportConfig, queue: ReportQueue) -> list[str]:
    """Queue the report for `SLACK_REPORT_CHANNEL` and `REPORT_EMAIL` (those configured) in one transaction; the
    outbox dispatcher delivers each once. Queuing a week again (a retried job, a second scheduler, the command
    run by hand) changes nothing. Returns where it goes."""
    week, doc = rendered.report.week.label, rendered.document
    replies, to = [], []
    if config.slack_report_channel:
        parts = ReportParts(
            doc.title, rendered.text, blocks=tuple(rendered.blocks), png=rendered.png, filename=rendered.filename
        )
        replies.append(report_reply(Channel.SLACK, report_key("slack", week), config.slack_report_channel, parts))
        to.append(f"slack:{config.slack_report_channel}")
    if config.report_email_to:
        parts = ReportParts(doc.title, rendered.text, html=rendered.html, png=rendered.png)
        replies.append(report_reply(Channel.EMAIL, report_key("email", week), ", ".join(config.report_email_to), parts))
        to.append(f"email:{len(config.report_email_to)}")
    if replies:
        await queue.enqueue(*replies)
    else:
        log.warning("report.not_delivered", reason="no SLACK_REPORT_CHANNEL or REPORT_EMAIL configured")
    return to


def weekly_report_job(db: Database, config: ReportConfig, clock: Clock, queue: ReportQueue) -> JobFn:
    """The `weekly_report` job: last complete week, rendered, kept in the report archive and queued for delivery."""
    archive = ReportArchive(db, clock)

    async def run() -> str:
        week = last_complete_week(clock.now(), config.tz)
        rendered = await build_report(db, config, week)
        await archive_report(rendered, archive)
        sent = await deliver_report(rendered, config, queue)
        log.info("report.sent", week=week.label, to=sent, inquiries=rendered.report.total.inquiries)
        return f"{week.label} -> {', '.join(sent) or 'nowhere'}"

    return run
