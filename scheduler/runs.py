"""Job runs in the database: the scheduler's plan and its log in one table, `job_runs`.

Each row is one *period* of a job, keyed by `run_key` (job + scheduled time, unique). The leader plans a job's
next period as a `pending` row; when it falls due, whoever leads claims it by compare-and-set (`pending` or a
`failed` row whose `next_attempt_at` has come -> `running`), so a period runs once even if a stale leader and
a new one both try. A failed attempt is retried after a backoff, up to `RetryPolicy.max_attempts`, then the
period is `gave_up` (counted in `supportbot_job_gave_up_total`, which alerts). While a period runs, its
`next_attempt_at` is the run's own lease, renewed by the process running it: a run whose process died stops
renewing, and once the lease is out the period counts as a failed attempt and is retried by the leader.
Runs started by hand (`run_job`) have a manual key, no period and no retries.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, cast

import structlog
from sqlalchemy import Table, and_, delete, func, or_, select, update

from bot import metrics
from bot.errors import ConfigError
from bot.ports import Clock
from bot.store.db import Database
from bot.store.sql import insert_ignore, rowcount, truncate
from bot.store.tables import JobRunRow
from scheduler.config import RetryPolicy
from scheduler.jobs import JobSpec

log = structlog.get_logger(__name__)

PENDING, RUNNING, OK, FAILED, SKIPPED = "pending", "running", "ok", "failed", "skipped"
GAVE_UP, MISSED, SUPERSEDED = "gave_up", "missed", "superseded"
FINISHED = (OK, GAVE_UP, MISSED, SUPERSEDED)


@dataclass(frozen=True, slots=True)
class JobResult:
    """What one attempt to run a job did: ok, failed (to be retried), gave_up, or skipped (someone else had
    already claimed that period)."""

    job: str
    run_key: str
    status: str  # ok | failed | gave_up | skipped
    detail: str = ""
    attempt: int = 0
    retry_at: datetime | None = None  # when a failed period is due again


@dataclass(frozen=True, slots=True)
class Period:
    """One planned period of a job, as stored."""

    id: int
    job: str
    run_key: str
    scheduled_at: datetime
    status: str
    schedule: str
    attempts: int
    next_attempt_at: datetime | None

    def due_at(self) -> datetime:
        """When this period may (next) run: its scheduled time, the time its retry is due, or (a run whose
        process stopped renewing it) the time its run lease ran out."""
        if self.status in (FAILED, RUNNING) and self.next_attempt_at is not None:
            return self.next_attempt_at
        return self.scheduled_at


def _period(row: JobRunRow) -> Period:
    assert row.scheduled_at is not None
    return Period(
        row.id, row.job, row.run_key, row.scheduled_at, row.status, row.schedule, row.attempts, row.next_attempt_at
    )


class JobRunLog:
    """The `job_runs` table: plan periods, claim them, settle them, count and prune."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._table = cast(Table, JobRunRow.__table__)

    def now(self) -> datetime:
        """The time this log stamps rows with."""
        return self._clock.now()

    async def latest(self, job: str) -> Period | None:
        """The job's latest period (by scheduled time), whatever its state."""
        query = (
            select(JobRunRow)
            .where(JobRunRow.job == job, JobRunRow.scheduled_at.is_not(None))
            .order_by(JobRunRow.scheduled_at.desc(), JobRunRow.id.desc())
            .limit(1)
        )
        async with self._db.sessions() as session:
            row = (await session.execute(query)).scalar_one_or_none()
            return None if row is None else _period(row)

    async def by_key(self, run_key: str) -> Period | None:
        async with self._db.sessions() as session:
            row = (await session.execute(select(JobRunRow).where(JobRunRow.run_key == run_key))).scalar_one_or_none()
            return None if row is None or row.scheduled_at is None else _period(row)

    async def plan(self, job: str, run_key: str, scheduled_at: datetime, schedule: str, status: str = PENDING) -> bool:
        """Record a period (pending, or `missed`); False when its key is already there."""
        now = self._clock.now()
        values: dict[str, Any] = {
            "job": job,
            "run_key": run_key,
            "holder": "",
            "status": status,
            "detail": "",
            "started_at": now,
            "finished_at": now if status in FINISHED else None,
            "scheduled_at": scheduled_at,
            "schedule": schedule,
            "attempts": 0,
        }
        async with self._db.transaction() as session:
            return rowcount(await session.execute(insert_ignore(self._db.dialect, self._table, values))) == 1

    async def drop_plan(self, period: Period) -> bool:
        """Forget a pending period planned under a schedule that has since changed."""
        async with self._db.transaction() as session:
            result = await session.execute(
                delete(JobRunRow).where(JobRunRow.id == period.id, JobRunRow.status == PENDING)
            )
            return rowcount(result) == 1

    async def due(self, jobs: Collection[str], now: datetime) -> list[Period]:
        """Periods of `jobs` that may run now: pending ones whose time has come, failed ones whose retry has,
        and running ones whose run lease ran out (their process died)."""
        query = (
            select(JobRunRow)
            .where(
                JobRunRow.job.in_(list(jobs)),
                or_(
                    and_(JobRunRow.status == PENDING, JobRunRow.scheduled_at <= now),
                    and_(JobRunRow.status.in_((FAILED, RUNNING)), JobRunRow.next_attempt_at <= now),
                ),
                JobRunRow.scheduled_at.is_not(None),
            )
            .order_by(JobRunRow.scheduled_at, JobRunRow.id)
        )
        async with self._db.sessions() as session:
            return [_period(row) for row in (await session.execute(query)).scalars()]

    async def claim(self, period: Period, holder: str, lease: timedelta) -> bool:
        """Compare-and-set the period from the state it was read in to `running` (with a run lease of `lease`);
        False if someone else did."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(JobRunRow)
                .where(*_as_read(period))
                .values(
                    status=RUNNING,
                    holder=holder,
                    attempts=period.attempts + 1,
                    started_at=now,
                    next_attempt_at=now + lease,
                )
            )
            return rowcount(result) == 1

    async def renew(self, run_ids: Collection[int], holder: str, lease: timedelta) -> None:
        """Extend the run leases of the periods this holder is running."""
        if not run_ids:
            return
        async with self._db.transaction() as session:
            await session.execute(
                update(JobRunRow)
                .where(JobRunRow.id.in_(list(run_ids)), JobRunRow.holder == holder, JobRunRow.status == RUNNING)
                .values(next_attempt_at=self._clock.now() + lease)
            )

    async def close(self, period: Period, status: str, detail: str) -> bool:
        """Move a period, as it was read, straight to a final state (missed, gave_up) without running it."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(JobRunRow)
                .where(*_as_read(period))
                .values(
                    status=status, detail=truncate(detail, 1000), finished_at=self._clock.now(), next_attempt_at=None
                )
            )
            return rowcount(result) == 1

    async def start_manual(self, job: str, run_key: str, holder: str) -> int | None:
        """A run started by hand: inserted already running; None if the key exists."""
        now = self._clock.now()
        values = {"job": job, "run_key": run_key, "holder": holder, "status": RUNNING, "started_at": now, "attempts": 1}
        async with self._db.transaction() as session:
            result = await session.execute(insert_ignore(self._db.dialect, self._table, values))
            if rowcount(result) != 1:
                return None
            return int((await session.execute(select(JobRunRow.id).where(JobRunRow.run_key == run_key))).scalar_one())

    async def settle(
        self, run_id: int, holder: str, attempt: int, status: str, detail: str = "", *, retry_at: datetime | None = None
    ) -> bool:
        """Record how attempt `attempt` ended (a failed one with the time its retry is due, if any); False when
        the period has moved on without us (our run lease ran out and another attempt took it)."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(JobRunRow)
                .where(
                    JobRunRow.id == run_id,
                    JobRunRow.holder == holder,
                    JobRunRow.attempts == attempt,
                    JobRunRow.status == RUNNING,
                )
                .values(
                    status=status,
                    detail=truncate(detail, 1000),
                    finished_at=self._clock.now(),
                    next_attempt_at=retry_at,
                )
            )
            return rowcount(result) == 1

    async def supersede(self, job: str, before: datetime) -> int:
        """A good run makes older failed periods of the same job moot (the work they owed is done)."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(JobRunRow)
                .where(JobRunRow.job == job, JobRunRow.status == FAILED, JobRunRow.scheduled_at < before)
                .values(status=SUPERSEDED, next_attempt_at=None, finished_at=self._clock.now())
            )
            return rowcount(result)

    async def counts(self) -> dict[str, int]:
        """Rows per job (any status), e.g. for tests and `doctor`."""
        async with self._db.sessions() as session:
            rows = await session.execute(select(JobRunRow.job, func.count()).group_by(JobRunRow.job))
            return {job: int(n) for job, n in rows.tuples()}

    async def prune(self, older_than: timedelta) -> int:
        """Forget finished periods older than `older_than` (frequent jobs would otherwise grow the table forever);
        pending, running and to-be-retried rows stay."""
        cutoff = self._clock.now() - older_than
        manual_failure = and_(JobRunRow.status == FAILED, JobRunRow.next_attempt_at.is_(None))
        finished = or_(JobRunRow.status.in_(FINISHED), manual_failure)
        async with self._db.transaction() as session:
            result = await session.execute(delete(JobRunRow).where(JobRunRow.finished_at < cutoff, finished))
            return rowcount(result)


