"""Job runs in the database: each period of a job runs once, whoever is leader and however often it fires.

`claim()` inserts a `job_runs` row with a unique `run_key` (job + scheduled time); a second claim of the same key
(a replica that still thought it led, a coalesced re-fire) finds the row and skips. This is the belt to the
leader lease's braces.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import cast

import structlog
from sqlalchemy import Table, delete, func, select, update

from bot import metrics
from bot.errors import ConfigError
from bot.ports import Clock
from bot.store.db import Database
from bot.store.sql import insert_ignore, rowcount, truncate
from bot.store.tables import JobRunRow
from scheduler.jobs import JobSpec

log = structlog.get_logger(__name__)

OK, FAILED, SKIPPED = "ok", "failed", "skipped"


@dataclass(frozen=True, slots=True)
class JobResult:
    """What one attempt to run a job did: ran (ok/failed) or skipped (that period already ran)."""

    job: str
    run_key: str
    status: str  # ok | failed | skipped
    detail: str = ""


class JobRunLog:
    """The `job_runs` table: claim a period, settle it, count and prune."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def claim(self, job: str, run_key: str, holder: str) -> int | None:
        """Start a run of `run_key`; None when that key already ran (or is running) anywhere."""
        now = self._clock.now()
        values = {"job": job, "run_key": run_key, "holder": holder, "status": "running", "started_at": now}
        async with self._db.transaction() as session:
            result = await session.execute(insert_ignore(self._db.dialect, cast(Table, JobRunRow.__table__), values))
            if rowcount(result) != 1:
                return None
            return int((await session.execute(select(JobRunRow.id).where(JobRunRow.run_key == run_key))).scalar_one())

    async def settle(self, run_id: int, status: str, detail: str = "") -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(JobRunRow)
                .where(JobRunRow.id == run_id)
                .values(status=status, detail=truncate(detail, 1000), finished_at=self._clock.now())
            )

    async def counts(self) -> dict[str, int]:
        """Runs per job (any status), e.g. for tests and `doctor`."""
        async with self._db.sessions() as session:
            rows = await session.execute(select(JobRunRow.job, func.count()).group_by(JobRunRow.job))
            return {job: int(n) for job, n in rows.tuples()}

    async def prune(self, older_than: timedelta) -> int:
        """Forget finished runs older than `older_than` (frequent jobs would otherwise grow the table forever)."""
        cutoff = self._clock.now() - older_than
        async with self._db.transaction() as session:
            result = await session.execute(delete(JobRunRow).where(JobRunRow.started_at < cutoff))
            return rowcount(result)


async def execute(runs: JobRunLog, spec: JobSpec, run_key: str, holder: str) -> JobResult:
    """Claim `run_key`, run the job, settle the row. Errors are logged and recorded, never raised."""
    run_id = await runs.claim(spec.name, run_key, holder)
    if run_id is None:
        metrics.JOB_RUNS.labels(spec.name, SKIPPED).inc()
        log.info("scheduler.job_skipped", job=spec.name, run_key=run_key, reason="period already ran")
        return JobResult(spec.name, run_key, SKIPPED, "period already ran")
    log.info("scheduler.job_started", job=spec.name, run_key=run_key)
    try:
        outcome = await spec.run()
    except Exception as exc:
        log.exception("scheduler.job_failed", job=spec.name, run_key=run_key)
        metrics.JOB_RUNS.labels(spec.name, FAILED).inc()
        with contextlib.suppress(Exception):
            await runs.settle(run_id, FAILED, type(exc).__name__)
        return JobResult(spec.name, run_key, FAILED, type(exc).__name__)
    detail = "" if outcome is None else truncate(str(outcome), 1000)
    await runs.settle(run_id, OK, detail)
    metrics.JOB_RUNS.labels(spec.name, OK).inc()
    log.info("scheduler.job_finished", job=spec.name, run_key=run_key)
    return JobResult(spec.name, run_key, OK, detail)


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
    """Run one job now, by hand (`supportbot job NAME`): recorded in `job_runs` under a manual key."""
    spec = jobs.get(name)
    if spec is None:
        raise ConfigError(f"no job named {name!r}; known: {', '.join(sorted(jobs))}")
    key = f"{name}:manual:{clock.now().isoformat(timespec='seconds')}:{secrets.token_hex(3)}"
    return await execute(JobRunLog(db, clock), spec, key, holder)
