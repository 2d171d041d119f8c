"""The clock: APScheduler with its job store in our database, run only by the replica holding the leader lease.

Every replica starts an APScheduler *paused*; the one that holds the `scheduler-leader` lease (renewed every
ttl/3) resumes it, the others stay paused, and a leader that dies is replaced once its lease runs out (at most
`LEADER_LEASE_SECONDS` later). Job definitions and their next run times live in the `apscheduler_jobs` table, so a
new leader carries on where the old one stopped and a run missed while every process was down fires once on
start.

Deliberate settings, and why:
- `coalesce=True`: after downtime or a failover, the runs a job missed collapse into one (flushing the outbox
  ten times in a row helps nobody; the weekly report must not post twice).
- `max_instances=1`: a slow run (a big KB sync) is never overlapped by the next one.
- `misfire_grace_time=MISFIRE_GRACE_SECONDS` (1 h by default): a run missed by less than that runs late; a run
  missed by more is skipped and logged (a Monday-morning report does not turn up on Thursday).
- Each run first claims a `job_runs` row keyed by job and scheduled time, so a period runs once even if a stale
  leader and a new one both fire it.

APScheduler 3 reads and writes its job store synchronously; here that I/O runs on one worker thread, so the
event loop never blocks on the database (on SQLite a blocked loop could deadlock with our own async writers).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.executors.base import BaseExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from sqlalchemy import Engine, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine.url import make_url

from bot import metrics
from bot.errors import ConfigError
from bot.ports import Clock, SystemClock
from bot.settings import Settings
from bot.store.db import Database
from bot.store.leases import LeaseStore
from scheduler.jobs import JobSpec
from scheduler.runs import JobResult, JobRunLog, execute, period_key, run_job

log = structlog.get_logger(__name__)

LEADER_LEASE = "scheduler-leader"
JOBSTORE_TABLE = "apscheduler_jobs"
JOB_RUNS_KEPT = timedelta(days=7)
PRUNE_EVERY = timedelta(hours=1)
_JOBSTORE_LOCK_ID = 0x5B08  # advisory lock so replicas starting together create the job store table once


def sync_database_url(url: str) -> str:
    """The synchronous twin of our async URL, for APScheduler's job store (aiosqlite -> sqlite, asyncpg -> psycopg)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite").render_as_string(hide_password=False)
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    raise ConfigError(f"the scheduler's job store supports SQLite and PostgreSQL, not {backend}")


def _jobstore_engine(url: str) -> Engine:
    sync_url = sync_database_url(url)
    if sync_url.startswith("sqlite"):
        return create_sync_engine(sync_url, connect_args={"timeout": 15})
    return create_sync_engine(sync_url, pool_pre_ping=True, pool_size=2, max_overflow=2)


def _ensure_jobstore_table(engine: Engine, store: SQLAlchemyJobStore) -> None:
    """Create APScheduler's table once: on PostgreSQL two replicas racing `CREATE TABLE` would collide."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_JOBSTORE_LOCK_ID})"))
        store.jobs_t.create(conn, checkfirst=True)


async def scheduled_job() -> None:
    """What the job store records as each job's function. Jobs run through `SupportScheduler`'s executor, which
    looks the job up by name in the job table of this process, so nothing process-specific is pickled."""
    raise RuntimeError("scheduled jobs run through SupportScheduler, not directly")


class _OffLoopScheduler(AsyncIOScheduler):  # type: ignore[misc]
    """AsyncIOScheduler whose job-store I/O (`_process_jobs`) runs on one worker thread instead of the loop."""

    io: concurrent.futures.ThreadPoolExecutor

    def start(self, paused: bool = False) -> None:
        self.io = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="scheduler-store")
        super().start(paused)

    def wakeup(self) -> None:
        loop = self._eventloop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wakeup_in_loop)

    def _wakeup_in_loop(self) -> None:
        if self._eventloop is None:
            return
        self._stop_timer()
        future = self._eventloop.run_in_executor(self.io, self._process_jobs)
        future.add_done_callback(self._processed)

    def _processed(self, future: asyncio.Future[float | None]) -> None:
        if future.cancelled() or self._eventloop is None:
            return
        error = future.exception()
        if error is not None:
            log.error("scheduler.process_failed", error=type(error).__name__)
            self._start_timer(self.jobstore_retry_interval)
            return
        self._start_timer(future.result())


class _LeaderExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs a due job by handing it to its `SupportScheduler` (which checks the lease and the period first)."""

    def __init__(self, owner: SupportScheduler) -> None:
        super().__init__()
        self._owner = owner

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
        loop = self._owner.loop
        assert loop is not None, "the scheduler is not started"
        future = asyncio.run_coroutine_threadsafe(self._owner.fire(job.id, run_times), loop)
        self._owner.inflight.add(future)

        def done(f: concurrent.futures.Future[list[JobExecutionEvent]]) -> None:
            self._owner.inflight.discard(f)
            try:
                events = f.result()
            except BaseException as exc:
                self._run_job_error(job.id, exc, exc.__traceback__)
            else:
                self._run_job_success(job.id, events)

        future.add_done_callback(done)


