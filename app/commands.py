"""The operator commands that need more than one service: replay, report, gaps, tickets, job (see `app/cli.py`).

Each builds only what it uses, through `build_for_command`, so none opens the embedded index it does not need.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

from app.build import build_for_command
from app.jobs import app_jobs, report_config, scheduler_config
from app.settings import Settings
from bot.errors import ConfigError
from bot.store.audit import AuditLog
from bot.store.privacy import PrivacyStore
from bot.store.report_archive import ReportArchive
from bot.store.reviews import ReviewStore
from escalation.tickets import format_tickets
from scheduler.gaps import format_gaps, list_gaps
from scheduler.jobs import job_table
from scheduler.publish import archive_report, build_report, deliver_report, report_key
from scheduler.report import last_complete_week, parse_week
from scheduler.runs import run_job


async def replay_command(settings: Settings, *, ids: list[int], everything: bool) -> int:
    async with build_for_command(settings) as ctx:
        ledger, outbox = ctx.ledger(), ctx.outbox()
        if everything or ids:
            chosen = ids or [r.id for r in await ledger.dead_letters(10_000)]
            requeued = [i for i in chosen if await ledger.requeue(i)]
            replies = await outbox.requeue_dead() if everything else 0
            print(f"requeued {len(requeued)} inbound message(s) and {replies} reply(ies); the service picks them up")
            return 0
        dead = await ledger.dead_letters()
        _pending, _age, dead_replies = await outbox.stats()
    print(f"{len(dead)} inbound dead letter(s), {dead_replies} undelivered reply(ies)")
    for record in dead:
        m = record.message
        print(f"  #{record.id} {m.channel.value} {m.sender} attempts={record.attempts} {m.text[:60]!r}")
    return 0


async def report_command(settings: Settings, *, week: str | None, dry_run: bool, out: Path | None) -> int:
    tz = ZoneInfo(settings.timezone)
    async with build_for_command(settings) as ctx:
        which = parse_week(week, tz) if week else last_complete_week(ctx.clock.now(), tz)
        rendered = await build_report(ctx.db, report_config(settings), which)
        if dry_run:
            path = out or settings.data_dir / "reports" / rendered.filename
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rendered.png)
            print(rendered.text)
            print(f"chart written to {path}")
            return 0
        dispatcher = ctx.report_delivery()
        if dispatcher is None:
            raise ConfigError(
                "no way to deliver the report: set Slack and SLACK_REPORT_CHANNEL, or REPORT_EMAIL with SMTP, "
                "or use --dry-run"
            )
        await archive_report(rendered, ReportArchive(ctx.db, ctx.clock))
        queued = await deliver_report(rendered, report_config(settings), ctx.outbox())
        sent = []
        for where in queued:
            if await dispatcher.deliver_now(report_key(where.split(":")[0], which.label)):
                sent.append(where)
            else:
                print(f"{where}: the {which.label} report was sent before, or is queued for a retry; not sent now")
    print(f"report for {which.label} delivered to {', '.join(sent) or 'nobody'}")
    return 0 if sent or queued else 1


async def gaps_command(settings: Settings) -> int:
    async with build_for_command(settings) as ctx:
        gaps = await list_gaps(ctx.db)
    print(format_gaps(gaps))
    return 0


async def tickets_command(settings: Settings, *, limit: int) -> int:
    async with build_for_command(settings) as ctx:
        views = await ctx.escalation().list_tickets(limit)
    print(format_tickets(views))
    return 0


async def job_command(settings: Settings, name: str) -> int:
    async with build_for_command(settings) as ctx:
        services = await ctx.wiring()
        slack, _email = await ctx.channels()
        jobs = job_table(scheduler_config(settings), app_jobs(services, slack=slack))
        result = await run_job(services.db, services.clock, jobs, name)
    print(f"{result.job}: {result.status} {result.detail}".rstrip())
    return 0 if result.status != "failed" else 1


async def forget_command(settings: Settings, who: str) -> int:
    async with build_for_command(settings) as ctx:
        report = await PrivacyStore(ctx.db).forget(who)
    print(f"forgot {report.who}: {report.total} row(s) erased")
    for table, count in report.rows.items():
        if count:
            print(f"  {table}: {count}")
    print("not reachable from here (erase these by hand if they hold this person's data):")
    for place in report.unreachable:
        print(f"  - {place}")
    return 0


async def export_verdicts_command(settings: Settings, out: Path | None) -> int:
    """Write every review verdict as JSON lines (question, expected page, verdict, ...) to `out` or stdout: the
    labelled set the answer eval can grow from. The export is audited (it carries customer questions)."""
    count = 0
    async with build_for_command(settings) as ctx:
        handle = out.open("w", encoding="utf-8") if out else sys.stdout
        try:
            async for item in ReviewStore(ctx.db, ctx.clock).labelled():
                line = {
                    "turn_id": item.turn_id,
                    "question": item.question,
                    "expected_source": item.expected_source,
                    "verdict": item.verdict,
                    "note": item.note,
                    "answer": item.answer,
                    "cited": list(item.cited),
                    "reviewer": item.reviewer,
                    "reviewed_at": item.reviewed_at.isoformat(),
                }
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
                count += 1
        finally:
            if out:
                handle.close()
        await AuditLog(ctx.db, ctx.clock).record("cli", "export_verdicts", str(out or "stdout"), {"rows": count})
    print(f"exported {count} verdict(s){f' to {out}' if out else ''}", file=sys.stderr)
    return 0
