"""The operator console at scale: seed 1 million turns (500,000 conversations) in PostgreSQL and time the list
pages server-side (goal: under 200 ms each).

A fresh database on the local PostgreSQL server (BENCH_POSTGRES_URL, default postgresql://postgres@127.0.0.1:5432/
test for the admin connection) is migrated to head and filled with `generate_series` in SQL: 60 days of traffic
over three channels, six outcomes, confidences spread over 0..1, 👍/👎 on 2 % of answers, verdicts on 0.2 %,
2,000 tickets, 1 % of conversations handed off, 200 dead letters. The console is served in-process (aiohttp test
server, real templates and session) and each page is fetched `REPEAT` times after one warm-up; the figure is the
request's round trip over loopback, which is the server's time plus well under a millisecond.

`python -m bench console [--quick]` (--quick: 100,000 turns). The database is dropped at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bench.harness import Report, Timer
from bot.messages import Answer
from bot.ports import SystemClock
from bot.store.db import Database
from bot.store.ledger import InboundLedger
from bot.store.outbox import Outbox
from console import ConsoleConfig, ConsolePorts, build_console_app

ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
KEY = "bench-admin-key-0123456789"
REPEAT = 15
DAYS = 60


class NoKnowledge:
    """The console's pages never ask the engine (only "try a question" does, and it is not timed here)."""

    async def answer(self, question: str, history: object = (), filters: object = None) -> Answer:
        return Answer("", (), 0.0, False, True, "none")

    async def ready(self) -> bool:
        return True


SEED = [
    """INSERT INTO conversations (id, channel, key, requester, subject, state, assignee, links, created_at,
           updated_at, escalated_at)
       SELECT g, (ARRAY['slack','email','api'])[1 + g % 3], 'bench-' || g, 'user' || (g % 5000) || '@example.com',
              'Question ' || g, CASE WHEN g % 100 = 0 THEN 'human' ELSE 'bot' END, '', '{}'::json, ts, ts,
              CASE WHEN g % 100 = 0 THEN ts END
       FROM (SELECT g, $1::timestamptz + g * $2::interval AS ts FROM generate_series(1, $3::int) g) s""",
    """INSERT INTO turns (conversation_id, role, message_id, text, channel, outcome, question, confidence, answerer,
           model, input_tokens, output_tokens, cost_usd, latency_ms, stage_ms, citations, reference_id, created_at)
       SELECT c, CASE WHEN bot THEN 'bot' ELSE 'customer' END, CASE WHEN bot THEN 'r-' || c ELSE 'm-' || c END,
              CASE WHEN bot THEN 'Backups run every hour [1].' ELSE 'How do I restore folder ' || c || '?' END,
              (ARRAY['slack','email','api'])[1 + c % 3],
              CASE WHEN bot THEN (ARRAY['answered','answered','answered','answered_offer','abstained','handoff'])
                   [1 + c % 6] ELSE '' END,
              CASE WHEN bot THEN 'How do I restore folder ' || c || '?' ELSE '' END,
              CASE WHEN bot THEN ((c::bigint * 7919) % 1000) / 1000.0 END,
              CASE WHEN bot THEN 'extractive' ELSE '' END, '', 120, 40, 0.0012,
              CASE WHEN bot THEN 150 + (c * 31) % 3000 ELSE 0 END,
              CASE WHEN bot THEN '{"retrieve": 40.0, "generate": 90.0}'::json ELSE '{}'::json END,
              CASE WHEN bot THEN '[{"index": 1, "title": "Restore", "source": "kb/restore.md", "url": "",
                   "snippet": "Open Trash and choose Restore.", "score": 0.71}]'::json ELSE '[]'::json END,
              '', $1::timestamptz + c * $2::interval + CASE WHEN bot THEN interval '1 second' ELSE interval '0' END
       FROM (SELECT (t + 1) / 2 AS c, t % 2 = 0 AS bot FROM generate_series(1, 2 * $3::int) t) s""",
    """INSERT INTO feedback (channel, conversation_key, reply_ref, "user", value, created_at)
       SELECT 'slack', 'bench-' || g, 'r-' || g, 'U1', CASE WHEN g % 100 = 0 THEN -1 ELSE 1 END,
              $1::timestamptz + g * $2::interval
       FROM generate_series(50, $3::int, 50) g""",
    """INSERT INTO review_verdicts (turn_id, verdict, note, expected_source, reviewer, created_at)
       SELECT 2 * g, (ARRAY['correct','wrong','should_abstain'])[1 + g % 3], '', '', 'bench',
              $1::timestamptz + g * $2::interval
       FROM generate_series(500, $3::int, 500) g""",
    """INSERT INTO tickets (action_token, backend, reference, url, subject, requester, channel, conversation_key,
           state, assignee, links, created_at, updated_at)
       SELECT 'tok-' || g, 'internal', 'T-' || g, '', 'Restore folder ' || g, 'user@example.com', 'email',
              'bench-' || g, (ARRAY['open','claimed','resolved'])[1 + g % 3], '', '{}'::json,
              $1::timestamptz + g * $2::interval * 250, $1::timestamptz + g * $2::interval * 250
       FROM generate_series(1, LEAST(2000, $3::int)) g""",
    """INSERT INTO inbound (channel, message_id, conversation_key, status, attempts, payload, reason, last_error,
           created_at, updated_at)
       SELECT 'email', 'dead-' || g, 'bench-' || g, 'dead_letter', 3,
              json_build_object('channel', 'email', 'conversation_key', 'bench-' || g, 'message_id', 'dead-' || g,
                                'sender', 'eve@example.com', 'text', 'stuck message ' || g,
                                'received_at', '2026-01-01T00:00:00+00:00'),
              '', 'RuntimeError', $1::timestamptz, $1::timestamptz
       FROM generate_series(1, 200) g""",
]


