"""Test helpers for the scheduler: jobs that record when they ran (by the test's clock), and the stored runs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from bot.ports import Clock
from bot.store.db import Database
from bot.store.leases import LeaseStore
from bot.store.tables import JobRunRow
from scheduler.config import SchedulerConfig
from scheduler.jobs import JobFn, job_table
from scheduler.service import SupportScheduler, build_scheduler


class Calls:
    """What the jobs did: the (clock) time of every call, per job; `failures[name]` makes the first n calls of a
    job raise."""

    def __init__(self, clock: Clock, failures: Mapping[str, int] | None = None) -> None:
        self.clock = clock
        self.at: dict[str, list[datetime]] = defaultdict(list)
        self.failures = dict(failures or {})

    def job(self, name: str) -> JobFn:
        async def run() -> str:
            self.at[name].append(self.clock.now())
            if len(self.at[name]) <= self.failures.get(name, 0):
                raise RuntimeError(f"{name} failed on purpose")
            return f"{name} done"

        return run


def scheduler(
    db: Database, config: SchedulerConfig, calls: Calls, names: tuple[str, ...], holder: str
) -> SupportScheduler:
    jobs = job_table(config, {name: calls.job(name) for name in names})
    return build_scheduler(config, LeaseStore(db, calls.clock), db, jobs, holder_id=holder, clock=calls.clock)


@dataclass(frozen=True)
class Run:
    job: str
    run_key: str
    status: str
    attempts: int


async def runs(db: Database) -> list[Run]:
    async with db.sessions() as session:
        rows = await session.execute(
            select(JobRunRow.job, JobRunRow.run_key, JobRunRow.status, JobRunRow.attempts).order_by(JobRunRow.id)
        )
        return [Run(*row) for row in rows.tuples()]
