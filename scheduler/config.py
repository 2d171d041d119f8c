"""What the scheduler package needs to know, as frozen values the composition root builds from its Settings.

The scheduler never reads the environment itself; tests build these directly. Defaults are the service's
defaults (the variable each field comes from is named in its comment).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.confidence import LOW_CONFIDENCE_THRESHOLD
from bot.errors import ConfigError


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or a one-line `ConfigError` naming `TIMEZONE`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"TIMEZONE: unknown time zone {name!r}; use an IANA name like Europe/Berlin") from None


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a failed period is retried: attempt n+1 waits `backoff_seconds[n-1]` (the last entry repeats) after
    attempt n failed; after `max_attempts` failures the period is given up and alerted."""

    max_attempts: int = 4  # JOB_MAX_ATTEMPTS
    backoff_seconds: tuple[float, ...] = (60.0, 300.0, 900.0)  # JOB_RETRY_BACKOFF_SECONDS (comma-separated)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError("JOB_MAX_ATTEMPTS: at least 1")
        if not self.backoff_seconds or any(s < 0 for s in self.backoff_seconds):
            raise ConfigError("JOB_RETRY_BACKOFF_SECONDS: one or more non-negative numbers of seconds")

    def delay_after(self, attempt: int) -> timedelta:
        """The wait before the next attempt, once attempt number `attempt` (1-based) has failed."""
        index = min(max(attempt, 1), len(self.backoff_seconds)) - 1
        return timedelta(seconds=self.backoff_seconds[index])


@dataclass(frozen=True, slots=True)
class SchedulerConfig:
    """When each job runs and how the clock behaves across replicas, restarts and failures."""

    timezone: str = "UTC"  # TIMEZONE: crontabs are read in this zone
    report_schedule: str = "0 9 * * mon"  # REPORT_SCHEDULE
    gaps_schedule: str = "0 8 * * *"  # GAPS_SCHEDULE
    kb_sync_schedule: str = "*/30 * * * *"  # KB_SYNC_SCHEDULE
    backlog_schedule: str = "0 8 * * *"  # BACKLOG_SCHEDULE: the backlog digest for the agents
    retention_schedule: str = "30 3 * * *"  # (fixed) the daily RETENTION_DAYS purge, in the quiet hours
    expire_every_seconds: float = 60.0  # (fixed) how often pending confirmations are expired
    leader_lease_seconds: float = 30.0  # LEADER_LEASE_SECONDS: a dead leader is replaced within this
    misfire_grace_seconds: int = 3600  # MISFIRE_GRACE_SECONDS: a period missed by more is skipped, not run late
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    job_runs_kept_days: int = 7  # finished job runs older than this are pruned

    def __post_init__(self) -> None:
        zone(self.timezone)
        if self.leader_lease_seconds <= 0:
            raise ConfigError("LEADER_LEASE_SECONDS: must be positive")
        if self.misfire_grace_seconds < 1:
            raise ConfigError("MISFIRE_GRACE_SECONDS: at least 1")
        if self.expire_every_seconds <= 0:
            raise ConfigError("the confirmation expiry interval must be positive")

    @property
    def tz(self) -> tzinfo:
        return zone(self.timezone)

    @property
    def misfire_grace(self) -> timedelta:
        return timedelta(seconds=self.misfire_grace_seconds)


@dataclass(frozen=True, slots=True)
class ReportConfig:
    """Where the weekly report and the gap backlog go, and how their figures are cut."""

    timezone: str = "UTC"  # TIMEZONE: weeks start on Monday 00:00 here
    slack_report_channel: str = ""  # SLACK_REPORT_CHANNEL
    report_email_to: tuple[str, ...] = ()  # REPORT_EMAIL (or REPORT_EMAIL_TO), comma-separated
    low_confidence_threshold: float = LOW_CONFIDENCE_THRESHOLD  # LOW_CONFIDENCE_THRESHOLD: gap candidates below
    handoff_sla_minutes: int = 240  # HANDOFF_SLA_MINUTES: a hand-off waiting longer for a person is a breach

    def __post_init__(self) -> None:
        zone(self.timezone)
        if not 0.0 <= self.low_confidence_threshold <= 1.0:
            raise ConfigError("LOW_CONFIDENCE_THRESHOLD: between 0 and 1")
        if self.handoff_sla_minutes <= 0:
            raise ConfigError("HANDOFF_SLA_MINUTES: must be positive")

    @property
    def tz(self) -> tzinfo:
        return zone(self.timezone)
