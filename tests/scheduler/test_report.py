"""The weekly report against figures computed independently from a seeded eight-week history: the same figures
in the text (dry run and the email's text part), in the Slack blocks the fake Slack received, and in the email's
HTML; the headline is honest; the email goes out once."""

from __future__ import annotations

import html
import io
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from slack_sdk.web.async_client import AsyncWebClient

from app.commands import report_command
from app.jobs import report_config
from app.settings import Settings
from bot.delivery import OutboxDispatcher
from bot.messages import Channel
from bot.reports import REPORT_KIND
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.outbox import Outbox
from bot.store.report_archive import ReportArchive
from channels.slack.report import SlackReportPublisher, SlackReportSender
from escalation.backlog import HandoffLog
from scheduler.config import ReportConfig
from scheduler.mail import ReportMailSender
from scheduler.publish import build_report, deliver_report, report_key, weekly_report_job
from scheduler.quality import person_wait
from scheduler.render import CHART_CID
from scheduler.report import parse_week
from tests.conftest import ManualClock
from tests.fakes.slack_server import FakeSlack
from tests.scheduler.history import (
    DOCS,
    REPORT_WEEK,
    WEEK_STARTS,
    Expected,
    History,
    _plan,
    expected,
    median,
    nearest_rank,
    plan_history,
    seed,
)

CONFIG = ReportConfig(
    timezone="UTC", slack_report_channel="CMANAGERS", report_email_to=("boss@shop.example", "lead@shop.example")
)
SENT_AT = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _of(part: int, whole: int) -> str:
    return f"{part} of {whole} ({part / whole:.0%})" if whole else f"{part} of 0"


