"""The scheduled jobs of this process, as thin callables over the services (wired here, scheduled by scheduler/).

One owner per loop: the outbox dispatcher and the email channel run their own loops, so neither is a job here.
"""

from __future__ import annotations

from pathlib import Path

from app.wiring import Wiring
from bot.ports import Clock, Embedder, KnowledgeEngine
from bot.settings import Settings
from bot.store.db import Database
from channels.email import EmailChannel
from channels.slack import SlackChannel
from scheduler.gaps import GapBacklog, confident_with, gaps_job
from scheduler.jobs import JobFn
from scheduler.publish import weekly_report_job


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


def app_jobs(w: Wiring, *, slack: SlackChannel | None, email: EmailChannel | None) -> dict[str, JobFn]:
    """Every job this process can run, by the names `scheduler.jobs` schedules."""
    settings = w.settings
    jobs: dict[str, JobFn] = {}
    if email is not None and not settings.imap_idle:
        jobs["mailbox_poll"] = email.poll_once
    jobs["outbox_flush"] = w.dispatcher.flush_once
    if w.escalation is not None:
        jobs["expire_confirmations"] = w.escalation.expire_due
    index = w.index
    if index is not None and settings.knowledge_paths:
        paths = [Path(p) for p in settings.knowledge_paths]

        async def kb_sync() -> object:
            return (await index.ingest(paths)).summary()

        jobs["kb_sync"] = kb_sync
    jobs["weekly_report"] = weekly_report_job(w.db, settings, w.clock, slack, email)
    if w.embedder is not None:
        jobs["knowledge_gaps"] = gaps_job(
            gap_backlog(w.db, w.clock, w.embedder, w.knowledge, settings), settings, slack
        )
    return jobs
