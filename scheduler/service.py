"""The clock: a small asyncio loop, run for real only by the replica holding the `scheduler-leader` lease.

Why not APScheduler's scheduler classes: making AsyncIOScheduler share a job store across replicas, keep its
store I/O off the event loop, pause on losing a lease and retry a failed run meant overriding its private
methods (`_process_jobs`, `_start_timer`, `_wakeup_in_loop`), which break on any minor release, and its job
store cannot retry a failed run at all. APScheduler 3 is kept for what it does well and documents publicly:
the triggers (`CronTrigger.from_crontab`, `IntervalTrigger`, `get_next_fire_time(previous, now)`), with their
daylight-saving arithmetic. The rest is ours and short:

- Every replica renews or tries to take the lease every `leader_lease_seconds / 3`; a leader that dies is
  replaced once its lease runs out. Only the leader plans and runs periods.
- The plan lives in `job_runs` (`scheduler.runs`): the leader records each job's next period as a `pending`
  row, computed from the trigger and the job's latest row, so a new leader or a restarted process carries on
  where the last one stopped. A period whose time has come is claimed by compare-and-set, so it runs once
  even if a stale leader and a new one both try.
- Missed periods (every process down, or a failover): the runs a job missed collapse into its latest one, which
  runs late if it is at most `misfire_grace_seconds` old, and is recorded as `missed` (and logged) otherwise —
  a Monday-morning report does not turn up on Thursday.
- A failed period is retried after `RetryPolicy` backoff by whichever replica leads, up to `max_attempts`, then
  given up and alerted. A run holds a lease of its own (renewed with the leader lease), so a period whose
  process died mid-run is retried too, once that lease runs out. At most one run of a job at a time in a
  process; different jobs run concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Mapping
from datetime import datetime, timedelta

import structlog
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot import metrics
from bot.ports import Clock, SystemClock
from bot.store.db import Database
from bot.store.leases import LeaseStore
from scheduler.config import SchedulerConfig
from scheduler.jobs import JobSpec
from scheduler.runs import GAVE_UP, MISSED, PENDING, RUNNING, JobResult, JobRunLog, Period, execute, period_key, run_job

log = structlog.get_logger(__name__)

LEADER_LEASE = "scheduler-leader"
PRUNE_EVERY = timedelta(hours=1)
MAX_PLAN_STEPS = 10_000  # fire times walked within the grace window (a 1 h grace, a job every second: 3600)


class SupportScheduler:
    """One process's scheduler: `start()`, `stop()`, `run_pending()` (a burst, for tests), `run_now(name)`."""

    name = "scheduler"

    def __init__(
        self,
        config: SchedulerConfig,
        leases: LeaseStore,
        db: Database,
        jobs: Mapping[str, JobSpec],
        *,
        holder_id: str | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.tz = config.tz
        self.jobs = dict(jobs)
        self.holder = holder_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._triggers = {name: spec.trigger(self.tz) for name, spec in self.jobs.items()}  # bad crontab: here
        for name in self.jobs:
            metrics.JOB_GAVE_UP.labels(name)  # exported at 0, so the first give-up is an increase Prometheus sees
        self._leases = leases
        self._db = db
        self._clock = clock or SystemClock()
        self._runs = JobRunLog(db, self._clock)
        self._leader = False
        self._planned: dict[str, datetime | None] = {}
        self._retries: dict[str, datetime] = {}  # retries this process scheduled, to wake up for them
        self._running: dict[str, asyncio.Task[JobResult]] = {}
        self._running_ids: dict[str, int] = {}  # job -> the period it is running, whose run lease we renew
        self._run_lease = timedelta(seconds=config.leader_lease_seconds)
        self._last_prune: datetime | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    @property
    def is_leader(self) -> bool:
        return self._leader

    async def start(self, *, loop: bool = True) -> None:
        """Take the lease if it is free and plan. `loop=False` leaves the clock to the caller (`tick()` and
        `run_pending()`), for tests that drive time by hand."""
        if await self.tick():
            await self._plan_due(self._clock.now())  # an interval job's first period counts from start
        if loop:
            self._loop_task = asyncio.create_task(self._run_forever(), name="scheduler")
        log.info("scheduler.started", holder=self.holder, jobs=sorted(self.jobs), leader=self._leader)

    async def stop(self, *, release: bool = True, grace_seconds: float = 10.0) -> None:
        """Stop starting runs, let running ones finish (up to `grace_seconds`), hand the lease on."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        await self._wait_running(grace_seconds)
        unfinished = list(self._running.values())
        for task in unfinished:
            task.cancel()  # its period stays `running` until its run lease runs out, then it is retried
        await asyncio.gather(*unfinished, return_exceptions=True)
        if release and self._leader:
            with contextlib.suppress(Exception):
                await self._leases.release(LEADER_LEASE, self.holder)
        self._set_leader(False)
        log.info("scheduler.stopped", holder=self.holder)

    async def tick(self) -> bool:
        """Renew (or try to take) the leader lease. Returns leadership."""
        try:
            leader = await self._leases.acquire(LEADER_LEASE, self.holder, self.config.leader_lease_seconds)
        except Exception:
            log.exception("scheduler.lease_failed", holder=self.holder)
            leader = False  # cannot prove we hold it: step down
        log.debug("scheduler.lease_renewed" if leader else "scheduler.lease_held_elsewhere", holder=self.holder)
        took_over = leader and not self._leader
        self._set_leader(leader)
        if took_over:
            await self._plan_start_runs()
        if self._running_ids:
            try:
                await self._runs.renew(self._running_ids.values(), self.holder, self._run_lease)
            except Exception:
                log.exception("scheduler.run_lease_failed", holder=self.holder)
        if leader:
            await self._prune_if_due()
        return leader

    async def run_pending(self) -> list[JobResult]:
        """Start every period due now (if this process leads) and wait for all runs to finish: a burst."""
        results: list[JobResult] = []
        while self._leader and await self._dispatch():
            results += await asyncio.gather(*self._running.values())
        return results

    async def run_now(self, name: str) -> JobResult:
        """Run one job by hand, whoever leads (recorded in `job_runs` under a manual key, not retried)."""
        return await run_job(self._db, self._clock, self.jobs, name, holder=self.holder)

    def next_run_times(self) -> dict[str, datetime | None]:
        """The next planned period per job, as this process last saw it (for `doctor` and tests)."""
        return {name: self._planned.get(name) for name in self.jobs}

    async def _dispatch(self) -> bool:
        """Plan what needs planning, then start each due period (one run per job at a time). True when it
        started or skipped something (so a burst goes round again)."""
        now = self._clock.now()
        self._retries = {job: at for job, at in self._retries.items() if at > now}
        await self._plan_due(now)
        progress = False
        for period in await self._runs.due(self.jobs.keys(), now):
            if period.job in self._running:
                continue
            progress = True
            if await self._closed(period, now):
                await self._plan(self.jobs[period.job], now)  # the period after the one skipped
                continue
            task = asyncio.create_task(self._run(period), name=f"job:{period.job}")
            self._running[period.job] = task
            self._running_ids[period.job] = period.id
        return progress

    async def _plan_start_runs(self) -> None:
        """Jobs marked `run_on_start` run once as soon as this process leads (a fresh or restarted deploy syncs
        the knowledge base at once), unless a period of theirs is due anyway."""
        now = self._clock.now()
        for spec in self.jobs.values():
            if not spec.run_on_start:
                continue
            try:
                latest = await self._runs.latest(spec.name)
                if latest is not None and latest.status == PENDING and _within(latest, now, self.config.misfire_grace):
                    continue  # due anyway, and in time: that run is the start run
                await self._runs.plan(spec.name, period_key(spec, now, self.tz), now, spec.schedule(self.tz))
            except Exception:
                log.exception("scheduler.plan_failed", job=spec.name)

    async def _plan_due(self, now: datetime) -> None:
        for name, spec in self.jobs.items():
            planned = self._planned.get(name)
            if planned is None or planned <= now:
                await self._plan(spec, now)

    async def _run(self, period: Period) -> JobResult:
        try:
            spec = self.jobs[period.job]
            result = await execute(self._runs, spec, period, self.holder, self.config.retry, self._run_lease)
            if result.retry_at is not None:
                self._retries[period.job] = result.retry_at
            return result
        finally:
            self._running.pop(period.job, None)
            self._running_ids.pop(period.job, None)
            self._wake.set()

    async def _closed(self, period: Period, now: datetime) -> bool:
        """Close a due period instead of running it when running it would be wrong: a pending period older than
        the grace is missed; a retry (or an abandoned run) that fell that far behind, or an abandoned run that
        was already the last attempt, is given up."""
        late = now - period.due_at()
        if period.status == RUNNING:
            log.warning("scheduler.run_abandoned", job=period.job, run_key=period.run_key, attempt=period.attempts)
        if late <= self.config.misfire_grace and not (
            period.status == RUNNING and period.attempts >= self.config.retry.max_attempts
        ):
            return False
        if period.status == PENDING:
            if await self._runs.close(period, MISSED, f"{late.total_seconds():.0f}s late"):
                self._missed(period.job, period.scheduled_at, late)
        elif await self._runs.close(period, GAVE_UP, "too late" if late > self.config.misfire_grace else "abandoned"):
            log.error("scheduler.job_gave_up", job=period.job, run_key=period.run_key, attempts=period.attempts)
            metrics.JOB_GAVE_UP.labels(period.job).inc()
        return True

    async def _plan(self, spec: JobSpec, now: datetime) -> None:
        """Make sure the job's next period is recorded as pending; remember when it is due."""
        schedule = spec.schedule(self.tz)
        latest = await self._runs.latest(spec.name)
        if latest is not None and latest.status == PENDING:
            if latest.schedule == schedule:
                self._planned[spec.name] = latest.scheduled_at
                return
            await self._runs.drop_plan(latest)  # planned under an old schedule
            log.info("scheduler.replanned", job=spec.name, schedule=schedule)
            latest = await self._runs.latest(spec.name)
        self._planned[spec.name] = await self._plan_after(spec, latest, schedule, now)

    async def _plan_after(self, spec: JobSpec, latest: Period | None, schedule: str, now: datetime) -> datetime | None:
        trigger = self._triggers[spec.name]
        fire = _first_fire(trigger, latest.scheduled_at if latest else None, now)
        horizon = now - self.config.misfire_grace
        if fire is not None and fire < horizon:  # runs missed beyond the grace while nobody led: logged, skipped
            self._missed(spec.name, fire, now - fire)
            fire = _first_fire_from(spec, trigger, fire, horizon)
        for _ in range(MAX_PLAN_STEPS):
            if fire is None:
                return None  # the schedule has no more fire times
            following = _after(trigger, fire)
            if fire <= now and following is not None and following <= now:
                fire = following  # runs missed within the grace collapse into the latest one, which runs late
                continue
            key = period_key(spec, fire, self.tz)
            if await self._runs.plan(spec.name, key, fire, schedule):
                return fire
            existing = await self._runs.by_key(key)
            if existing is not None and existing.status == PENDING:
                return existing.scheduled_at  # another replica planned it first
            fire = following  # that wall-clock time already ran (the repeated hour of a DST fall-back)
        log.error("scheduler.plan_failed", job=spec.name, reason="no plannable fire time found")
        return None

    def _missed(self, job: str, scheduled: datetime, late: timedelta) -> None:
        log.warning("scheduler.job_missed", job=job, scheduled=scheduled.isoformat(), late_s=late.total_seconds())
        metrics.JOB_RUNS.labels(job, MISSED).inc()

    def _set_leader(self, leader: bool) -> None:
        if leader != self._leader:
            log.info("scheduler.leadership", holder=self.holder, leader=leader)
            self._planned.clear()  # a new leader reads the plan from the database
        self._leader = leader
        metrics.SCHEDULER_LEADER.set(1 if leader else 0)

    async def _run_forever(self) -> None:
        renew_every = timedelta(seconds=self.config.leader_lease_seconds / 3)
        next_renewal = self._clock.now() + renew_every
        while True:
            failed = False
            try:
                if self._clock.now() >= next_renewal:
                    await self.tick()
                    next_renewal = self._clock.now() + renew_every
                if self._leader:
                    await self._dispatch()
            except Exception:
                log.exception("scheduler.loop_failed", holder=self.holder)
                failed = True
            delay = max((self._wake_at(next_renewal) - self._clock.now()).total_seconds(), 0.01)
            if failed:  # the database is probably down: do not spin on it
                delay = max(delay, renew_every.total_seconds())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)

    def _wake_at(self, next_renewal: datetime) -> datetime:
        """The next renewal, planned period or retry, ignoring jobs that are running (a finished run wakes the
        loop itself; a period due behind a long run must not make the loop spin)."""
        idle = [job for job in self.jobs if job not in self._running]
        due = [t for job in idle if (t := self._planned.get(job)) is not None]
        due += [t for job in idle if (t := self._retries.get(job)) is not None]
        return min([next_renewal, *due])

    async def _prune_if_due(self) -> None:
        now = self._clock.now()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        try:
            await self._runs.prune(timedelta(days=self.config.job_runs_kept_days))
        except Exception:
            log.exception("scheduler.prune_failed")

    async def _wait_running(self, limit_seconds: float | None) -> None:
        tasks = list(self._running.values())
        if tasks:
            await asyncio.wait(tasks, timeout=limit_seconds)