def _pct(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "—"


def _minutes(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.0f} min" if value < 120 else f"{value / 60:.1f} h"


def _channel_pairs(c: dict[str, int]) -> dict[str, str]:
    n = c.get("inquiries", 0)
    answers, rated = c.get("answers", 0), c.get("rated", 0)
    reviewed = sum(c.get(v, 0) for v in ("correct", "wrong", "should_abstain"))
    verdicts = (
        f"{reviewed} reviewed: {c.get('correct', 0)} correct, {c.get('wrong', 0)} wrong, "
        f"{c.get('should_abstain', 0)} should have abstained"
        if reviewed
        else "none yet"
    )
    return {
        "Answered, high confidence": _of(c.get("answered", 0), n),
        "Answered, low confidence + offer": _of(c.get("answered_offer", 0), n),
        "Abstained": _of(c.get("abstained", 0), n),
        "Handed off": _of(c.get("handoff", 0), n),
        "Errors": _of(c.get("failed", 0), n),
        "Answers with feedback": _of(rated, answers),
        "👍 / 👎 (of rated answers)": f"{c.get('up', 0)} ({_pct(c.get('up', 0), rated)}) / "
        f"{c.get('down', 0)} ({_pct(c.get('down', 0), rated)})",
        "Answered, then escalated (24 h)": _of(c.get("escalated_after", 0), answers),
        "Reviewer verdicts": verdicts,
        "Resolved without a person": _of(c.get("resolved", 0), n),
    }


def _expected_sections(history: History) -> tuple[str, dict[str, dict[str, str]]]:
    """The headline and {section title: {label: value}} the report must show, computed from the plan."""
    weeks = [expected(history, start) for start in WEEK_STARTS]
    now = weeks[-1]
    sections: dict[str, dict[str, str]] = {}
    for channel, counts in now.by_channel.items():
        title = "All channels" if channel == "all" else channel
        n = counts["inquiries"]
        sections[f"{title}: {n} inquir{'y' if n == 1 else 'ies'}"] = _channel_pairs(counts)
    sections["Time to a person"] = {
        "Hand-offs": str(now.handoffs),
        "Median / p90": f"{_minutes(nearest_rank(now.waits, 50))} / {_minutes(nearest_rank(now.waits, 90))}",
        "Over the 4 h SLA": str(now.breaches),
        "Still waiting at the end of the week": str(now.waiting),
    }

    def rate(e: Expected, key: str, of: str) -> float | None:
        whole = e.by_channel.get("all", {}).get(of, 0)
        return e.by_channel["all"].get(key, 0) / whole if whole else None

    def points(values: list[float | None], unit: str) -> str:
        def show(v: float | None) -> str:
            if v is None:
                return "—"
            return f"{v:.0%}" if unit == "rate" else _minutes(v) if unit == "min" else f"{v:.0f}"

        def delta(v: float | None) -> str:
            if v is None:
                return "—"
            return f"{v * 100:+.0f} pts" if unit == "rate" else f"{v:+.0f} min" if unit == "min" else f"{v:+.0f}"

        last, before, mid = values[-1], values[-2], median(values)
        vs_last = last - before if last is not None and before is not None else None
        vs_mid = last - mid if last is not None and mid is not None else None
        return f"{show(last)} ({delta(vs_last)} vs last week, {delta(vs_mid)} vs 8-week median {show(mid)})"

    resolved = [rate(e, "resolved", "inquiries") for e in weeks]
    sections["Trend, last 8 weeks (2026-W42 to 2026-W49)"] = {
        "Resolved without a person": points(resolved, "rate"),
        "Inquiries": points([float(e.total("inquiries")) for e in weeks], "count"),
        "👎 rate": points([rate(e, "down", "rated") for e in weeks], "rate"),
        "Answered, then escalated": points([rate(e, "escalated_after", "answers") for e in weeks], "rate"),
        "Time to a person (median)": points([nearest_rank(e.waits, 50) for e in weeks], "min"),
        "SLA breaches": points([float(e.breaches) for e in weeks], "count"),
    }
    total = now.by_channel["all"]
    r_last, r_before, r_mid = resolved[-1], resolved[-2], median(resolved)
    assert r_last is not None and r_before is not None and r_mid is not None
    headline = (
        f"Resolved without a person: {_of(total['resolved'], total['inquiries'])} of inquiries "
        f"({(r_last - r_before) * 100:+.0f} pts vs last week, {(r_last - r_mid) * 100:+.0f} pts vs 8-week median)."
    )
    return headline, sections


def _expected_fixes(history: History) -> list[str]:
    week = [p for p in history.planned if p.at >= WEEK_STARTS[-1]]
    low: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for p in week:
        if p.outcome == "answered_offer":
            key = " ".join(p.question.split()).casefold()
            low[key] += 1
            shown.setdefault(key, p.question)
    lines = []
    for key, n in sorted(low.items(), key=lambda kv: (-kv[1], kv[0]))[:5]:
        question = " ".join(shown[key].split()).replace("jane.doe@example.com", "***@example.com")
        lines.append(f"“{question}” was answered with low confidence {n} time{'s' if n != 1 else ''}")
    docs = Counter((p.doc.title, p.doc.url) for p in week if p.doc and -1 in p.votes)
    for (title, url), n in sorted(docs.items(), key=lambda kv: (-kv[1], kv[0]))[:5]:
        where = f" ({url})" if url else ""
        lines.append(f"“{title}”{where} was cited in {n} answer{'s' if n != 1 else ''} marked 👎")
    by_n = {p.n: p for p in history.planned}
    for label, members, _example in history.gaps:
        customers = len({by_n[n].requester for n in members})
        lines.append(f"“{label}”: {customers} customer{'s' if customers != 1 else ''} asked")
    return lines


def _text_sections(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    for chunk in text.split("\n\n")[1:]:
        title, *lines = chunk.splitlines()
        pairs = [re.split(r"\s{2,}", line.strip(), maxsplit=1) for line in lines if not line.startswith("  - ")]
        sections[title] = {p[0]: p[1] for p in pairs if len(p) == 2}
    return sections


def _slack_sections(blocks: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    title = ""
    for block in blocks:
        if block["type"] != "section":
            continue
        if "text" in block and block.get("fields"):
            title = block["text"]["text"].strip("*")
        for field in block.get("fields", []):
            label, value = field["text"].split("\n", 1)
            sections.setdefault(title, {})[label.strip("*")] = value
    return sections


def _html_sections(page: str) -> dict[str, dict[str, str]]:
    sections = {}
    for title, table in re.findall(r"<h3>(.*?)</h3><table[^>]*>(.*?)</table>", page):
        rows = re.findall(r"<tr><th align='left'>(.*?)</th><td>(.*?)</td></tr>", table)
        sections[html.unescape(title)] = {html.unescape(k): html.unescape(v) for k, v in rows}
    return sections


def _slack_text(blocks: list[dict[str, Any]]) -> str:
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("text"), str):
                out.append(value["text"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(blocks)
    return "\n".join(out)


class Transport:
    """The SMTP transport port, recording what it was handed."""

    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    async def deliver(self, msg: EmailMessage) -> None:
        self.sent.append(msg)


async def test_every_figure_matches_the_seeded_history_in_text_slack_and_email(sqlite_db: Database) -> None:
    history = plan_history()
    await seed(sqlite_db, history)
    rendered = await build_report(sqlite_db, CONFIG, parse_week(REPORT_WEEK, UTC))
    report = rendered.report
    assert [p.label for p in report.trend] == [f"2026-W{n}" for n in range(42, 50)]
    headline, sections = _expected_sections(history)
    assert report.total.inquiries > 15 and report.total.thumbs_down > 0 and report.total.escalated_after > 0

    # the text (dry run, email text part): every figure, and the definition under the headline
    text = rendered.text
    assert text.splitlines()[2:4] == [headline, rendered.document.definition]
    assert "without a 👎 and without a reviewer's 'wrong'" in text
    got = _text_sections(text)
    for title, pairs in sections.items():
        assert got[title] == pairs, title

    # queued in the outbox (twice: a retried job), delivered once to the fake Slack and the SMTP transport
    fake = await FakeSlack().start()
    clock = ManualClock(SENT_AT)
    outbox = Outbox(sqlite_db, clock)
    transport = Transport()
    dispatcher = OutboxDispatcher(outbox, {})
    publisher = SlackReportPublisher(AsyncWebClient(token="xoxb-test", base_url=fake.api_url))
    dispatcher.register(Channel.SLACK, SlackReportSender(publisher, outbox), kind=REPORT_KIND)
    mail_sender = ReportMailSender(transport, outbox, "Support <help@shop.example>")
    dispatcher.register(Channel.EMAIL, mail_sender, kind=REPORT_KIND)
    try:
        assert await deliver_report(rendered, CONFIG, outbox) == ["slack:CMANAGERS", "email:2"]
        assert await deliver_report(rendered, CONFIG, outbox) == ["slack:CMANAGERS", "email:2"]
        assert await dispatcher.flush_once() == 2
        assert await dispatcher.flush_once() == 0
        assert not await dispatcher.deliver_now(report_key("slack", REPORT_WEEK))
        assert not await dispatcher.deliver_now(report_key("email", REPORT_WEEK))
        [posted] = fake.messages
        assert posted.channel == "CMANAGERS"
        assert list(fake.uploads.values()) == [rendered.png]
    finally:
        await fake.stop()
    slack = _slack_sections(posted.blocks)
    for title, pairs in sections.items():
        assert slack[title] == pairs, title
    slack_text = _slack_text(posted.blocks)
    assert f"*{headline}*" in slack_text and rendered.document.definition in slack_text

    # the email: text part, HTML part with the chart inline
    [mail] = transport.sent
    assert mail["To"] == "boss@shop.example, lead@shop.example" and mail["Subject"] == rendered.document.title
    plain, page = mail.get_body(("plain",)), mail.get_body(("html",))
    assert isinstance(plain, EmailMessage) and isinstance(page, EmailMessage)
    assert plain.get_content() == text
    body = page.get_content()
    assert f"src='cid:{CHART_CID}'" in body
    [image] = [part for part in mail.walk() if part.get_content_type() == "image/png"]
    assert image["Content-ID"] == f"<{CHART_CID}>" and image.get_content() == rendered.png
    assert html.escape(headline) in body and html.escape(rendered.document.definition) in body
    email_sections = _html_sections(body)
    for title, pairs in sections.items():
        assert email_sections[title] == pairs, title

    # what to fix first: the same lines everywhere; customer words masked and escaped
    for line in _expected_fixes(history):
        assert line in text
        assert html.escape(line) in body
        assert line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in slack_text
    for medium in (text, slack_text, body):
        assert "jane.doe" not in medium
    assert "<mobile>" not in slack_text and "<mobile>" not in body

    # the chart: a real PNG of the eight weeks' small multiples
    with Image.open(io.BytesIO(rendered.png)) as png:
        assert png.format == "PNG" and png.size == (1000, 600)
    assert all(len(s.values) == 8 for s in report.series)


def _half_undone() -> History:
    """Ten confident answers in the report week: three got a 👎, two were followed by a ticket within a day."""
    rng = random.Random(7)
    history = History()
    for n in range(10):
        p = _plan(rng, n, WEEK_STARTS[-1] + timedelta(hours=5 * n), outcome="answered")
        p.doc, p.verdict, p.person_after = DOCS[0], "", None
        p.votes = (-1,) if n < 3 else (1,)
        p.escalation = "ticket" if n in (3, 4) else ""
        p.escalate_after = timedelta(hours=2)
        history.planned.append(p)
    return history


async def test_half_the_answers_undone_by_a_thumbs_down_or_an_escalation_is_not_above_half(
    sqlite_db: Database,
) -> None:
    await seed(sqlite_db, _half_undone())
    rendered = await build_report(sqlite_db, CONFIG, parse_week(REPORT_WEEK, UTC))
    total = rendered.report.total
    assert (total.answers, total.thumbs_down, total.escalated_after, total.resolved) == (10, 3, 2, 5)
    assert total.resolved_rate is not None and total.resolved_rate <= 0.5
    assert "Resolved without a person: 5 of 10 (50%) of inquiries" in rendered.text


async def test_dry_run_prints_the_report_and_writes_the_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`supportbot report --week ... --dry-run` prints what Slack and email would get, and says where the chart is."""
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    db = Database(settings.resolved_database_url)
    await db.upgrade()
    try:
        await seed(db, _half_undone())
        rendered = await build_report(db, report_config(settings), parse_week(REPORT_WEEK, UTC))
    finally:
        await db.dispose()
    assert await report_command(settings, week=REPORT_WEEK, dry_run=True, out=None) == 0
    chart = tmp_path / "reports" / f"support-report-{REPORT_WEEK}.png"
    assert capsys.readouterr().out == f"{rendered.text}\nchart written to {chart}\n"
    with Image.open(chart) as png:
        assert png.format == "PNG" and png.size == (1000, 600)


async def test_a_slack_upload_that_fails_is_retried_without_posting_the_report_twice(sqlite_db: Database) -> None:
    """The report is posted, the chart upload fails (a crash between the two would look the same to the outbox):
    the retry uploads the chart and does not post the report again."""
    rendered = await build_report(sqlite_db, CONFIG, parse_week(REPORT_WEEK, UTC))
    fake = await FakeSlack().start()
    clock = ManualClock(SENT_AT)
    outbox = Outbox(sqlite_db, clock)
    dispatcher = OutboxDispatcher(outbox, {})
    publisher = SlackReportPublisher(AsyncWebClient(token="xoxb-test", base_url=fake.api_url))
    dispatcher.register(Channel.SLACK, SlackReportSender(publisher, outbox), kind=REPORT_KIND)
    try:
        await deliver_report(rendered, ReportConfig(timezone="UTC", slack_report_channel="CMANAGERS"), outbox)
        fake.error("files.getUploadURLExternal", "internal_error")
        assert await dispatcher.flush_once() == 0
        assert len(fake.messages) == 1 and not fake.uploads
        clock.advance(3600)
        assert await dispatcher.flush_once() == 1
        assert len(fake.messages) == 1 and list(fake.uploads.values()) == [rendered.png]
    finally:
        await fake.stop()


async def test_time_to_a_person_counts_a_claim_or_the_first_agent_message_whichever_came_first(
    sqlite_db: Database, clock: ManualClock
) -> None:
    """A Claim click (the hand-off log's claimed_at) ends the wait as an agent's first message does."""
    start = clock.now()
    conversations = ConversationStore(sqlite_db, clock, Outbox(sqlite_db, clock))
    handoffs = HandoffLog(sqlite_db, clock)
    for key, claim_after, message_after in [("a", 30, None), ("b", 30, 10), ("c", None, 90), ("d", None, None)]:
        clock.current = start
        await conversations.mark_escalated(Channel.SLACK, key)
        await handoffs.requested(Channel.SLACK, key, 1, True)
        if claim_after is not None:
            clock.current = start + timedelta(minutes=claim_after)
            await handoffs.claimed(Channel.SLACK, key, "UAGENT")
        if message_after is not None:
            clock.current = start + timedelta(minutes=message_after)
            await conversations.record_human_message(Channel.SLACK, key, "UAGENT", "on it", f"m-{key}")
    wait = await person_wait(sqlite_db, start, start + timedelta(days=1), timedelta(minutes=60))
    # waits: a 30 (claim), b 10 (message before the claim), c 90 (message only, past the 60 min SLA); d still waiting
    assert (wait.handoffs, wait.waiting) == (4, 1)
    assert (wait.median_min, wait.p90_min) == (30, 90)
    assert wait.sla_breaches == 2  # c waited 90 min; d has waited a day


async def test_quiet_week_is_an_honest_report_kept_for_the_console_though_sent_nowhere(sqlite_db: Database) -> None:
    """The weekly job on a week without inquiries and no destination: an honest report, queued nowhere, and kept in
    the report archive (the console's Reports page) all the same; a week built again replaces its entry."""
    clock = ManualClock(datetime(2026, 7, 29, 9, 0, tzinfo=UTC))  # in 2026-W31: the last complete week is W30
    archive = ReportArchive(sqlite_db, clock)
    await archive.save("2026-W30", "A first build", "stale", "", b"", 1)
    await archive.save("2026-W29", "Older", "older text", "", b"", 3)
    outbox = Outbox(sqlite_db, clock)
    done = await weekly_report_job(sqlite_db, ReportConfig(timezone="Europe/Berlin"), clock, outbox)()
    assert done == "2026-W30 -> nowhere" and await outbox.stats() == (0, 0.0, 0)  # nothing configured: not queued
    [entry, older] = await archive.recent(10)
    assert entry.week == "2026-W30" and entry.has_chart and entry.inquiries == 0
    assert "No inquiries this week." in entry.text
    assert "Median / p90" in entry.text and "— / —" in entry.text
    assert (older.week, older.has_chart) == ("2026-W29", False)
    assert (await archive.chart("2026-W30")).startswith(b"\x89PNG\r\n\x1a\n")
    assert await archive.get("2026-W28") is None and await archive.chart("2026-W29") == b""
    assert [e.week for e in await archive.recent(10, before="2026-W30")] == ["2026-W29"]
