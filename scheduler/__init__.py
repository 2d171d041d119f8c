"""The clock: a leader-leased asyncio loop over APScheduler's public triggers, with its plan, claims and retries in
`job_runs`, running thin jobs that call services (expire confirmations, sync the knowledge base, the weekly report
and the knowledge-gap backlog). The outbox and the mailbox have loops of their own and are not jobs here.

Wiring (in `app/serve.py` and `app/jobs.py`)::

    config = SchedulerConfig(timezone=..., report_schedule=..., ...)          # from Settings
    report = ReportConfig(timezone=..., slack_report_channel=..., ...)
    jobs = job_table(config, {"weekly_report": weekly_report_job(db, report, clock, outbox), ...})
    dispatcher.register(Channel.SLACK, slack_report_sender, kind=REPORT_KIND)  # the report leaves via the outbox
    scheduler = build_scheduler(config, leases, db, jobs, clock=clock)
    await scheduler.start(); ...; await scheduler.stop()
"""

from scheduler.config import ReportConfig, RetryPolicy, SchedulerConfig
from scheduler.jobs import JOB_NAMES, JobFn, JobSpec, job_table
from scheduler.runs import JobResult, run_job
from scheduler.service import SupportScheduler, build_scheduler

__all__ = [
    "JOB_NAMES",
    "JobFn",
    "JobResult",
    "JobSpec",
    "ReportConfig",
    "RetryPolicy",
    "SchedulerConfig",
    "SupportScheduler",
    "build_scheduler",
    "job_table",
    "run_job",
]
