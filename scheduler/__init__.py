"""The clock: APScheduler with a persistent job store and a leader lease, running thin jobs that call services
(flush the outbox, poll the mailbox, expire confirmations, sync the knowledge base, the weekly report and the
knowledge-gap backlog).

Wiring (in `app/serve.py` and `app/jobs.py`)::

    jobs = job_table(settings, {"outbox_flush": dispatcher.flush_once, "weekly_report": weekly_report_job(...), ...})
    scheduler = build_scheduler(settings, services.leases, services.db, jobs)
    await scheduler.start(); ...; await scheduler.stop()
"""

from scheduler.jobs import JOB_NAMES, JobFn, JobSpec, job_table
from scheduler.runs import JobResult, run_job
from scheduler.service import SupportScheduler, build_scheduler

__all__ = ["JOB_NAMES", "JobFn", "JobResult", "JobSpec", "SupportScheduler", "build_scheduler", "job_table", "run_job"]