async def run(report: Report, quick: bool) -> None:
    conversations = 50_000 if quick else 500_000
    keep = os.environ.get("BENCH_CONSOLE_DB", "")  # a database name: seeded once, kept, reused (for tuning)
    name = keep or f"bench_console_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_URL)
    exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
    if not exists:
        await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://") + "/" + name
    db = Database(url)
    now = datetime.now(UTC)
    try:
        await db.upgrade()
        if exists:
            report.add("database reused", 1.0, "", name)
            await _time_pages(report, db, conversations, now)
            return
        start = now - timedelta(days=DAYS)
        step = timedelta(days=DAYS) / conversations
        raw = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        began = time.perf_counter()
        for statement in SEED:
            args = (start, step, conversations) if "$3" in statement else (start,)
            if "$2" in statement and "$3" not in statement:
                args = (start, step)
            await raw.execute(statement, *args)
        await raw.execute("ANALYZE")
        turns = await raw.fetchval("SELECT count(*) FROM turns")
        await raw.close()
        report.add("turns seeded", float(turns), "rows", f"{conversations} conversations")
        report.add("seeding", time.perf_counter() - began, "s", "generate_series + ANALYZE")
        await _time_pages(report, db, conversations, now)
    finally:
        await db.dispose()
        if not keep:
            admin = await asyncpg.connect(ADMIN_URL)
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


async def _time_pages(report: Report, db: Database, conversations: int, now: datetime) -> None:
    clock = SystemClock()
    ports = ConsolePorts(db, clock, InboundLedger(db, clock), Outbox(db, clock), NoKnowledge())
    root = web.Application()
    root.add_subapp("/console", build_console_app(ConsoleConfig(admin_keys=(KEY,)), ports))
    client = TestClient(TestServer(root))
    await client.start_server()
    try:
        form = await (await client.get("/console/login")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf
        await client.post("/console/login", data={"csrf": csrf.group(1), "key": KEY})
        middle = conversations  # a bot turn id halfway down the list: page ~10,000 of 20,000
        old_day = (now - timedelta(days=DAYS - 3)).date().isoformat()
        pages = {
            "conversations": "/console/conversations",
            "conversations, deep page": f"/console/conversations?before={middle}",
            "conversations, channel": "/console/conversations?channel=email",
            "conversations, outcome": "/console/conversations?outcome=abstained",
            "conversations, low band": "/console/conversations?band=low",
            "conversations, has 👎": "/console/conversations?feedback=down",
            "conversations, one old day": f"/console/conversations?since={old_day}&until={old_day}",
            "conversations, all filters": f"/console/conversations?channel=slack&outcome=answered&band=high"
            f"&feedback=any&since={old_day}",
            "review queue": "/console/review",
            "review queue, deep page": f"/console/review?before={middle}",
            "one conversation": f"/console/conversations/{conversations // 2}",
            "dead letters": "/console/dead-letters",
            "tickets and hand-offs": "/console/tickets",
            "overview (today + this week)": "/console/",
        }
        for label, path in pages.items():
            first = await client.get(path)
            assert first.status == 200, (label, first.status)
            await first.read()
            timer = Timer()
            for _ in range(REPEAT):
                with timer.measure():
                    resp = await client.get(path)
                    await resp.read()
            summary = timer.summary()
            report.add(f"{label} p50", summary["p50_ms"], "ms", path)
            report.add(f"{label} p95", summary["p95_ms"], "ms", f"n={REPEAT}")
    finally:
        await client.close()
