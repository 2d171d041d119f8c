"""The scheduled jobs of this process, as thin callables over the services (wired here, scheduled by scheduler/).

Only this module and `bot/app.py` know which concrete channel implements report delivery and mailbox polling.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.errors import ConfigError
from bot.services import Services
from bot.settings import Settings
from scheduler.config import ReportConfig, SchedulerConfig
from scheduler.gaps import GapBacklog, confident_with, gaps_job
from scheduler.jobs import JobFn
from scheduler.publish import ReportMailer, ReportPublisher, weekly_report_job


def _find(channels: Sequence[Any], name: str) -> Any:
    return next((c for c in channels if getattr(c, "name", "") == name), None)


def scheduler_config(settings: Settings) -> SchedulerConfig:
    """The scheduler's part of the settings."""
    return SchedulerConfig(
        timezone=settings.timezone,
        report_schedule=settings.report_schedule,
        gaps_schedule=settings.gaps_schedule,
        kb_sync_schedule=settings.kb_sync_schedule,
        leader_lease_seconds=settings.leader_lease_seconds,
        misfire_grace_seconds=settings.misfire_grace_seconds,
    )


def report_config(settings: Settings) -> ReportConfig:
    """What the weekly report and the gap backlog need from the settings."""
    return ReportConfig(
        timezone=settings.timezone,
        slack_report_channel=settings.slack_report_channel,
        report_email_to=tuple(settings.report_email_to),
        low_confidence_threshold=settings.low_confidence_threshold,
    )


def gap_backlog(services: Services) -> GapBacklog:
    embed = getattr(services.knowledge, "embed", None)
    if embed is None:
        raise ConfigError("the knowledge engine cannot embed questions; the gap backlog needs it")
    return GapBacklog(
        services.db,
        services.clock,
        embed,
        confident_with(services.knowledge, services.settings.low_confidence_threshold),
        low_confidence=services.settings.low_confidence_threshold,
    )


def app_jobs(services: Services, channels: Sequence[Any]) -> dict[str, JobFn]:
    """Every job this process can run, by the names `scheduler.jobs` schedules."""
    settings = services.settings
    slack = _find(channels, "slack")
    email = _find(channels, "email")
    publisher: ReportPublisher | None = slack
    mailer: ReportMailer | None = email
    jobs: dict[str, JobFn] = {}  # the outbox and the mailbox have loops of their own (one owner per loop)
    escalation = services.escalation
    expire = getattr(escalation, "expire_due", None)
    if expire is not None:
        jobs["expire_confirmations"] = expire
    ingest = getattr(services.knowledge, "ingest", None)
    if ingest is not None and settings.knowledge_paths:
        paths = [Path(p) for p in settings.knowledge_paths]

        async def kb_sync() -> object:
            return await ingest(paths)

        jobs["kb_sync"] = kb_sync
    jobs["weekly_report"] = weekly_report_job(services.db, report_config(settings), services.clock, publisher, mailer)
    if getattr(services.knowledge, "embed", None) is not None:
        jobs["knowledge_gaps"] = gaps_job(gap_backlog(services), report_config(settings), publisher)
    return jobs
