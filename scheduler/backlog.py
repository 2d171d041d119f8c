"""The `backlog_digest` job: once per period (BACKLOG_SCHEDULE, daily by default) the backlog's figures go to the
agents' Slack channel through the outbox, and by email to ESCALATION_EMAIL when set (`escalation.backlog`).

The scheduler's job_runs claims make each period run once across replicas. Both go through the outbox in one
transaction (the email by the report mail sender), and their idempotency keys (the minute the digest was made)
keep a replayed enqueue single, so a retried period or a crash never sends either twice.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import timedelta

import structlog

from bot.messages import Channel, Outcome, Reply
from bot.ports import Clock
from bot.reports import ReportParts, report_reply
from bot.store.db import Database
from bot.store.outbox import Outbox
from bot.strings import for_agents
from escalation.backlog import backlog_figures, render_digest
from scheduler.jobs import JobFn

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class BacklogConfig:
    """Where the digest goes and what counts as late."""

    handoff_sla_minutes: int = 240  # HANDOFF_SLA_MINUTES: an unclaimed hand-off older than this is past the SLA
    agents_channel: str = ""  # SLACK_ESCALATION_CHANNEL
    email_to: tuple[str, ...] = ()  # ESCALATION_EMAIL (comma-separated)


def backlog_digest_job(db: Database, clock: Clock, outbox: Outbox, config: BacklogConfig) -> JobFn:
    """Compute the figures now and queue them, in one transaction, for the agents' channel and ESCALATION_EMAIL
    (the email goes through the report mail sender, so a retried period or a crash never sends it twice)."""
    sla = timedelta(minutes=config.handoff_sla_minutes)

    async def run() -> str:
        at = clock.now()
        figures = await backlog_figures(db, at, sla)
        text = render_digest(figures)
        replies: list[Reply] = []
        sent: list[str] = []
        if config.email_to:
            page = f"<!doctype html><html><body><pre>{html.escape(text)}</pre></body></html>"
            key = f"backlog:email:{at:%Y-%m-%dT%H:%M}"
            parts = ReportParts(for_agents.BACKLOG_SUBJECT, text, html=page)
            replies.append(report_reply(Channel.EMAIL, key, ", ".join(config.email_to), parts))
            sent.append(f"email:{len(config.email_to)}")
        if config.agents_channel:
            replies.append(
                Reply(
                    channel=Channel.SLACK,
                    conversation_key=config.agents_channel,
                    in_reply_to="",
                    text=text,
                    outcome=Outcome.ANSWERED,
                    idempotency_key=f"backlog:{at:%Y-%m-%dT%H:%M}:{config.agents_channel}",
                    plain=True,
                )
            )
            sent.append(f"slack:{config.agents_channel}")
        if replies:
            await outbox.enqueue(*replies)
        else:
            log.warning("backlog.not_delivered", reason="no SLACK_ESCALATION_CHANNEL or ESCALATION_EMAIL configured")
        log.info("backlog.digest", waiting=len(figures.waiting), over_sla=figures.over_sla, to=sent)
        return f"{len(figures.waiting)} waiting, {figures.over_sla} past the SLA -> {', '.join(sent) or 'nowhere'}"

    return run