class SupportScheduler:
    """One process's scheduler: start, stop, run a job by hand. Only the lease holder runs scheduled jobs."""

    name = "scheduler"

    def __init__(
        self,
        settings: Settings,
        leases: LeaseStore,
        db: Database,
        jobs: Mapping[str, JobSpec],
        *,
        holder_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        try:
            self.tz = ZoneInfo(settings.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"TIMEZONE: unknown time zone {settings.timezone!r}") from None
        self.jobs = dict(jobs)
        self.holder = holder_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.inflight: set[concurrent.futures.Future[list[JobExecutionEvent]]] = set()
        self._settings = settings
        self._leases = leases
        self._db = db
        self._clock = clock or SystemClock()
        self._runs = JobRunLog(db, self._clock)
        self._ttl = settings.leader_lease_seconds
        self._grace = timedelta(seconds=settings.misfire_grace_seconds)
        self._leader = False
        self._last_prune: datetime | None = None
        self._aps: _OffLoopScheduler | None = None
        self._engine: Engine | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        for spec in self.jobs.values():
            spec.trigger(self.tz)  # a bad crontab fails here, at build time

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def start(self, *, renew: bool = True) -> None:
        """Open the job store, register the jobs, take the lease if free. `renew=False` leaves renewal to the
        caller (`tick()`), for tests that drive time by hand."""
        self.loop = asyncio.get_running_loop()
        self._engine = _jobstore_engine(self._db.url)
        store = SQLAlchemyJobStore(engine=self._engine, tablename=JOBSTORE_TABLE)
        await asyncio.to_thread(_ensure_jobstore_table, self._engine, store)
        self._aps = _OffLoopScheduler(
            timezone=self.tz,
            jobstores={"default": store},
            executors={"default": _LeaderExecutor(self)},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self._settings.misfire_grace_seconds,
            },
        )
        self._aps.start(paused=True)
        await self._in_store_thread(self._register_jobs)
        await self.tick()
        if renew:
            self._loop_task = asyncio.create_task(self._renew_loop(), name="scheduler-lease")
        log.info("scheduler.started", holder=self.holder, jobs=sorted(self.jobs), leader=self._leader)

    async def stop(self, *, release: bool = True, grace_seconds: float = 10.0) -> None:
        """Stop firing, let running jobs finish (up to `grace_seconds`), hand the lease on."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._aps is not None:
            self._aps.pause()
            await self._wait_inflight(grace_seconds)
            await asyncio.to_thread(self._aps.io.shutdown, True)
            self._aps.shutdown(wait=False)
            await asyncio.sleep(0)
            self._aps = None
        if release and self._leader:
            with contextlib.suppress(Exception):
                await self._leases.release(LEADER_LEASE, self.holder)
        self._set_leader(False)
        if self._engine is not None:
            await asyncio.to_thread(self._engine.dispose)
            self._engine = None
        log.info("scheduler.stopped", holder=self.holder)

    async def tick(self) -> bool:
        """Renew (or try to take) the leader lease; resume or pause the scheduler to match. Returns leadership."""
        try:
            leader = await self._leases.acquire(LEADER_LEASE, self.holder, self._ttl)
        except Exception:
            log.exception("scheduler.lease_failed", holder=self.holder)
            leader = False  # cannot prove we hold it: step down
        self._set_leader(leader)
        if leader:
            await self._prune_if_due()
        return leader

    async def run_pending(self) -> None:
        """Process due jobs now and wait for them to finish (a burst, for tests and the CLI)."""
        if self._aps is None or self.loop is None or not self._leader:
            return
        await self.loop.run_in_executor(self._aps.io, self._aps._process_jobs)
        await self._wait_inflight(None)

    async def run_now(self, name: str) -> JobResult:
        """Run one job by hand, whoever leads (recorded in `job_runs` under a manual key)."""
        return await run_job(self._db, self._clock, self.jobs, name, holder=self.holder)

    def next_run_times(self) -> dict[str, datetime | None]:
        """Next fire time per job, from the job store (for `doctor` and tests)."""
        if self._aps is None:
            return {}
        return {job.id: job.next_run_time for job in self._aps.get_jobs()}

    async def fire(self, name: str, run_times: list[datetime]) -> list[JobExecutionEvent]:
        """Called by the executor for a due job: check grace and leadership, claim the period, run."""
        spec = self.jobs.get(name)
        scheduled = run_times[-1]  # coalesced: only the latest missed time
        if spec is None:
            log.warning("scheduler.unknown_job", job=name)
            return []
        late = datetime.now(UTC) - scheduled
        if late > self._grace:
            log.warning("scheduler.job_missed", job=name, scheduled=scheduled.isoformat(), late_s=late.total_seconds())
            metrics.JOB_RUNS.labels(name, "missed").inc()
            return [JobExecutionEvent(EVENT_JOB_MISSED, name, "default", scheduled)]
        if not self._leader:
            log.info("scheduler.not_leader", job=name)
            return []
        result = await execute(self._runs, spec, period_key(spec, scheduled, self.tz), self.holder)
        return [JobExecutionEvent(EVENT_JOB_EXECUTED, name, "default", scheduled, retval=result.status)]

    def _register_jobs(self) -> None:
        """Add each job to the store, keeping a stored job whose schedule is unchanged (so its pending next run
        time, maybe in the past after downtime, survives the restart and fires once)."""
        assert self._aps is not None
        for spec in self.jobs.values():
            trigger = spec.trigger(self.tz)
            existing = self._aps.get_job(spec.name)
            if existing is not None and _same_schedule(existing, trigger, self._settings.misfire_grace_seconds):
                continue
            self._aps.add_job(
                scheduled_job,
                trigger=trigger,
                id=spec.name,
                name=spec.name,
                replace_existing=True,
            )

    async def _in_store_thread(self, fn: Any) -> None:
        assert self._aps is not None and self.loop is not None
        await self.loop.run_in_executor(self._aps.io, fn)

    def _set_leader(self, leader: bool) -> None:
        if leader != self._leader:
            log.info("scheduler.leadership", holder=self.holder, leader=leader)
        self._leader = leader
        metrics.SCHEDULER_LEADER.set(1 if leader else 0)
        if self._aps is None:
            return
        if leader and self._aps.state == STATE_PAUSED:
            self._aps.resume()
        elif not leader and self._aps.state == STATE_RUNNING:
            self._aps.pause()

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self._ttl / 3)
            await self.tick()

    async def _prune_if_due(self) -> None:
        now = self._clock.now()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        try:
            await self._runs.prune(JOB_RUNS_KEPT)
        except Exception:
            log.exception("scheduler.prune_failed")

    async def _wait_inflight(self, limit_seconds: float | None) -> None:
        pending = [asyncio.wrap_future(f) for f in list(self.inflight)]
        if pending:
            await asyncio.wait(pending, timeout=limit_seconds)


def _same_schedule(job: Any, trigger: Any, grace: int) -> bool:
    return bool(
        str(job.trigger) == str(trigger)
        and str(getattr(job.trigger, "timezone", "")) == str(getattr(trigger, "timezone", ""))
        and job.misfire_grace_time == grace
        and job.coalesce
        and job.max_instances == 1
    )


def build_scheduler(
    settings: Settings,
    leases: LeaseStore,
    db: Database,
    jobs: Mapping[str, JobSpec],
    *,
    holder_id: str | None = None,
    clock: Clock | None = None,
) -> SupportScheduler:
    """The scheduler for this process; `jobs` usually comes from `scheduler.jobs.job_table(settings, callables)`."""
    return SupportScheduler(settings, leases, db, jobs, holder_id=holder_id, clock=clock)
