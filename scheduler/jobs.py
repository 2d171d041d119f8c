"""The job table: which jobs exist, and when each runs (from settings).

Jobs are thin async callables that call services (`dispatcher.flush_once`, `email.poll_once`, ...); the
composition root passes the ones it has and this module attaches their schedules. A job the root does not pass
(no email channel, IMAP IDLE in use) is simply not scheduled.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.errors import ConfigError
from bot.settings import Settings

JobFn = Callable[[], Awaitable[object]]

OUTBOX_FLUSH = "outbox_flush"
MAILBOX_POLL = "mailbox_poll"
EXPIRE_CONFIRMATIONS = "expire_confirmations"
KB_SYNC = "kb_sync"
WEEKLY_REPORT = "weekly_report"
KNOWLEDGE_GAPS = "knowledge_gaps"
JOB_NAMES = (OUTBOX_FLUSH, MAILBOX_POLL, EXPIRE_CONFIRMATIONS, KB_SYNC, WEEKLY_REPORT, KNOWLEDGE_GAPS)
EXPIRE_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: a name, the callable, and either a crontab (local time) or a fixed interval."""

    name: str
    run: JobFn
    cron: str = ""  # crontab in settings.timezone, e.g. "0 9 * * mon"
    every_seconds: float = 0.0
    description: str = ""

    def __post_init__(self) -> None:
        if bool(self.cron) == (self.every_seconds > 0):
            raise ConfigError(f"job {self.name}: give either a cron schedule or an interval, not both or neither")

    def trigger(self, tz: tzinfo) -> BaseTrigger:
        """The APScheduler trigger; a bad crontab becomes a one-line `ConfigError`."""
        if self.cron:
            try:
                return CronTrigger.from_crontab(self.cron, timezone=tz)
            except ValueError as exc:
                raise ConfigError(f"job {self.name}: bad cron schedule {self.cron!r}: {exc}") from None
        return IntervalTrigger(seconds=self.every_seconds, timezone=tz)

    @property
    def once_per_wall_clock(self) -> bool:
        """True for cron jobs at fixed hours: such a job runs once per local time even when the clock falls back
        and the hour repeats (APScheduler 3 would fire 02:30 twice on that night)."""
        if not self.cron:
            return False
        fields = self.cron.split()
        return len(fields) == 5 and all(part.isdigit() for part in fields[1].split(","))


def job_table(settings: Settings, callables: Mapping[str, JobFn]) -> dict[str, JobSpec]:
    """Attach each job's schedule from settings. Unknown names are a `ConfigError` (a typo must not pass)."""
    unknown = sorted(set(callables) - set(JOB_NAMES))
    if unknown:
        raise ConfigError(f"unknown scheduler job(s): {', '.join(unknown)}; known: {', '.join(JOB_NAMES)}")
    schedules: dict[str, tuple[str, float, str]] = {
        OUTBOX_FLUSH: ("", settings.outbox_flush_seconds, "deliver due replies from the outbox"),
        MAILBOX_POLL: ("", settings.imap_poll_seconds, "read new mail (when IMAP IDLE is not in use)"),
        EXPIRE_CONFIRMATIONS: ("", EXPIRE_EVERY_SECONDS, "expire pending confirmations past their time"),
        KB_SYNC: (settings.kb_sync_schedule, 0.0, "re-ingest the configured knowledge sources (incremental)"),
        WEEKLY_REPORT: (settings.report_schedule, 0.0, "post the weekly report for managers"),
        KNOWLEDGE_GAPS: (settings.gaps_schedule, 0.0, "refresh and post the knowledge-gap backlog"),
    }
    table: dict[str, JobSpec] = {}
    for name, fn in callables.items():
        cron, every, description = schedules[name]
        table[name] = JobSpec(name, fn, cron=cron, every_seconds=every, description=description)
    return table
