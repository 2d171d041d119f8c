"""The job table: which jobs exist, and when each runs (from `SchedulerConfig`).

Jobs are thin async callables that call services (`escalation.expire_due`, `knowledge.ingest`, the weekly
report, ...); the composition root passes the ones it has and this module attaches their schedules. A job the
root does not pass (no knowledge paths, no embeddings) is simply not scheduled.

One owner per loop: work that already has a loop of its own is not a job here. The outbox dispatcher's loop
delivers replies and the email channel's loop reads the mailbox (IDLE or polling, under its own lease), so
there is no `outbox_flush` or `mailbox_poll` job. The knowledge base is synced by the `kb_sync` job, which runs
on the leader only, so in a multi-replica deploy it is the one ingester; it also runs once when a process
becomes leader, so the root needs no sync of its own at start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import tzinfo

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.errors import ConfigError
from scheduler.config import SchedulerConfig

JobFn = Callable[[], Awaitable[object]]

EXPIRE_CONFIRMATIONS = "expire_confirmations"
KB_SYNC = "kb_sync"
WEEKLY_REPORT = "weekly_report"
KNOWLEDGE_GAPS = "knowledge_gaps"
RETENTION = "retention"
BACKLOG_DIGEST = "backlog_digest"
JOB_NAMES = (EXPIRE_CONFIRMATIONS, KB_SYNC, WEEKLY_REPORT, KNOWLEDGE_GAPS, RETENTION, BACKLOG_DIGEST)
FREQUENT = (EXPIRE_CONFIRMATIONS,)  # logged at DEBUG when they start and finish


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: a name, the callable, and either a crontab (local time) or a fixed interval."""

    name: str
    run: JobFn
    cron: str = ""  # crontab in SchedulerConfig.timezone, e.g. "0 9 * * mon"
    every_seconds: float = 0.0
    description: str = ""
    run_on_start: bool = False  # also run once when a process becomes leader (not only on the schedule)

    def __post_init__(self) -> None:
        if bool(self.cron) == (self.every_seconds > 0):
            raise ConfigError(f"job {self.name}: give either a cron schedule or an interval, not both or neither")

    def trigger(self, tz: tzinfo) -> BaseTrigger:
        """The APScheduler trigger (used only through its public `get_next_fire_time`); a bad crontab becomes a
        one-line `ConfigError`."""
        if self.cron:
            try:
                return CronTrigger.from_crontab(self.cron, timezone=tz)
            except ValueError as exc:
                raise ConfigError(f"job {self.name}: bad cron schedule {self.cron!r}: {exc}") from None
        return IntervalTrigger(seconds=self.every_seconds, timezone=tz)

    def schedule(self, tz: tzinfo) -> str:
        """The schedule as text, stored with each planned period (a changed schedule re-plans the next one)."""
        if self.cron:
            return f"cron {self.cron} {tz}"
        return f"every {self.every_seconds:g}s"

    @property
    def once_per_wall_clock(self) -> bool:
        """True for cron jobs at fixed hours: such a job runs once per local time even when the clock falls back
        and the hour repeats (the cron trigger yields 02:30 twice on that night)."""
        if not self.cron:
            return False
        fields = self.cron.split()
        return len(fields) == 5 and all(part.isdigit() for part in fields[1].split(","))

    @property
    def frequent(self) -> bool:
        return self.name in FREQUENT


def job_table(config: SchedulerConfig, callables: Mapping[str, JobFn]) -> dict[str, JobSpec]:
    """Attach each job's schedule from the config. Unknown names and bad crontabs are a `ConfigError`."""
    unknown = sorted(set(callables) - set(JOB_NAMES))
    if unknown:
        raise ConfigError(f"unknown scheduler job(s): {', '.join(unknown)}; known: {', '.join(JOB_NAMES)}")
    on_start = {KB_SYNC}  # the index is there as soon as a deploy starts, without a sync of its own at start
    schedules: dict[str, tuple[str, float, str]] = {
        EXPIRE_CONFIRMATIONS: ("", config.expire_every_seconds, "expire pending confirmations past their time"),
        KB_SYNC: (config.kb_sync_schedule, 0.0, "re-ingest the configured knowledge sources (incremental)"),
        WEEKLY_REPORT: (config.report_schedule, 0.0, "post the weekly report for managers"),
        KNOWLEDGE_GAPS: (config.gaps_schedule, 0.0, "refresh and post the knowledge-gap backlog"),
        RETENTION: (config.retention_schedule, 0.0, "blank message bodies older than RETENTION_DAYS"),
        BACKLOG_DIGEST: (config.backlog_schedule, 0.0, "post the backlog digest: late hand-offs, offers, dead letters"),
    }
    table: dict[str, JobSpec] = {}
    for name, fn in callables.items():
        cron, every, description = schedules[name]
        table[name] = JobSpec(
            name, fn, cron=cron, every_seconds=every, description=description, run_on_start=name in on_start
        )
        table[name].trigger(config.tz)  # a bad crontab fails here, when the root builds the table
    return table