async def execute(
    runs: JobRunLog, spec: JobSpec, period: Period, holder: str, retry: RetryPolicy, lease: timedelta
) -> JobResult:
    """Claim `period`, run the job, settle the row: ok, failed with a retry time, or given up after the last
    attempt. Errors are logged and recorded, never raised."""
    if not await runs.claim(period, holder, lease):
        metrics.JOB_RUNS.labels(spec.name, SKIPPED).inc()
        log.debug("scheduler.job_skipped", job=spec.name, run_key=period.run_key, reason="claimed elsewhere")
        return JobResult(spec.name, period.run_key, SKIPPED, "claimed elsewhere")
    attempt = period.attempts + 1
    level = log.debug if spec.frequent else log.info
    level("scheduler.job_started", job=spec.name, run_key=period.run_key, attempt=attempt)
    try:
        outcome = await spec.run()
    except Exception as exc:
        return await _failed(runs, spec, period, holder, attempt, retry, exc)
    detail = "" if outcome is None else truncate(str(outcome), 1000)
    if not await runs.settle(period.id, holder, attempt, OK, detail):
        log.warning("scheduler.run_lease_lost", job=spec.name, run_key=period.run_key, attempt=attempt)
    with contextlib.suppress(Exception):
        await runs.supersede(spec.name, period.scheduled_at)
    metrics.JOB_RUNS.labels(spec.name, OK).inc()
    level("scheduler.job_finished", job=spec.name, run_key=period.run_key, attempt=attempt)
    return JobResult(spec.name, period.run_key, OK, detail, attempt)


