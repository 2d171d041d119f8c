"""The backlog digest: a seeded day's figures, checked against figures worked out by hand, and one digest per period
across two schedulers on PostgreSQL."""

from __future__ import annotations

import asyncio
import html
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app.build import escalation_config
from app.settings import Settings
from bot.messages import Channel
from bot.reports import report_parts
from bot.store.codec import reply_from_json
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.leases import LeaseStore
from bot.store.outbox import Outbox
from bot.store.tables import InboundRow, OutboxRow, PendingActionRow
from bot.strings import for_agents
from escalation.backends import InternalBackend
from escalation.backlog import backlog_figures, duration, handoff_times, render_digest
from escalation.service import EscalationService
from scheduler.backlog import BacklogConfig, backlog_digest_job
from scheduler.config import SchedulerConfig
from scheduler.jobs import job_table
from scheduler.service import build_scheduler
from tests.conftest import ManualClock
from tests.dbs import fresh_database_url
from tests.escalation.conftest import email_msg

T0 = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)  # the digest runs at 08:00
AGENT = "UAGENT1"
SLA = timedelta(hours=4)


def service(db: Database, clock: ManualClock) -> tuple[EscalationService, Outbox]:
    outbox = Outbox(db, clock)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        slack_escalation_channel="CAGENTS",
        slack_agent_users=[AGENT],
        support_address="help@shop.example",
        confirmation_ttl_minutes=600,
    )
    conversations = ConversationStore(db, clock, outbox)
    return EscalationService(
        db, clock, outbox, conversations, InternalBackend(db, clock), escalation_config(settings)
    ), outbox


async def seed_day(db: Database, clock: ManualClock) -> EscalationService:
    """Hand-offs, claims, offers and dead letters around the day before T0 (each at the time given)."""
    esc, _ = service(db, clock)

    async def at(hours_before: float) -> None:
        clock.current = T0 - timedelta(hours=hours_before)

    handoffs = {  # key: (channel, requested h before T0, claimed h before T0 or None, resolved h before or None)
        "<a@x>": (Channel.EMAIL, 30, None, None),  # waiting 30 h (asked before the day)
        "C1:1.1": (Channel.SLACK, 6, None, None),  # waiting 6 h: past the 4 h SLA
        "k:c": (Channel.API, 2, None, None),  # waiting 2 h: within the SLA
        "<d@x>": (Channel.EMAIL, 10, 9, None),  # claimed after 1 h
        "C1:2.2": (Channel.SLACK, 5, 2, 1),  # claimed after 3 h, then resolved
        "<f@x>": (Channel.EMAIL, 3, None, 1),  # resolved without a claim
    }
    events: list[tuple[float, str, str]] = []
    for key, (_channel, asked, claimed, resolved) in handoffs.items():
        events.append((asked, "ask", key))
        if claimed is not None:
            events.append((claimed, "claim", key))
        if resolved is not None:
            events.append((resolved, "resolve", key))
    for hours, what, key in sorted(events, key=lambda e: -e[0]):
        await at(hours)
        channel = handoffs[key][0]
        if what == "ask":
            await esc.hand_off(channel, key, "customer", "a person please")
            await esc.hand_off(channel, key, "customer", "a person please!!")  # asked twice: one round
        elif what == "claim":
            await esc.claim(channel, key, AGENT)
        else:
            await esc.resolve(channel, key, AGENT)

    offers = {}
    for name, hours in {"expired": 20, "expiring": 6, "fresh": 1, "failed": 2}.items():
        await at(hours)
        offers[name] = (await esc.propose_ticket(email_msg(hours, key=f"<{name}@x>"), "abstained")).token
    await at(0.5)
    assert await esc.expire_due() == 1  # the 20 h old offer lived 10 h
    async with db.transaction() as session:  # a confirmed offer whose ticket backend kept failing
        await session.execute(
            update(PendingActionRow).where(PendingActionRow.token == offers["failed"]).values(state="confirmed")
        )
        for n in range(2):
            session.add(
                InboundRow(
                    channel="email",
                    message_id=f"<dead{n}@x>",
                    conversation_key="k",
                    status="dead_letter",
                    created_at=T0,
                    updated_at=T0,
                )
            )
        session.add(
            OutboxRow(
                idempotency_key="dead-reply",
                channel="slack",
                conversation_key="C",
                payload={},
                status="dead",
                next_attempt_at=T0,
                created_at=T0,
            )
        )
    clock.current = T0
    return esc


