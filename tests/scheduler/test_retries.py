"""A failed period is retried with backoff up to a limit, by whichever replica leads, then given up and counted;
on SQLite and PostgreSQL. Also: the 0002 migration matches the model, and the clock's chatter stays at DEBUG."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from prometheus_client import REGISTRY
from sqlalchemy import Connection
from structlog.testing import capture_logs

from bot.store.db import Database
from bot.store.leases import LeaseStore
from bot.store.tables import Base
from scheduler.config import RetryPolicy, SchedulerConfig
from scheduler.jobs import job_table
from scheduler.service import SupportScheduler, build_scheduler
from tests.conftest import ManualClock
from tests.scheduler.support import Calls, runs, scheduler

MONDAY_9 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
CONFIG = SchedulerConfig(report_schedule="0 9 * * mon")  # backoff 1, 5, 15 minutes; 4 attempts


def _gave_up(job: str) -> float:
    return REGISTRY.get_sample_value("supportbot_job_gave_up_total", {"job": job}) or 0.0


async def _step_through(clock: ManualClock, sched: SupportScheduler, seconds: int, step: int = 30) -> None:
    for _ in range(seconds // step):
        clock.advance(step)
        await sched.tick()
        await sched.run_pending()


async def test_a_job_that_fails_twice_then_succeeds_runs_three_times_in_one_period(db: Database) -> None:
    clock = ManualClock(MONDAY_9 - timedelta(minutes=1))
    calls = Calls(clock, failures={"weekly_report": 2})
    sched = scheduler(db, CONFIG, calls, ("weekly_report",), "a")
    await sched.start(loop=False)
    try:
        await _step_through(clock, sched, 3600)
    finally:
        await sched.stop()
    # first at 09:00, then 1 minute after that failure, then 5 minutes after the second one
    assert calls.at["weekly_report"] == [
        MONDAY_9,
        MONDAY_9 + timedelta(minutes=1),
        MONDAY_9 + timedelta(minutes=6),
    ]
    period = (await runs(db))[0]
    assert (period.run_key, period.status, period.attempts) == ("weekly_report:2026-11-16T09:00:00@local", "ok", 3)


async def test_a_job_that_always_fails_is_given_up_after_max_attempts_and_counted(db: Database) -> None:
    clock = ManualClock(MONDAY_9 - timedelta(minutes=1))
    calls = Calls(clock, failures={"weekly_report": 1000})
    sched = scheduler(db, CONFIG, calls, ("weekly_report",), "a")
    before = _gave_up("weekly_report")
    await sched.start(loop=False)
    try:
        with capture_logs() as logs:
            await _step_through(clock, sched, 3 * 3600)
    finally:
        await sched.stop()
    assert calls.at["weekly_report"] == [MONDAY_9 + timedelta(minutes=m) for m in (0, 1, 6, 21)]
    period = (await runs(db))[0]
    assert (period.status, period.attempts) == ("gave_up", 4)
    assert _gave_up("weekly_report") == before + 1
    levels = [(e["event"], e["log_level"]) for e in logs if e["event"].startswith("scheduler.job_")]
    assert levels.count(("scheduler.job_failed", "warning")) == 3
    assert levels.count(("scheduler.job_gave_up", "error")) == 1


async def test_a_failed_period_is_retried_by_whichever_replica_leads(db: Database) -> None:
    clock = ManualClock(MONDAY_9 - timedelta(minutes=1))
    calls = Calls(clock, failures={"weekly_report": 1})
    config = SchedulerConfig(report_schedule="0 9 * * mon", leader_lease_seconds=30)
    a = scheduler(db, config, calls, ("weekly_report",), "a")
    b = scheduler(db, config, calls, ("weekly_report",), "b")
    await a.start(loop=False)
    await b.start(loop=False)
    assert a.is_leader and not b.is_leader
    clock.advance(60)
    await a.run_pending()  # 09:00: fails on a
    await a.stop(release=False)  # a crashes; its lease runs out 30 s later
    try:
        for _ in range(12):
            clock.advance(10)
            await b.tick()
            await b.run_pending()
    finally:
        await b.stop()
    assert calls.at["weekly_report"] == [MONDAY_9, MONDAY_9 + timedelta(minutes=1)]
    period = (await runs(db))[0]
    assert (period.status, period.attempts) == ("ok", 2)


async def test_a_good_later_run_supersedes_an_older_failed_period(db: Database) -> None:
    """An interval job: the next period's good run does the work the failed one owed; no retry is left over."""
    clock = ManualClock(MONDAY_9)
    calls = Calls(clock, failures={"expire_confirmations": 1})
    config = SchedulerConfig(expire_every_seconds=30, retry=RetryPolicy(backoff_seconds=(300.0,)))
    sched = scheduler(db, config, calls, ("expire_confirmations",), "a")
    await sched.start(loop=False)
    try:
        await _step_through(clock, sched, 600)
    finally:
        await sched.stop()
    statuses = [r.status for r in await runs(db)]
    assert statuses[0] == "superseded"
    assert len(calls.at["expire_confirmations"]) == 20  # one run per period, no retry of the first one
    assert "failed" not in statuses


