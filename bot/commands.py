"""The operator commands that need several services: report, gaps, tickets, job (see `bot/cli.py`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bot.errors import ConfigError
from bot.ports import SystemClock
from bot.settings import Settings
from bot.store.db import Database


async def report_command(settings: Settings, *, week: str | None, dry_run: bool, out: Path | None) -> int:
    from bot.jobs import report_config
    from scheduler.publish import build_report, deliver_report
    from scheduler.report import last_complete_week, parse_week

    tz = ZoneInfo(settings.timezone)
    which = parse_week(week, tz) if week else last_complete_week(SystemClock().now(), tz)
    db = Database(settings.resolved_database_url)
    try:
        await db.upgrade()
        rendered = await build_report(db, report_config(settings), which)
    finally:
        await db.dispose()
    if dry_run:
        path = out or settings.data_dir / "reports" / rendered.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rendered.png)
        print(rendered.text)
        print(f"\nchart written to {path}")
        return 0
    publisher, mailer, closers = await _report_channels(settings)
    try:
        sent = await deliver_report(rendered, report_config(settings), publisher, mailer)
    finally:
        for close in closers:
            await close()
    print(f"report for {which} delivered: {sent}")
    return 0


async def _report_channels(settings: Settings) -> tuple[Any, Any, list[Any]]:
    from bot.app import build_services

    if not (settings.slack_enabled or settings.email_enabled):
        raise ConfigError("no channel to deliver the report to: set Slack or email settings, or use --dry-run")
    services = await build_services(settings, knowledge=_NoKnowledge(), with_escalation=False)
    publisher = mailer = None
    if settings.slack_enabled:
        from channels.slack import build_slack_channel

        publisher = build_slack_channel(services)
    if settings.email_enabled:
        from channels.email import build_email_channel

        mailer = build_email_channel(services)
    return publisher, mailer, [services.db.dispose]


class _NoKnowledge:
    """Report delivery needs no knowledge engine; this keeps the embedded index closed for the running service."""

    async def answer(self, *_args: Any, **_kwargs: Any) -> Any:
        raise ConfigError("the report command does not answer questions")

    async def ready(self) -> bool:
        return False


async def gaps_command(settings: Settings) -> int:
    from scheduler.gaps import GapBacklog, format_gaps

    async def no_embed(_texts: Any) -> list[list[float]]:
        raise ConfigError("listing gaps needs no embeddings")

    db = Database(settings.resolved_database_url)
    try:
        await db.upgrade()
        gaps = await GapBacklog(db, SystemClock(), no_embed).list()
    finally:
        await db.dispose()
    print(format_gaps(gaps))
    return 0


async def tickets_command(settings: Settings, *, limit: int) -> int:
    from bot.app import build_escalation_service
    from bot.store.conversations import ConversationStore
    from bot.store.outbox import Outbox
    from escalation.tickets import format_tickets

    db = Database(settings.resolved_database_url)
    clock = SystemClock()
    try:
        await db.upgrade()
        outbox = Outbox(db, clock)
        escalation: Any = build_escalation_service(settings, db, clock, outbox, ConversationStore(db, clock, outbox))
        views = await escalation.list_tickets(limit)
    finally:
        await db.dispose()
    print(format_tickets(views))
    return 0


async def job_command(settings: Settings, name: str) -> int:
    from bot.app import build_services
    from bot.jobs import app_jobs, scheduler_config
    from scheduler.jobs import job_table
    from scheduler.runs import run_job

    services = await build_services(settings)
    channels: list[Any] = []
    try:
        if settings.slack_enabled:
            from channels.slack import build_slack_channel

            channels.append(build_slack_channel(services))
        if settings.email_enabled:
            from channels.email import build_email_channel

            channels.append(build_email_channel(services))
        jobs = job_table(scheduler_config(settings), app_jobs(services, channels))
        result = await run_job(services.db, services.clock, jobs, name)
    finally:
        close = getattr(services.knowledge, "close", None)
        if close is not None:
            await close()
        await services.db.dispose()
    print(f"{result.job}: {result.status} {result.detail}".rstrip())
    return 0 if result.status != "failed" else 1