async def test_a_seeded_days_digest_matches_the_figures_worked_out_by_hand(sqlite_db: Database) -> None:
    clock = ManualClock(T0)
    await seed_day(sqlite_db, clock)
    figures = await backlog_figures(sqlite_db, T0, SLA)

    # worked out from seed_day by hand, not by the code under test
    assert [(c.conversation_key, c.waited) for c in figures.waiting] == [
        ("<a@x>", timedelta(hours=30)),
        ("C1:1.1", timedelta(hours=6)),
        ("k:c", timedelta(hours=2)),
    ]
    assert figures.over_sla == 2 and figures.longest_wait == timedelta(hours=30)
    assert (figures.handoffs_last_day, figures.claimed_last_day) == (5, 2)  # the 30 h old one is not of the day
    assert figures.median_to_first_human == timedelta(hours=2)  # 1 h and 3 h
    assert (figures.offers_pending, figures.offers_expiring, figures.offers_expired_last_day) == (2, 1, 1)
    assert (figures.tickets_failed, figures.dead_inbound, figures.dead_replies) == (1, 2, 1)
    assert figures.waiting[0].links == (("Email thread", "<a@x>"),)

    text = render_digest(figures)
    assert "Customers waiting for a person: 3 (longest 30 h 00 min); 2 past the 4 h 00 min SLA." in text
    assert "Last 24 h: 5 hand-offs, 2 claimed; median time to first human 2 h 00 min." in text
    assert "Ticket offers: 2 awaiting a yes (1 past half their life); 1 expired in 24 h." in text
    assert "Tickets that failed to open: 1. Dead letters: 2 inbound, 1 replies." in text
    assert "- email <a@x>: 30 h 00 min (Email thread: <a@x>)" in text and "- slack C1:1.1: 6 h 00 min" in text
    assert "k:c" not in text  # within the SLA: counted, not listed

    times = await handoff_times(sqlite_db, T0 - timedelta(days=7), T0)
    assert (times.handoffs, times.claimed, times.median, times.p90) == (6, 2, timedelta(hours=2), timedelta(hours=3))
    assert duration(None) == "-" and duration(timedelta(minutes=42)) == "42 min"

    outbox = Outbox(sqlite_db, clock)
    run = backlog_digest_job(sqlite_db, clock, outbox, BacklogConfig(240, "CAGENTS", ("lead@shop.example",)))
    assert await run() == "3 waiting, 2 past the SLA -> email:1, slack:CAGENTS"
    assert await run() == "3 waiting, 2 past the SLA -> email:1, slack:CAGENTS"  # the same minute again: no new rows
    async with sqlite_db.sessions() as session:
        queued = {
            row.channel: row.payload
            for row in (
                await session.execute(select(OutboxRow).where(OutboxRow.idempotency_key.like("backlog:%")))
            ).scalars()
        }
    assert set(queued) == {"slack", "email"}
    assert queued["slack"]["text"] == text and queued["slack"]["conversation_key"] == "CAGENTS"
    mail = report_parts(reply_from_json(queued["email"]))  # what the report mail sender will send, once
    assert (mail.title, mail.text) == (for_agents.BACKLOG_SUBJECT, text)
    assert queued["email"]["recipient"] == "lead@shop.example" and html.escape(text.splitlines()[0]) in mail.html

    # an agent who answers in the thread (without pressing Claim) ends the wait too
    clock.advance(600)
    await ConversationStore(sqlite_db, clock, outbox).record_human_message(Channel.API, "k:c", "UAGENT2", "Hi", "m1")
    later = await backlog_figures(sqlite_db, clock.now(), SLA)
    assert [c.conversation_key for c in later.waiting] == ["<a@x>", "C1:1.1"]
    assert later.claimed_last_day == 3


@pytest.mark.slow  # PostgreSQL, two replicas
async def test_the_digest_fires_once_per_period_across_two_schedulers_on_postgres(tmp_path: Path) -> None:
    clock = ManualClock(datetime(2026, 11, 16, 10, 0, tzinfo=UTC))
    config = SchedulerConfig(backlog_schedule="*/2 * * * *", leader_lease_seconds=30)
    async with fresh_database_url("postgres", tmp_path) as url:
        dbs = [Database(url), Database(url)]
        await dbs[0].upgrade()
        replicas = []
        for i, db in enumerate(dbs):
            job = backlog_digest_job(db, clock, Outbox(db, clock), BacklogConfig(240, "CAGENTS"))
            jobs = job_table(config, {"backlog_digest": job})
            replicas.append(build_scheduler(config, LeaseStore(db, clock), db, jobs, holder_id=f"r{i}", clock=clock))
        try:
            for s in replicas:
                await s.start(loop=False)
            for step in range(7 * 6 + 1):  # 7 minutes in 10 s steps: periods at 10:00, :02, :04, :06
                if step:
                    clock.advance(10)
                for s in replicas:
                    await s.tick()
                await asyncio.gather(*(s.run_pending() for s in replicas))
        finally:
            for s in replicas:
                await s.stop()
        try:
            async with dbs[0].sessions() as session:
                keys = (
                    (
                        await session.execute(
                            select(OutboxRow.idempotency_key).where(OutboxRow.idempotency_key.like("backlog:%"))
                        )
                    )
                    .scalars()
                    .all()
                )
        finally:
            for db in dbs:
                await db.dispose()
    assert sorted(keys) == [f"backlog:2026-11-16T10:0{m}:CAGENTS" for m in (0, 2, 4, 6)]