async def test_a_retry_left_far_behind_is_given_up_not_run_late(db: Database) -> None:
    clock = ManualClock(MONDAY_9 - timedelta(minutes=1))
    calls = Calls(clock, failures={"weekly_report": 1})
    first = scheduler(db, CONFIG, calls, ("weekly_report",), "first")
    await first.start(loop=False)
    clock.advance(60)
    await first.run_pending()  # fails at 09:00; retry due at 09:01 ...
    await first.stop()
    clock.advance(3 * 3600)  # ... but nothing runs until 12:00, beyond the one-hour grace
    before = _gave_up("weekly_report")
    second = scheduler(db, CONFIG, calls, ("weekly_report",), "second")
    await second.start(loop=False)
    await second.run_pending()
    await second.stop()
    assert calls.at["weekly_report"] == [MONDAY_9]
    assert [(r.status, r.attempts) for r in await runs(db)] == [("gave_up", 1), ("pending", 0)]
    assert _gave_up("weekly_report") == before + 1


async def test_the_clock_heartbeat_and_frequent_jobs_log_at_debug(sqlite_db: Database) -> None:
    clock = ManualClock(MONDAY_9)
    calls = Calls(clock)
    sched = scheduler(sqlite_db, SchedulerConfig(expire_every_seconds=60), calls, ("expire_confirmations",), "a")
    with capture_logs() as logs:
        await sched.start(loop=False)
        for _ in range(5):
            clock.advance(60)
            await sched.tick()
            await sched.run_pending()
        await sched.stop()
    assert len(calls.at["expire_confirmations"]) == 5
    chatter = {"scheduler.lease_renewed", "scheduler.job_started", "scheduler.job_finished"}
    assert {e["log_level"] for e in logs if e["event"] in chatter} == {"debug"}
    assert sum(e["event"] == "scheduler.lease_renewed" for e in logs) == 6
    info = [e["event"] for e in logs if e["log_level"] == "info"]
    assert info == ["scheduler.leadership", "scheduler.started", "scheduler.leadership", "scheduler.stopped"]


@pytest.mark.parametrize("table", ["job_runs"])
async def test_the_migrated_schema_matches_the_model(db: Database, table: str) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
        return [d for d in compare_metadata(context, Base.metadata) if table in repr(d)]

    async with db.engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_a_run_whose_process_died_is_retried_once_its_run_lease_runs_out(db: Database) -> None:
    clock = ManualClock(MONDAY_9 - timedelta(minutes=1))
    config = SchedulerConfig(report_schedule="0 9 * * mon", leader_lease_seconds=30)
    calls: list[datetime] = []
    started = asyncio.Event()

    async def report() -> str:
        calls.append(clock.now())
        if len(calls) == 1:
            started.set()
            await asyncio.Event().wait()  # the first run hangs until its process dies
        return "sent"

    def replica(holder: str) -> SupportScheduler:
        jobs = job_table(config, {"weekly_report": report})
        return build_scheduler(config, LeaseStore(db, clock), db, jobs, holder_id=holder, clock=clock)

    a, b = replica("a"), replica("b")
    await a.start(loop=False)
    await b.start(loop=False)
    clock.advance(60)
    await a.tick()  # 09:00: a renews its lease (until 09:00:30) and starts the run
    burst = asyncio.create_task(a.run_pending())
    await asyncio.wait_for(started.wait(), timeout=10)
    await a.stop(release=False, grace_seconds=0)  # a dies mid-run: neither lease is handed on
    with contextlib.suppress(asyncio.CancelledError):
        await burst
    try:
        for _ in range(6):
            clock.advance(10)
            await b.tick()
            await b.run_pending()
    finally:
        await b.stop()
    assert calls == [MONDAY_9, MONDAY_9 + timedelta(seconds=40)]  # b took over once both leases ran out
    period = (await runs(db))[0]
    assert (period.status, period.attempts) == ("ok", 2)
