"""The scheduler's clock under a manual clock: daylight saving, misfires, two replicas, and the real loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event

from bot.errors import ConfigError
from bot.ports import SystemClock
from bot.store.db import Database
from bot.store.leases import LeaseStore
from scheduler.config import RetryPolicy, SchedulerConfig
from scheduler.jobs import JOB_NAMES, job_table
from scheduler.service import SupportScheduler, build_scheduler
from tests.conftest import ManualClock
from tests.dbs import fresh_database_url
from tests.scheduler.support import Calls, runs, scheduler

pytestmark = pytest.mark.slow  # real servers, subprocesses or long scenarios: not in the fast tier

BERLIN = ZoneInfo("Europe/Berlin")


def test_the_job_table_has_no_job_that_duplicates_a_loop() -> None:
    assert set(JOB_NAMES) == {
        "expire_confirmations",
        "kb_sync",
        "weekly_report",
        "knowledge_gaps",
        "retention",
        "backlog_digest",
    }

    async def nothing() -> None:
        return None

    for owned_elsewhere in ("outbox_flush", "mailbox_poll"):
        with pytest.raises(ConfigError, match=owned_elsewhere):
            job_table(SchedulerConfig(), {owned_elsewhere: nothing})


def test_bad_config_is_one_line() -> None:
    with pytest.raises(ConfigError, match="TIMEZONE"):
        SchedulerConfig(timezone="Mars/Olympus")

    async def nothing() -> None:
        return None

    with pytest.raises(ConfigError, match="bad cron schedule"):
        job_table(SchedulerConfig(report_schedule="every monday"), {"weekly_report": nothing})


@pytest.mark.parametrize(
    ("schedule", "start_local", "hours", "expected_utc"),
    [
        # autumn: clocks go back on Sunday 2026-10-25 03:00 CEST -> 02:00 CET; Monday 09:00 local is 08:00 UTC
        ("0 9 * * mon", datetime(2026, 10, 25, 0, 0), 34, [datetime(2026, 10, 26, 8, 0, tzinfo=UTC)]),
        # spring: clocks go forward on Sunday 2027-03-28 02:00 CET -> 03:00 CEST; Monday 09:00 local is 07:00 UTC
        ("0 9 * * mon", datetime(2027, 3, 28, 0, 0), 34, [datetime(2027, 3, 29, 7, 0, tzinfo=UTC)]),
        # a job inside the repeated hour: 02:30 happens twice that night, the job runs once (the first)
        ("30 2 * * sun", datetime(2026, 10, 24, 23, 0), 6, [datetime(2026, 10, 25, 0, 30, tzinfo=UTC)]),
        # a job inside the skipped hour: 02:30 does not exist; it runs once, at 03:30 CEST
        ("30 2 * * sun", datetime(2027, 3, 27, 23, 0), 6, [datetime(2027, 3, 28, 1, 30, tzinfo=UTC)]),
    ],
)
async def test_weekly_job_fires_once_at_local_time_across_dst(
    sqlite_db: Database, schedule: str, start_local: datetime, hours: int, expected_utc: list[datetime]
) -> None:
    config = SchedulerConfig(timezone="Europe/Berlin", report_schedule=schedule)
    clock = ManualClock(start_local.replace(tzinfo=BERLIN).astimezone(UTC))
    calls = Calls(clock)
    sched = scheduler(sqlite_db, config, calls, ("weekly_report",), "a")
    await sched.start(loop=False)
    try:
        for _ in range(hours * 4):  # quarter-hour steps through the night of the change
            clock.advance(15 * 60)
            await sched.tick()
            await sched.run_pending()
    finally:
        await sched.stop()
    assert calls.at["weekly_report"] == expected_utc
    for at in calls.at["weekly_report"]:
        local = at.astimezone(BERLIN)
        assert (local.hour, local.minute) in {(9, 0), (2, 30), (3, 30)}
    done = [(r.job, r.status) for r in await runs(sqlite_db) if r.status != "pending"]
    assert done == [("weekly_report", "ok")]


async def test_missed_run_fires_once_on_start_within_grace(sqlite_db: Database) -> None:
    config = SchedulerConfig(timezone="Europe/Berlin", misfire_grace_seconds=3600)
    clock = ManualClock(datetime(2026, 11, 16, 8, 0, tzinfo=BERLIN).astimezone(UTC))  # a Monday; report at 09:00
    calls = Calls(clock)
    first = scheduler(sqlite_db, config, calls, ("weekly_report",), "first")
    await first.start(loop=False)
    await first.run_pending()
    await first.stop()  # the process goes down at 08:00 ...
    clock.advance(80 * 60)  # ... and comes back at 09:20, 20 minutes after the run was due
    second = scheduler(sqlite_db, config, calls, ("weekly_report",), "second")
    await second.start(loop=False)
    assert second.is_leader  # the old lease was released on a clean stop
    await second.run_pending()
    for _ in range(12):  # the rest of the day: nothing more
        clock.advance(3600)
        await second.tick()
        await second.run_pending()
    next_run = second.next_run_times()["weekly_report"]
    await second.stop()
    assert calls.at["weekly_report"] == [datetime(2026, 11, 16, 8, 20, tzinfo=UTC)]  # ran once, late, on start
    assert [(r.run_key, r.status) for r in await runs(sqlite_db)] == [
        ("weekly_report:2026-11-16T09:00:00@local", "ok"),
        ("weekly_report:2026-11-23T09:00:00@local", "pending"),
    ]
    assert next_run == datetime(2026, 11, 23, 9, 0, tzinfo=BERLIN)


async def test_run_missed_beyond_grace_is_recorded_and_skipped(sqlite_db: Database) -> None:
    config = SchedulerConfig(timezone="Europe/Berlin", misfire_grace_seconds=3600)
    clock = ManualClock(datetime(2026, 11, 16, 8, 0, tzinfo=BERLIN).astimezone(UTC))
    calls = Calls(clock)
    first = scheduler(sqlite_db, config, calls, ("weekly_report",), "first")
    await first.start(loop=False)
    await first.run_pending()
    await first.stop()
    clock.advance(4 * 3600)  # back at 12:00: three hours late, beyond the one-hour grace
    second = scheduler(sqlite_db, config, calls, ("weekly_report",), "second")
    await second.start(loop=False)
    await second.run_pending()
    next_run = second.next_run_times()["weekly_report"]
    await second.stop()
    assert calls.at["weekly_report"] == []
    assert [(r.run_key, r.status) for r in await runs(sqlite_db)] == [
        ("weekly_report:2026-11-16T09:00:00@local", "missed"),
        ("weekly_report:2026-11-23T09:00:00@local", "pending"),
    ]
    assert next_run == datetime(2026, 11, 23, 9, 0, tzinfo=BERLIN)


async def test_a_long_outage_runs_only_the_latest_missed_period(sqlite_db: Database) -> None:
    """Hourly job, every process down for a day: the periods missed beyond the grace are skipped, the one
    inside it runs once, late."""
    config = SchedulerConfig(gaps_schedule="0 * * * *", misfire_grace_seconds=1800)
    clock = ManualClock(datetime(2026, 11, 16, 9, 0, tzinfo=UTC))
    calls = Calls(clock)
    first = scheduler(sqlite_db, config, calls, ("knowledge_gaps",), "first")
    await first.start(loop=False)
    await first.run_pending()  # 09:00 runs
    clock.advance(3600)
    await first.tick()
    await first.run_pending()  # 10:00 runs
    await first.stop()
    clock.advance(24 * 3600 + 600)  # back the next day at 10:10
    second = scheduler(sqlite_db, config, calls, ("knowledge_gaps",), "second")
    await second.start(loop=False)
    await second.run_pending()
    await second.stop()
    start = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    late = datetime(2026, 11, 17, 10, 10, tzinfo=UTC)
    assert calls.at["knowledge_gaps"] == [start, start + timedelta(hours=1), late]
    assert [(r.run_key.removeprefix("knowledge_gaps:"), r.status) for r in await runs(sqlite_db)] == [
        ("2026-11-16T09:00:00+00:00", "ok"),
        ("2026-11-16T10:00:00+00:00", "ok"),
        ("2026-11-16T11:00:00+00:00", "missed"),  # planned before the outage, found a day late
        ("2026-11-17T10:00:00+00:00", "ok"),  # the one period inside the grace, run once at 10:10
        ("2026-11-17T11:00:00+00:00", "pending"),
    ]


async def test_a_changed_schedule_replans_the_next_period(sqlite_db: Database) -> None:
    clock = ManualClock(datetime(2026, 11, 16, 6, 0, tzinfo=UTC))
    calls = Calls(clock)
    old = scheduler(sqlite_db, SchedulerConfig(gaps_schedule="0 8 * * *"), calls, ("knowledge_gaps",), "old")
    await old.start(loop=False)
    await old.run_pending()
    await old.stop()
    new = scheduler(sqlite_db, SchedulerConfig(gaps_schedule="0 7 * * *"), calls, ("knowledge_gaps",), "new")
    await new.start(loop=False)
    await new.run_pending()
    assert new.next_run_times() == {"knowledge_gaps": datetime(2026, 11, 16, 7, 0, tzinfo=UTC)}
    clock.advance(3600)
    await new.tick()
    await new.run_pending()
    await new.stop()
    assert calls.at["knowledge_gaps"] == [datetime(2026, 11, 16, 7, 0, tzinfo=UTC)]
    assert [(r.run_key, r.status) for r in await runs(sqlite_db)] == [
        ("knowledge_gaps:2026-11-16T07:00:00@local", "ok"),
        ("knowledge_gaps:2026-11-17T07:00:00@local", "pending"),
    ]


ALL_JOBS = ("expire_confirmations", "kb_sync", "weekly_report", "knowledge_gaps")
BUSY = SchedulerConfig(
    timezone="Europe/Berlin",
    kb_sync_schedule="* * * * *",
    report_schedule="*/5 * * * *",
    gaps_schedule="*/2 * * * *",
    leader_lease_seconds=30,
    retry=RetryPolicy(max_attempts=3, backoff_seconds=(20.0,)),
)


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database_url("postgres", tmp_path) as url:
        db = Database(url)
        await db.upgrade()
        await db.dispose()
        yield url


def _expected_periods(start: datetime, end: datetime) -> dict[str, list[datetime]]:
    """Every period of each job in [start, end], computed by hand (not by APScheduler)."""
    minutes = [start + timedelta(minutes=m) for m in range(int((end - start).total_seconds() // 60) + 1)]
    return {
        "expire_confirmations": minutes[1:],  # an interval job: first one interval after start
        "kb_sync": minutes,
        "weekly_report": [m for m in minutes if m.minute % 5 == 0],
        "knowledge_gaps": [m for m in minutes if m.minute % 2 == 0],
    }


OnSecond = Callable[[int, list[SupportScheduler]], Awaitable[None]]


async def _simulate(
    url: str, seconds: int, clock: ManualClock, calls: Calls, on_second: OnSecond | None = None
) -> tuple[list[list[bool]], list[Database]]:
    """Two replicas, each with its own connection pool, driven second by second; renewal every ttl/3."""
    dbs = [Database(url), Database(url)]
    alive = [scheduler(db, BUSY, calls, ALL_JOBS, f"replica-{i}") for i, db in enumerate(dbs)]
    leaders: list[list[bool]] = []
    for s in alive:
        await s.start(loop=False)
    try:
        for second in range(seconds + 1):
            if second:
                clock.advance(1)
            if on_second is not None:
                await on_second(second, alive)
            if second % 10 == 0:
                for s in alive:
                    await s.tick()
            leaders.append([s.is_leader for s in alive])
            await asyncio.gather(*(s.run_pending() for s in alive))  # both replicas at once
    finally:
        for s in alive:
            await s.stop()
    return leaders, dbs


@pytest.mark.long
async def test_two_schedulers_on_postgres_run_each_period_exactly_once(pg_url: str) -> None:
    clock = ManualClock(datetime(2026, 11, 16, 10, 0, tzinfo=UTC))
    calls = Calls(clock, failures={"weekly_report": 1})  # the first report fails and is retried 20 s later
    leaders, dbs = await _simulate(pg_url, 600, clock, calls)
    try:
        stored = await runs(dbs[0])
    finally:
        for db in dbs:
            await db.dispose()
    assert all(sum(flags) == 1 for flags in leaders)  # exactly one leader every simulated second
    start = clock.current - timedelta(seconds=600)
    expected = _expected_periods(start, clock.current)
    for job in ALL_JOBS:
        done = [r for r in stored if r.job == job and r.status == "ok"]
        assert len({r.run_key for r in done}) == len(done) == len(expected[job]), job
    assert {job: len(expected[job]) for job in ALL_JOBS} == {
        "expire_confirmations": 10,
        "kb_sync": 11,
        "weekly_report": 3,
        "knowledge_gaps": 6,
    }
    for job in ("expire_confirmations", "kb_sync", "knowledge_gaps"):
        assert calls.at[job] == expected[job], job  # each period ran at its time, once
    # the report: its first period failed, was retried once after the backoff, and ran 4 times for 3 periods
    assert calls.at["weekly_report"] == [start, start + timedelta(seconds=20), *expected["weekly_report"][1:]]
    first = next(r for r in stored if r.job == "weekly_report")
    assert (first.status, first.attempts) == ("ok", 2)


async def test_leader_that_dies_is_replaced_within_a_lease_period(pg_url: str) -> None:
    clock = ManualClock(datetime(2026, 11, 16, 10, 0, tzinfo=UTC))
    calls = Calls(clock)
    died: dict[str, Any] = {}

    async def kill_leader(second: int, alive: list[SupportScheduler]) -> None:
        if second == 300:
            leader = next(s for s in alive if s.is_leader)
            await leader.stop(release=False)  # crash: the lease is not handed on
            alive.remove(leader)
            died["at"] = clock.now()
        elif "at" in died and "takeover" not in died and alive[0].is_leader:
            died["takeover"] = clock.now()

    _, dbs = await _simulate(pg_url, 600, clock, calls, kill_leader)
    try:
        stored = await runs(dbs[0])
    finally:
        for db in dbs:
            await db.dispose()
    gap = died["takeover"] - died["at"]
    assert gap <= timedelta(seconds=30 + 10)  # the lease period, plus one renewal interval to notice
    start = clock.current - timedelta(seconds=600)
    expected = _expected_periods(start, clock.current)
    for job in ALL_JOBS:
        keys = [r.run_key for r in stored if r.job == job and r.status == "ok"]
        assert len(keys) == len(set(keys)) == len(calls.at[job]), job  # nothing ran twice
        outside_gap = [t for t in expected[job] if not died["at"] <= t < died["takeover"]]
        assert set(outside_gap) <= set(calls.at[job]), job  # every period outside the failover ran
        # periods missed during the failover coalesce into (at most) one late run at takeover
        assert len(calls.at[job]) <= len(outside_gap) + 1, job


async def test_the_running_loop_fires_and_retries_on_its_own(sqlite_db: Database) -> None:
    """The real loop, on the real clock: an interval job runs repeatedly; its first run fails and is retried
    after the (short) backoff. Waits on a condition, never a fixed sleep."""
    config = SchedulerConfig(expire_every_seconds=0.2, retry=RetryPolicy(max_attempts=3, backoff_seconds=(0.1,)))
    clock = SystemClock()
    calls = Calls(clock, failures={"expire_confirmations": 1})
    enough = asyncio.Event()
    record = calls.job("expire_confirmations")

    async def job() -> object:
        try:
            return await record()
        finally:
            if len(calls.at["expire_confirmations"]) >= 4:
                enough.set()

    jobs = job_table(config, {"expire_confirmations": job})
    sched = build_scheduler(config, LeaseStore(sqlite_db, clock), sqlite_db, jobs, holder_id="loop", clock=clock)
    await sched.start()
    try:
        await asyncio.wait_for(enough.wait(), timeout=20)
    finally:
        await sched.stop()
    stored = [r for r in await runs(sqlite_db) if r.status not in ("pending",)]
    assert stored[0].status == "ok" and stored[0].attempts == 2  # failed once, then the retry succeeded
    assert all(r.status == "ok" for r in stored)


async def test_kb_sync_runs_once_when_a_process_starts_leading_then_on_its_schedule(sqlite_db: Database) -> None:
    clock = ManualClock(datetime(2026, 11, 16, 10, 7, tzinfo=UTC))
    calls = Calls(clock)
    leader = scheduler(sqlite_db, SchedulerConfig(), calls, ("kb_sync",), "leader")
    standby = scheduler(sqlite_db, SchedulerConfig(), calls, ("kb_sync",), "standby")
    await leader.start(loop=False)
    await standby.start(loop=False)
    try:
        for _ in range(30):
            await leader.run_pending()
            await standby.run_pending()
            clock.advance(60)
            await leader.tick()
            await standby.tick()
    finally:
        await leader.stop()
        await standby.stop()
    start = datetime(2026, 11, 16, 10, 7, tzinfo=UTC)
    assert calls.at["kb_sync"] == [start, datetime(2026, 11, 16, 10, 30, tzinfo=UTC)]  # at once, then every 30 min


async def test_a_period_due_behind_a_long_run_does_not_make_the_loop_spin(sqlite_db: Database) -> None:
    """The first run of an every-50-ms job lasts three lease renewals (500 ms apart); periods fall due behind
    it. Meanwhile the loop wakes for renewals, not in a tight loop on the due period: few job_runs queries."""
    config = SchedulerConfig(expire_every_seconds=0.05, leader_lease_seconds=1.5)
    clock = SystemClock()
    release = asyncio.Event()
    renewals = 0
    job_run_queries = 0

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal renewals, job_run_queries
        if statement.startswith("UPDATE leases"):
            renewals += 1
            if renewals >= 4:
                release.set()
        elif "job_runs" in statement and not release.is_set():
            job_run_queries += 1

    async def long_job() -> str:
        await release.wait()
        return "done"

    event.listen(sqlite_db.engine.sync_engine, "before_cursor_execute", count)
    jobs = job_table(config, {"expire_confirmations": long_job})
    sched = build_scheduler(config, LeaseStore(sqlite_db, clock), sqlite_db, jobs, holder_id="spin", clock=clock)
    await sched.start()
    try:
        await asyncio.wait_for(release.wait(), timeout=20)
    finally:
        await sched.stop()
    assert job_run_queries < 60, job_run_queries  # a spinning loop makes hundreds in the same 1.5 s


async def test_kb_sync_runs_on_start_even_after_its_planned_period_went_stale(sqlite_db: Database) -> None:
    """A daily sync planned for 03:00, every process down until 09:00: the stale period is recorded as missed
    and the sync still runs at start, not only at 03:00 tomorrow."""
    config = SchedulerConfig(kb_sync_schedule="0 3 * * *")
    clock = ManualClock(datetime(2026, 11, 16, 2, 0, tzinfo=UTC))
    calls = Calls(clock)
    first = scheduler(sqlite_db, config, calls, ("kb_sync",), "first")
    await first.start(loop=False)
    await first.run_pending()  # the start run at 02:00
    await first.stop()
    clock.advance(7 * 3600)
    second = scheduler(sqlite_db, config, calls, ("kb_sync",), "second")
    await second.start(loop=False)
    await second.run_pending()
    await second.stop()
    assert calls.at["kb_sync"] == [datetime(2026, 11, 16, 2, 0, tzinfo=UTC), datetime(2026, 11, 16, 9, 0, tzinfo=UTC)]
    assert [r.status for r in await runs(sqlite_db)] == ["ok", "missed", "ok", "pending"]