def _within(period: Period, now: datetime, grace: timedelta) -> bool:
    return timedelta(0) <= now - period.scheduled_at <= grace


def _first_fire(trigger: BaseTrigger, previous: datetime | None, now: datetime) -> datetime | None:
    """The first fire time after `previous` (a job's latest period), or the first from `now` for a job with none
    (an interval job's first period is one interval from now, as a fresh APScheduler job's would be)."""
    if previous is None:
        if isinstance(trigger, IntervalTrigger):
            return _after(trigger, now)
        first: datetime | None = trigger.get_next_fire_time(None, now)
        return first
    return _after(trigger, previous)


def _after(trigger: BaseTrigger, fire: datetime) -> datetime | None:
    """The fire time following `fire`, even one in the past (APScheduler: `now` no later than the previous fire
    time makes the trigger answer strictly after it)."""
    nxt: datetime | None = trigger.get_next_fire_time(fire, fire)
    return nxt


def _first_fire_from(spec: JobSpec, trigger: BaseTrigger, fire: datetime, horizon: datetime) -> datetime | None:
    """The first fire time at or after `horizon`, on the job's grid (an interval job keeps its phase)."""
    if spec.every_seconds:
        steps = -(-(horizon - fire).total_seconds() // spec.every_seconds)  # ceiling division
        return fire + timedelta(seconds=steps * spec.every_seconds)
    nxt: datetime | None = trigger.get_next_fire_time(None, horizon)
    return nxt


def build_scheduler(
    config: SchedulerConfig,
    leases: LeaseStore,
    db: Database,
    jobs: Mapping[str, JobSpec],
    *,
    holder_id: str | None = None,
    clock: Clock | None = None,
) -> SupportScheduler:
    """The scheduler for this process; `jobs` usually comes from `scheduler.jobs.job_table(config, callables)`."""
    return SupportScheduler(config, leases, db, jobs, holder_id=holder_id, clock=clock)
