"""The scheduler's clock under a controlled clock (time-machine): daylight saving, misfires, two replicas."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from bot.ports import SystemClock
from bot.settings import Settings, load_settings
from bot.store.db import Database
from bot.store.leases import LeaseStore
from bot.store.tables import JobRunRow
from scheduler.jobs import JobFn, job_table
from scheduler.service import SupportScheduler, build_scheduler, sync_database_url
from tests.dbs import fresh_database_url

BERLIN = ZoneInfo("Europe/Berlin")


class Calls:
    """What the jobs did: the (simulated) time of every call, per job."""

    def __init__(self) -> None:
        self.at: dict[str, list[datetime]] = defaultdict(list)

    def job(self, name: str) -> JobFn:
        async def run() -> str:
            self.at[name].append(datetime.now(UTC))
            return f"{name} done"

        return run

    def table(self, settings: Settings, names: tuple[str, ...]) -> dict[str, Any]:
        return job_table(settings, {name: self.job(name) for name in names})


async def _scheduler(url: str, settings: Settings, calls: Calls, names: tuple[str, ...]) -> SupportScheduler:
    db = Database(url)
    await db.upgrade()
    clock = SystemClock()
    return build_scheduler(settings, LeaseStore(db, clock), db, calls.table(settings, names), clock=clock)


async def _close(*schedulers: SupportScheduler) -> None:
    for s in schedulers:
        await s.stop()
        await s._db.dispose()


async def _runs(url: str) -> list[tuple[str, str, str]]:
    db = Database(url)
    try:
        async with db.sessions() as session:
            rows = await session.execute(select(JobRunRow.job, JobRunRow.run_key, JobRunRow.status))
            return [tuple(r) for r in rows.tuples()]  # type: ignore[misc]
    finally:
        await db.dispose()


def test_sync_urls_for_the_job_store() -> None:
    assert sync_database_url("sqlite+aiosqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    assert sync_database_url("postgresql+asyncpg://u:p@h:5432/d") == "postgresql+psycopg://u:p@h:5432/d"


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
    tmp_path: Path, schedule: str, start_local: datetime, hours: int, expected_utc: list[datetime]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'dst.db'}"
    settings = load_settings(database_url=url, timezone="Europe/Berlin", report_schedule=schedule)
    calls = Calls()
    with time_machine.travel(start_local.replace(tzinfo=BERLIN), tick=False) as traveller:
        sched = await _scheduler(url, settings, calls, ("weekly_report",))
        await sched.start(renew=False)
        try:
            for _ in range(hours * 4):  # quarter-hour steps through the night of the change
                traveller.shift(timedelta(minutes=15))
                await sched.tick()
                await sched.run_pending()
        finally:
            await _close(sched)
    assert calls.at["weekly_report"] == expected_utc
    for at in calls.at["weekly_report"]:
        local = at.astimezone(BERLIN)
        assert (local.hour, local.minute) in {(9, 0), (2, 30), (3, 30)}
    runs = await _runs(url)
    assert [(job, status) for job, _, status in runs] == [("weekly_report", "ok")]


async def test_missed_run_fires_once_on_start_within_grace(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'misfire.db'}"
    settings = load_settings(database_url=url, timezone="Europe/Berlin", misfire_grace_seconds=3600)
    calls = Calls()
    start = datetime(2026, 11, 16, 8, 0, tzinfo=BERLIN)  # a Monday; the report is due at 09:00 local
    with time_machine.travel(start, tick=False) as traveller:
        first = await _scheduler(url, settings, calls, ("weekly_report",))
        await first.start(renew=False)
        await first.run_pending()
        await _close(first)  # the process goes down at 08:00 ...
        traveller.shift(timedelta(minutes=80))  # ... and comes back at 09:20, 20 minutes after the run was due
        second = await _scheduler(url, settings, calls, ("weekly_report",))
        await second.start(renew=False)
        assert second.is_leader  # the old lease was released on a clean stop
        await second.run_pending()
        for _ in range(12):  # the rest of the day: nothing more
            traveller.shift(timedelta(hours=1))
            await second.tick()
            await second.run_pending()
        next_run = second.next_run_times()["weekly_report"]
        await _close(second)
    assert calls.at["weekly_report"] == [datetime(2026, 11, 16, 8, 20, tzinfo=UTC)]  # ran once, late, on start
    assert [key for _, key, _ in await _runs(url)] == ["weekly_report:2026-11-16T09:00:00@local"]
    assert next_run == datetime(2026, 11, 23, 9, 0, tzinfo=BERLIN)


async def test_run_missed_beyond_grace_is_skipped(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'late.db'}"
    settings = load_settings(database_url=url, timezone="Europe/Berlin", misfire_grace_seconds=3600)
    calls = Calls()
    with time_machine.travel(datetime(2026, 11, 16, 8, 0, tzinfo=BERLIN), tick=False) as traveller:
        first = await _scheduler(url, settings, calls, ("weekly_report",))
        await first.start(renew=False)
        await _close(first)
        traveller.shift(timedelta(hours=4))  # back at 12:00: three hours late, beyond the one-hour grace
        second = await _scheduler(url, settings, calls, ("weekly_report",))
        await second.start(renew=False)
        await second.run_pending()
        next_run = second.next_run_times()["weekly_report"]
        await _close(second)
    assert calls.at["weekly_report"] == []
    assert await _runs(url) == []
    assert next_run == datetime(2026, 11, 23, 9, 0, tzinfo=BERLIN)


ALL_JOBS = ("outbox_flush", "mailbox_poll", "expire_confirmations", "kb_sync", "weekly_report", "knowledge_gaps")


def _busy_settings(url: str) -> Settings:
    return load_settings(
        database_url=url,
        timezone="Europe/Berlin",
        outbox_flush_seconds=5,
        imap_poll_seconds=30,
        kb_sync_schedule="* * * * *",
        report_schedule="*/5 * * * *",
        gaps_schedule="*/2 * * * *",
        leader_lease_seconds=30,
    )


@pytest.fixture
async def pg_url(tmp_path: Path) -> AsyncIterator[str]:
    async with fresh_database_url("postgres", tmp_path) as url:
        yield url


def _expected_periods(start: datetime, end: datetime) -> dict[str, list[datetime]]:
    """Every period of each job in [start, end], computed by hand (not by APScheduler)."""

    def every(seconds: int, first: datetime) -> list[datetime]:
        out, t = [], first
        while t <= end:
            out.append(t)
            t += timedelta(seconds=seconds)
        return out

    minutes = every(60, start)  # start is on a whole minute
    return {
        "outbox_flush": every(5, start + timedelta(seconds=5)),
        "mailbox_poll": every(30, start + timedelta(seconds=30)),
        "expire_confirmations": every(60, start + timedelta(seconds=60)),
        "kb_sync": minutes,
        "weekly_report": [m for m in minutes if m.minute % 5 == 0],
        "knowledge_gaps": [m for m in minutes if m.minute % 2 == 0],
    }


async def _simulate(
    url: str, seconds: int, on_second: Callable[[int, list[SupportScheduler]], Any] | None = None
) -> tuple[Calls, list[SupportScheduler], datetime, list[list[bool]]]:
    settings = _busy_settings(url)
    calls = Calls()
    start = datetime(2026, 11, 16, 10, 0, tzinfo=UTC)
    leaders: list[list[bool]] = []
    with time_machine.travel(start, tick=False) as traveller:
        a = await _scheduler(url, settings, calls, ALL_JOBS)
        b = await _scheduler(url, settings, calls, ALL_JOBS)
        await a.start(renew=False)
        await b.start(renew=False)
        alive = [a, b]
        try:
            for second in range(seconds + 1):
                if second:
                    traveller.shift(timedelta(seconds=1))
                if on_second is not None:
                    await on_second(second, alive)
                if second % 10 == 0:  # renew every ttl/3
                    for s in alive:
                        await s.tick()
                leaders.append([s.is_leader for s in alive])
                for s in alive:
                    await s.run_pending()
        finally:
            for s in alive:
                await _close(s)
    return calls, [a, b], start, leaders


async def test_two_schedulers_on_postgres_run_each_period_exactly_once(pg_url: str) -> None:
    calls, _, start, leaders = await _simulate(pg_url, 600)
    assert all(sum(flags) == 1 for flags in leaders)  # exactly one leader every simulated second
    expected = _expected_periods(start, start + timedelta(seconds=600))
    runs = await _runs(pg_url)
    for job in ALL_JOBS:
        keys = [key for name, key, status in runs if name == job and status == "ok"]
        assert len(keys) == len(set(keys)) == len(expected[job]), job
        assert calls.at[job] == expected[job], job  # ran at each period's time, once
    counts = {job: len(expected[job]) for job in ALL_JOBS}
    assert counts == {
        "outbox_flush": 120,
        "mailbox_poll": 20,
        "expire_confirmations": 10,
        "kb_sync": 11,
        "weekly_report": 3,
        "knowledge_gaps": 6,
    }


async def test_leader_that_dies_is_replaced_within_a_lease_period(pg_url: str) -> None:
    died: dict[str, Any] = {}

    async def kill_leader(second: int, alive: list[SupportScheduler]) -> None:
        if second == 300:
            leader = next(s for s in alive if s.is_leader)
            await leader.stop(release=False)  # crash: the lease is not handed on
            alive.remove(leader)
            died["at"] = datetime.now(UTC)
        elif "at" in died and "takeover" not in died and alive[0].is_leader:
            died["takeover"] = datetime.now(UTC)

    calls, _, start, _ = await _simulate(pg_url, 600, kill_leader)
    gap = died["takeover"] - died["at"]
    assert gap <= timedelta(seconds=30 + 10)  # the lease period, plus one renewal interval to notice
    expected = _expected_periods(start, start + timedelta(seconds=600))
    runs = await _runs(pg_url)
    for job in ALL_JOBS:
        keys = [key for name, key, status in runs if name == job and status == "ok"]
        assert len(keys) == len(set(keys)) == len(calls.at[job]), job  # nothing ran twice
        outside_gap = [t for t in expected[job] if not died["at"] <= t < died["takeover"]]
        assert set(outside_gap) <= set(calls.at[job]), job  # every period outside the failover ran
        # periods missed during the failover coalesce into (at most) one late run at takeover
        assert len(calls.at[job]) <= len(outside_gap) + 1, job
