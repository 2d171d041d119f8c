"""Console pages over the real store: what each shows, keyset pagination, verdicts and their export, replay,
"try a question" (which records and sends nothing), and customer text shown inert on every page."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from app.commands import export_verdicts_command
from app.settings import Settings
from bot.confidence import ABSTAIN_THRESHOLD
from bot.store.db import Database
from bot.store.pages import PageStore
from bot.store.report_archive import ReportArchive
from bot.store.tables import AuditRow, ReviewVerdictRow, TurnRow
from console import queries
from knowledge.pasted import MAX_PAGE_BYTES, PastedPages
from tests.conftest import ManualClock
from tests.console import seed
from tests.console.conftest import REVIEWER_KEY, ConsoleRig, console_rig


async def test_customer_text_is_inert_on_every_page_that_shows_it(rig: ConsoleRig) -> None:
    now = rig.clock.now()
    conv_id, _ = await seed.conversation(
        rig.db, now, seed.HOSTILE, confidence=0.2, thumbs=-1, citation_url="javascript:alert(3)"
    )
    await seed.dead_letter(rig.db, now, seed.HOSTILE)
    await seed.ticket_and_gap(rig.db, now, seed.HOSTILE)
    await rig.login()
    pages = [
        "/console/conversations",
        f"/console/conversations/{conv_id}",
        "/console/review",
        "/console/dead-letters",
        "/console/tickets",
        "/console/gaps",
    ]
    for path in pages:
        body = await rig.page(path)
        assert "&lt;script&gt;" in body, f"{path} shows the customer's text"
        assert "<script>alert" not in body and "<img src=x" not in body, path
        assert 'href="javascript:' not in body and '<a href="javascript' not in body, path
        assert body.count("<script") == 1, path  # only the console's own, from /console/static


async def test_conversations_filter_and_page_by_keyset(rig: ConsoleRig) -> None:
    start = rig.clock.now()
    for n in range(7):
        await seed.conversation(
            rig.db,
            start + timedelta(minutes=n),
            f"question {n}",
            confidence=0.1 * n,
            channel="slack" if n % 2 else "email",
            thumbs=-1 if n == 5 else 0,
        )
    await rig.login()
    first = await rig.page("/console/conversations")  # page size 3 in these tests
    assert "question 6" in first and "question 4" in first and "question 3" not in first
    cursor = first.split("before=")[1].split('"')[0]
    second = await rig.page(f"/console/conversations?before={cursor}")
    assert "question 3" in second and "question 1" in second and "question 4" not in second
    slack = await rig.page("/console/conversations?channel=slack")
    assert "question 5" in slack and "question 4" not in slack
    assert "Older" not in slack  # three slack answers: one page
    answered = await rig.page("/console/conversations?outcome=answered")
    assert "outcome=answered&amp;before=" in answered  # the next page keeps the filters
    down = await rig.page("/console/conversations?feedback=down")
    assert "question 5" in down and "question 6" not in down
    low = await rig.page("/console/conversations?band=low")  # below the abstain threshold
    below = {n for n in range(7) if 0.1 * n < ABSTAIN_THRESHOLD}
    assert below and len(below) < 7  # the seeded confidences straddle the threshold
    assert all((f"question {n}" in low) == (n in below) for n in range(7))
    day = start.date().isoformat()
    dated = await rig.page(f"/console/conversations?since={day}&until={day}")  # read by time, paged the same way
    assert "question 6" in dated and "question 3" not in dated
    older = await rig.page(f"/console/conversations?since={day}&until={day}&before={cursor}")
    assert "question 3" in older and "question 1" in older and "question 4" not in older
    assert "question 6" not in await rig.page(f"/console/conversations?since={(start + timedelta(days=1)).date()}")


async def test_one_conversation_shows_every_turn_with_its_trace(rig: ConsoleRig) -> None:
    conv_id, turn_id = await seed.conversation(rig.db, rig.clock.now(), "How often do backups run?", thumbs=-1)
    await rig.login()
    body = await rig.page(f"/console/conversations/{conv_id}")
    for shown in (
        "How often do backups run?",
        "Backups run every hour [1].",
        "retrieve 12 ms",
        "generate 30 ms",
        "10 in / 5 out",
        "$0.0010",
        "relevance 0.80",
        "Backups run hourly.",
        "Retrieved but not cited (1)",
        "Restores take a day.",
        "relevance 0.41",
        "0 up · 1 down",
        f'id="turn-{turn_id}"',
        'href="https://help.example.com/backups"',
    ):
        assert shown in body, shown
    assert (await rig.client.get("/console/conversations/999")).status == 404


async def test_the_review_queue_puts_the_most_likely_wrong_first_and_pages_through_all(
    db: Database, clock: ManualClock
) -> None:
    """👎 first, then the lowest confidence, pages of two with no answer shown twice or skipped; on SQLite and
    PostgreSQL (the keyset compares a row value whose first part is a CASE expression)."""
    now = clock.now()
    seeded = [
        ("sure enough", 0.84, 0, "answered_offer"),
        ("fine", 0.95, 0, "answered"),  # above the threshold, no 👎: not in the queue
        ("barely", 0.21, 0, "answered_offer"),
        ("disliked", 0.97, -1, "answered"),
        ("abstained", 0.0, 0, "abstained"),
        ("unsure", 0.5, 0, "answered_offer"),
        ("also unsure", 0.5, 0, "answered_offer"),
    ]
    for offset, (question, confidence, thumbs, outcome) in enumerate(seeded):
        at = now + timedelta(seconds=offset)
        await seed.conversation(db, at, question, confidence=confidence, thumbs=thumbs, outcome=outcome)
    bands = queries.Bands(0.2, 0.85)
    seen: list[str] = []
    after = None
    for _ in range(5):
        page = await queries.review_queue(db, bands, after, 2)
        seen += [row.question for row in page.rows]
        if page.next_after is None:
            break
        after = queries.review_cursor(page.next_after)
    assert seen == ["disliked", "abstained", "barely", "unsure", "also unsure", "sure enough"]
    assert queries.review_cursor("0.5:abc") is None and queries.review_cursor("nan:1") is None
    assert queries.review_cursor("7:1") is None and queries.review_cursor("-1.0:12") == (-1.0, 12)


async def test_a_verdict_leaves_the_queue_is_audited_and_exported(rig: ConsoleRig, tmp_path: Path) -> None:
    now = rig.clock.now()
    _, low = await seed.conversation(rig.db, now, "low confidence question", confidence=0.3)
    _, disliked = await seed.conversation(rig.db, now, "disliked question", confidence=0.9, thumbs=-1)
    _, fine = await seed.conversation(rig.db, now, "fine question", confidence=0.9)
    csrf = await rig.login(name="Dana")
    queue = await rig.page("/console/review")
    assert "low confidence question" in queue and "disliked question" in queue and "fine question" not in queue
    resp = await rig.client.post(
        f"/console/review/{disliked}",
        data={
            "csrf": csrf,
            "verdict": "wrong",
            "note": "cites the wrong page",
            "expected_source": "kb/restore.md",
            "next": "https://evil.example.com/",
        },
        allow_redirects=False,
    )
    assert resp.status == 303 and resp.headers["Location"] == "/console/review"  # never off-site
    assert "disliked question" not in await rig.page("/console/review")
    bad = await rig.client.post(f"/console/review/{fine}", data={"csrf": csrf, "verdict": "maybe"})
    assert bad.status == 400
    async with rig.db.sessions() as session:
        verdict = (await session.execute(select(ReviewVerdictRow))).scalar_one()
        audits = (await session.execute(select(AuditRow.action, AuditRow.target))).tuples().all()
    assert (verdict.turn_id, verdict.verdict, verdict.expected_source) == (disliked, "wrong", "kb/restore.md")
    assert verdict.reviewer.startswith("Dana (admin:")
    assert ("verdict", f"turn:{disliked}") in audits
    out = tmp_path / "verdicts.jsonl"
    settings = Settings(_env_file=None, database_url=rig.db.url, data_dir=tmp_path)  # type: ignore[call-arg]
    assert await export_verdicts_command(settings, out) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["question"], x["expected_source"], x["verdict"]) for x in lines] == [
        ("disliked question", "kb/restore.md", "wrong")
    ]
    assert low  # still in the queue, unreviewed


async def test_overview_counts_today_and_this_week(db: Database, clock: ManualClock, tmp_path: Path) -> None:
    """On both databases: PostgreSQL computes the latency percentiles itself."""
    async with console_rig(db, clock, tmp_path / "uploads") as rig:
        await _overview_figures(rig)


async def _overview_figures(rig: ConsoleRig) -> None:
    now = rig.clock.now()
    for n, outcome in enumerate(["answered", "answered", "abstained", "handoff"]):
        await seed.conversation(rig.db, now, f"q{n}", outcome=outcome, latency_ms=100.0 * (n + 1), confidence=0.5)
    await seed.conversation(rig.db, now - timedelta(days=30), "old", outcome="answered")
    await seed.dead_letter(rig.db, now, "stuck")
    await rig.login()
    body = await rig.page("/console/")
    today = body.split('id="p1"')[1].split('id="p2"')[0]
    assert "<dd>4</dd>" in today  # inquiries today (last month's is not counted)
    assert "50 %" in today  # 2 of 4 answered without a person
    assert "200 / 400 ms" in today  # p50 / p95 by nearest rank
    assert "1 inbound, 0 replies" in today


async def test_try_a_question_answers_with_passages_and_records_nothing(rig: ConsoleRig) -> None:
    csrf = await rig.login()
    resp = await rig.client.post("/console/knowledge/try", data={"csrf": csrf, "question": "When does backup run?"})
    body = await resp.text()
    assert resp.status == 200
    assert "Backups run every hour [1]." in body and "confidence 0.90" in body and "kb/backups.md" in body
    assert rig.knowledge.asked[-1][0] == "When does backup run?"
    async with rig.db.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(TurnRow))).scalar_one() == 0
    docs = await rig.page("/console/knowledge")
    assert "backups.md" in docs and "/srv/kb/backups.md" in docs and "1, 3 chunks" in docs
    assert f"{rig.clock.now():%Y-%m-%d %H:%M}" in docs  # the last change


@pytest.mark.parametrize("everything", [False, True])
async def test_dead_letters_are_replayed_and_leave_the_list(rig: ConsoleRig, everything: bool) -> None:
    now = rig.clock.now()
    first = await seed.dead_letter(rig.db, now, "first stuck message")
    await seed.dead_letter(rig.db, now + timedelta(seconds=1), "second stuck message")
    csrf = await rig.login()
    assert "first stuck message" in await rig.page("/console/dead-letters")
    path = "/console/dead-letters/replay-all" if everything else f"/console/dead-letters/{first}/replay"
    resp = await rig.client.post(path, data={"csrf": csrf}, allow_redirects=False)
    assert resp.status == 303
    body = await rig.page("/console/dead-letters")
    assert "first stuck message" not in body
    assert ("second stuck message" in body) is not everything
    record = await rig.ledger.get(first)
    assert record is not None and record.status == "received"  # the service's recover loop answers it
    assert ("replay_all" if everything else "replay") in await rig.page("/console/audit")


async def test_overview_counts_and_lists_hand_offs_unclaimed_past_the_sla(rig: ConsoleRig) -> None:
    now = rig.clock.now()
    late_conv, _ = await seed.conversation(rig.db, now - timedelta(hours=5), "late question")
    await seed.handoff(rig.db, late_conv, now - timedelta(hours=5))  # 300 min > the 240 min SLA: late
    recent_conv, _ = await seed.conversation(rig.db, now - timedelta(hours=1), "recent question")
    await seed.handoff(rig.db, recent_conv, now - timedelta(hours=1))  # within the SLA
    claimed_conv, _ = await seed.conversation(rig.db, now - timedelta(hours=6), "claimed question")
    await seed.handoff(rig.db, claimed_conv, now - timedelta(hours=6), claimed=True)
    await rig.login()
    body = await rig.page("/console/")
    late = body.split('id="late"')[1].split('id="p1"')[0]
    assert 'Hand-offs past the SLA: <span class="error">1</span>' in late
    assert f'href="/console/conversations/{late_conv}"' in late and "5 h" in late
    assert f"/console/conversations/{recent_conv}" not in late and f"/console/conversations/{claimed_conv}" not in late


async def test_reports_list_past_weeks_and_show_one_with_its_chart(rig: ConsoleRig) -> None:
    archive = ReportArchive(rig.db, rig.clock)
    png = b"\x89PNG\r\n\x1a\n" + b"chart"
    for n in range(40, 45):  # five weeks, page size 3
        await archive.save(f"2026-W{n}", f"Support report 2026-W{n}", f"{n * 10} inquiries {seed.HOSTILE}", "", png, n)
    await rig.login(REVIEWER_KEY)  # reviewers read reports too
    first = await rig.page("/console/reports")
    assert "2026-W44" in first and "2026-W42" in first and "2026-W41" not in first
    assert "2026-W41" in await rig.page("/console/reports?before=2026-W42")
    one = await rig.page("/console/reports/2026-W43")
    assert "430 inquiries" in one and "&lt;script&gt;" in one and "<script>alert" not in one
    assert '<img src="/console/reports/2026-W43/chart.png" alt="Chart of week 2026-W43' in one
    chart = await rig.client.get("/console/reports/2026-W43/chart.png")
    assert chart.status == 200 and chart.content_type == "image/png" and await chart.read() == png
    assert "img-src 'self'" in chart.headers["Content-Security-Policy"]
    for missing in ("/console/reports/2026-W01", "/console/reports/nonsense", "/console/reports/2026-W01/chart.png"):
        assert (await rig.client.get(missing)).status == 404, missing


async def test_an_admin_pastes_or_uploads_a_page_and_it_is_kept_written_and_ingested(rig: ConsoleRig) -> None:
    csrf = await rig.login(name="Dana")
    pasted = await rig.client.post(
        "/console/knowledge/pages",
        data={"csrf": csrf, "title": "Office dogs!", "text": "The office dog is called Biscuit.", "url": ""},
    )
    body = await pasted.text()
    assert pasted.status == 200 and "Ingested office-dogs.md: 1 files: 1 added" in body
    page = rig.uploads / "office-dogs.md"
    assert page.read_text() == "---\ntitle: Office dogs!\n---\n\nThe office dog is called Biscuit.\n"
    assert rig.index.ingested == [[page.resolve()]]  # that file alone, at once

    form = aiohttp.FormData({"csrf": csrf, "title": ""})
    form.add_field("file", b"<html><title>Opening hours</title><p>8 to 18</p></html>", filename="Hours.HTM")
    uploaded = await rig.client.post("/console/knowledge/pages", data=form)
    assert uploaded.status == 200 and "Ingested hours.html" in await uploaded.text()
    assert (rig.uploads / "hours.html").read_bytes().startswith(b"<html><title>Opening hours")
    async with rig.db.sessions() as session:
        audits = (await session.execute(select(AuditRow.action, AuditRow.target, AuditRow.detail))).tuples().all()
    assert [(a, t, d["how"]) for a, t, d in audits if a == "page_ingested"] == [
        ("page_ingested", "office-dogs.md", "paste"),
        ("page_ingested", "hours.html", "upload"),
    ]

    big = aiohttp.FormData({"csrf": csrf})
    big.add_field("file", b"x" * (MAX_PAGE_BYTES + 1), filename="huge.md")
    too_big = await rig.client.post("/console/knowledge/pages", data=big)
    assert too_big.status == 400 and "larger than 512 KB" in await too_big.text()
    exe = aiohttp.FormData({"csrf": csrf})
    exe.add_field("file", b"MZ", filename="tool.exe")
    assert (await rig.client.post("/console/knowledge/pages", data=exe)).status == 400
    empty = await rig.client.post("/console/knowledge/pages", data={"csrf": csrf, "title": "No text", "text": " "})
    assert empty.status == 400 and "title and its text" in await empty.text()
    assert len(rig.index.ingested) == 2  # nothing refused reached the index


async def test_pasted_pages_are_written_again_before_a_sync_and_only_they(rig: ConsoleRig) -> None:
    """Another replica (its own DATA_DIR) or a wiped folder: the sync writes every page from the database first,
    so no sync ever sees a pasted page missing and deletes it; a stray file is removed."""
    pages = PastedPages(PageStore(rig.db, rig.clock), rig.uploads, rig.index)
    await pages.add("refunds.md", "# Refunds\n\nWithin 30 days.\n", "Dana (admin:abc)")
    other = PastedPages(PageStore(rig.db, rig.clock), rig.uploads.parent / "replica-2", rig.index)
    (rig.uploads.parent / "replica-2").mkdir()
    (rig.uploads.parent / "replica-2" / "stray.md").write_text("# Not a page\n")
    folder = await other.write_all()
    assert sorted(p.name for p in folder.iterdir()) == ["refunds.md"]
    assert (folder / "refunds.md").read_text() == "# Refunds\n\nWithin 30 days.\n"
    with pytest.raises(ValueError):
        await pages.add("../escape.md", "x", "Dana")


async def test_reviewers_cannot_add_pages(rig: ConsoleRig) -> None:
    csrf = await rig.login(REVIEWER_KEY)
    assert "Add a page" not in await rig.page("/console/knowledge")
    refused = await rig.client.post("/console/knowledge/pages", data={"csrf": csrf, "title": "t", "text": "x"})
    assert refused.status == 403 and rig.index.ingested == []
