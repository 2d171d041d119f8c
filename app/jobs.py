"""The scheduled jobs of this process, as thin callables over the services (wired here, scheduled by scheduler/).

One owner per loop: the outbox dispatcher and the email channel run their own loops, so neither is a job here.
"""

from __future__ import annotations

import gc
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from app.settings import Settings
from app.wiring import Wiring
from bot.ports import Clock, Embedder, KnowledgeEngine
from bot.store.db import Database
from bot.store.privacy import PrivacyStore
from scheduler.backlog import BacklogConfig, backlog_digest_job
from scheduler.config import ReportConfig, RetryPolicy, SchedulerConfig
from scheduler.gaps import GapBacklog, confident_with, gaps_job
from scheduler.jobs import JobFn
from scheduler.publish import weekly_report_job

if TYPE_CHECKING:
    from channels.slack import SlackChannel  # lazy: only a type here; the Slack SDK loads with the channel using it


def scheduler_config(settings: Settings) -> SchedulerConfig:
    """The scheduler's part of the settings."""
    return SchedulerConfig(
        timezone=settings.timezone,
        report_schedule=settings.report_schedule,
        gaps_schedule=settings.gaps_schedule,
        kb_sync_schedule=settings.kb_sync_schedule,
        backlog_schedule=settings.backlog_schedule,
        leader_lease_seconds=settings.leader_lease_seconds,
        misfire_grace_seconds=settings.misfire_grace_seconds,
        retry=RetryPolicy(settings.job_max_attempts, tuple(settings.job_retry_backoff_seconds)),
    )


def report_config(settings: Settings) -> ReportConfig:
    """What the weekly report and the gap backlog need from the settings."""
    return ReportConfig(
        timezone=settings.timezone,
        slack_report_channel=settings.slack_report_channel if settings.slack_enabled else "",
        report_email_to=tuple(settings.report_email) if settings.smtp_host and settings.support_address else (),
        low_confidence_threshold=settings.low_confidence_threshold,
        handoff_sla_minutes=settings.handoff_sla_minutes,
    )


def gap_backlog(
    db: Database, clock: Clock, embedder: Embedder, knowledge: KnowledgeEngine, settings: Settings
) -> GapBacklog:
    return GapBacklog(
        db,
        clock,
        embedder.embed,
        confident_with(knowledge, settings.low_confidence_threshold),
        low_confidence=settings.low_confidence_threshold,
    )


def app_jobs(w: Wiring, *, slack: SlackChannel | None) -> dict[str, JobFn]:
    """Every job this process can run, by the names `scheduler.jobs` schedules."""
    settings = w.settings
    jobs: dict[str, JobFn] = {}  # the outbox and the mailbox have loops of their own (one owner per loop)
    if w.escalation is not None:
        jobs["expire_confirmations"] = w.escalation.expire_due
        backlog = BacklogConfig(
            settings.handoff_sla_minutes,
            settings.slack_escalation_channel,
            tuple(settings.escalation_email),
        )
        jobs["backlog_digest"] = backlog_digest_job(w.db, w.clock, w.outbox, backlog)
    index, pasted = w.index, w.pasted
    if index is not None and (settings.knowledge_paths or (pasted is not None and settings.admin_keys)):
        paths = [Path(p) for p in settings.knowledge_paths]

        async def kb_sync() -> object:
            # the console's pasted pages are written from the database first, so no replica deletes one as gone
            folders = [*paths, await pasted.write_all()] if pasted is not None and settings.admin_keys else paths
            summary = (await index.ingest(folders)).summary()
            gc.collect()
            gc.freeze()  # the model and the index loaded by a sync live as long as the process
            return summary

        jobs["kb_sync"] = kb_sync
    if settings.retention_days:
        privacy, days = PrivacyStore(w.db), settings.retention_days

        async def retention() -> object:
            return await privacy.purge(w.clock.now() - timedelta(days=days))

        jobs["retention"] = retention
    jobs["weekly_report"] = weekly_report_job(w.db, report_config(settings), w.clock, w.outbox)
    if w.embedder is not None:
        jobs["knowledge_gaps"] = gaps_job(
            gap_backlog(w.db, w.clock, w.embedder, w.knowledge, settings), report_config(settings), slack
        )
    return jobs