async def _failed(
    runs: JobRunLog, spec: JobSpec, period: Period, holder: str, attempt: int, retry: RetryPolicy, exc: Exception
) -> JobResult:
    reason = type(exc).__name__
    metrics.JOB_RUNS.labels(spec.name, FAILED).inc()
    if attempt < retry.max_attempts:
        retry_at = runs.now() + retry.delay_after(attempt)
        log.warning(
            "scheduler.job_failed",
            job=spec.name,
            run_key=period.run_key,
            attempt=attempt,
            retry_at=retry_at.isoformat(),
            exc_info=exc,
        )
        with contextlib.suppress(Exception):
            await runs.settle(period.id, holder, attempt, FAILED, reason, retry_at=retry_at)
        return JobResult(spec.name, period.run_key, FAILED, reason, attempt, retry_at)
    log.error("scheduler.job_gave_up", job=spec.name, run_key=period.run_key, attempts=attempt, exc_info=exc)
    metrics.JOB_GAVE_UP.labels(spec.name).inc()
    with contextlib.suppress(Exception):
        await runs.settle(period.id, holder, attempt, GAVE_UP, reason)
    return JobResult(spec.name, period.run_key, GAVE_UP, reason, attempt)


def period_key(spec: JobSpec, scheduled: datetime, tz: tzinfo) -> str:
    """`job:time` for one period. Fixed-hour cron jobs use local wall-clock time so the repeated hour of a
    daylight-saving fall-back does not run them twice; everything else uses the UTC instant."""
    if spec.once_per_wall_clock:
        local = scheduled.astimezone(tz).replace(tzinfo=None)
        return f"{spec.name}:{local.isoformat(timespec='seconds')}@local"
    return f"{spec.name}:{scheduled.astimezone(UTC).isoformat(timespec='seconds')}"


async def run_job(
    db: Database, clock: Clock, jobs: Mapping[str, JobSpec], name: str, holder: str = "manual"
) -> JobResult:
    """Run one job now, by hand (`supportbot job NAME`): recorded in `job_runs` under a manual key, not retried
    (the operator sees the result)."""
    spec = jobs.get(name)
    if spec is None:
        raise ConfigError(f"no job named {name!r}; known: {', '.join(sorted(jobs))}")
    runs = JobRunLog(db, clock)
    key = f"{name}:manual:{clock.now().isoformat(timespec='seconds')}:{secrets.token_hex(3)}"
    run_id = await runs.start_manual(name, key, holder)
    if run_id is None:
        return JobResult(name, key, SKIPPED, "key taken")
    log.info("scheduler.job_started", job=name, run_key=key, manual=True)
    try:
        outcome = await spec.run()
    except Exception as exc:
        log.exception("scheduler.job_failed", job=name, run_key=key, manual=True)
        metrics.JOB_RUNS.labels(name, FAILED).inc()
        with contextlib.suppress(Exception):
            await runs.settle(run_id, holder, 1, FAILED, type(exc).__name__)
        return JobResult(name, key, FAILED, type(exc).__name__, 1)
    detail = "" if outcome is None else truncate(str(outcome), 1000)
    await runs.settle(run_id, holder, 1, OK, detail)
    metrics.JOB_RUNS.labels(name, OK).inc()
    log.info("scheduler.job_finished", job=name, run_key=key, manual=True)
    return JobResult(name, key, OK, detail, 1)


def _as_read(period: Period) -> tuple[Any, ...]:
    """The compare-and-set condition: the row still holds the status and attempt count the period was read with,
    so of two replicas moving the same period only one succeeds."""
    return (JobRunRow.id == period.id, JobRunRow.status == period.status, JobRunRow.attempts == period.attempts)
