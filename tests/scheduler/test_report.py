"""The weekly report against figures computed independently from a seeded week (SQLite and PostgreSQL)."""

from __future__ import annotations

import io
import random
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image

from bot.store.db import Database
from bot.store.tables import ChannelEventRow, ConversationRow, FeedbackRow, GapRow, TicketRow, TurnRow
from scheduler.config import ReportConfig
from scheduler.publish import build_report, deliver_report
from scheduler.report import parse_week

BERLIN = ZoneInfo("Europe/Berlin")
W46 = (datetime(2026, 11, 9, tzinfo=BERLIN), datetime(2026, 11, 16, tzinfo=BERLIN))  # by hand, not by the code
W45 = (datetime(2026, 11, 2, tzinfo=BERLIN), datetime(2026, 11, 9, tzinfo=BERLIN))
OUTCOMES = ["answered", "answered_offer", "abstained", "handoff", "failed", "suppressed", "rejected"]


@dataclass
class Seeded:
    turns: list[dict[str, Any]]
    votes: list[tuple[int, datetime]]
    escalations: list[tuple[datetime, datetime | None]]
    tickets: list[tuple[datetime, datetime | None]]
    events: list[tuple[str, datetime]]


def _in(at: datetime, week: tuple[datetime, datetime]) -> bool:
    return week[0] <= at < week[1]


async def _seed(db: Database) -> Seeded:
    rng = random.Random(46)
    span_start = datetime(2026, 11, 1, tzinfo=UTC)
    times = [span_start + timedelta(minutes=rng.randrange(0, 16 * 24 * 60)) for _ in range(400)]
    # edges: Sunday 23:30 Berlin is inside W46; Monday 00:30 Berlin (Sunday 23:30 UTC) is not
    times += [datetime(2026, 11, 15, 23, 30, tzinfo=BERLIN), datetime(2026, 11, 16, 0, 30, tzinfo=BERLIN)]
    seeded = Seeded([], [], [], [], [])
    async with db.transaction() as session:
        now = datetime(2026, 11, 16, tzinfo=UTC)
        for i, at in enumerate(times):
            conv = ConversationRow(channel="slack", key=f"C:{i}", created_at=at, updated_at=at)
            if i % 9 == 0:
                conv.escalated_at = at
                if i % 27 != 0:
                    conv.first_human_response_at = at + timedelta(minutes=rng.randrange(1, 600))
                seeded.escalations.append((at, conv.first_human_response_at))
            session.add(conv)
            await session.flush()
            turn = {
                "channel": rng.choice(["slack", "slack", "email", "api"]),
                "outcome": rng.choice(OUTCOMES),
                "input_tokens": rng.randrange(0, 3000),
                "output_tokens": rng.randrange(0, 800),
                "cost_usd": round(rng.random() / 50, 6),
                "at": at,
            }
            seeded.turns.append(turn)
            session.add(
                TurnRow(conversation_id=conv.id, role="customer", text="q", channel=turn["channel"], created_at=at)
            )
            session.add(
                TurnRow(
                    conversation_id=conv.id,
                    role="bot",
                    message_id=f"reply-{i}",
                    text="a",
                    channel=turn["channel"],
                    outcome=turn["outcome"],
                    question="q",
                    input_tokens=turn["input_tokens"],
                    output_tokens=turn["output_tokens"],
                    cost_usd=turn["cost_usd"],
                    created_at=at,
                )
            )
            if i % 4 == 0:
                value = rng.choice([1, 1, -1])
                vote_at = at + timedelta(minutes=5)
                seeded.votes.append((value, vote_at))
                session.add(
                    FeedbackRow(
                        channel="slack",
                        conversation_key=f"C:{i}",
                        reply_ref=f"reply-{i}",
                        user="U1",
                        value=value,
                        created_at=vote_at,
                    )
                )
            if i % 11 == 0:
                resolved = at + timedelta(hours=rng.randrange(1, 100)) if i % 2 else None
                seeded.tickets.append((at, resolved))
                session.add(
                    TicketRow(
                        action_token=f"t{i}",
                        backend="internal",
                        state="resolved" if resolved else "open",
                        created_at=at,
                        updated_at=at,
                        resolved_at=resolved,
                    )
                )
            if i % 7 == 0:
                kind = rng.choice(["auto_reply", "bounce", "list", "loop", "quarantined", "throttled"])
                seeded.events.append((kind, at))
                session.add(ChannelEventRow(channel="email", kind=kind, created_at=at))
        for n, (label, count) in enumerate([("refund to a gift card", 9), ("SAML login on mobile", 5)]):
            session.add(
                GapRow(
                    label=label,
                    count=count,
                    trend="rising" if n == 0 else "new",
                    first_seen=now,
                    last_seen=now,
                    updated_at=now,
                )
            )
        session.add(
            GapRow(label="dismissed one", status="dismissed", count=50, first_seen=now, last_seen=now, updated_at=now)
        )
    return seeded


def _expected(seeded: Seeded, week: tuple[datetime, datetime]) -> dict[str, Any]:
    turns = [t for t in seeded.turns if _in(t["at"], week)]
    inquiries = [t for t in turns if t["outcome"] not in ("suppressed", "rejected")]
    answered = sum(t["outcome"] in ("answered", "answered_offer") for t in inquiries)
    waits = sorted((first - esc).total_seconds() / 60 for esc, first in seeded.escalations if _in(esc, week) and first)
    channels: dict[str, int] = {}
    for t in inquiries:
        channels[t["channel"]] = channels.get(t["channel"], 0) + 1
    return {
        "inquiries": len(inquiries),
        "by_channel": channels,
        "answered": answered,
        "abstained": sum(t["outcome"] == "abstained" for t in inquiries),
        "escalated": sum(t["outcome"] == "handoff" for t in inquiries),
        "deflection": answered / len(inquiries),
        "up": sum(v == 1 for v, at in seeded.votes if _in(at, week)),
        "down": sum(v == -1 for v, at in seeded.votes if _in(at, week)),
        "median": statistics.median_low(waits),
        "p90": waits[int(0.9 * len(waits) + 0.999999) - 1],
        "escalations": sum(_in(esc, week) for esc, _ in seeded.escalations),
        "awaiting": sum(_in(esc, week) and first is None for esc, first in seeded.escalations),
        "opened": sum(_in(at, week) for at, _ in seeded.tickets),
        "resolved": sum(r is not None and _in(r, week) for _, r in seeded.tickets),
        "hygiene": {
            k: sum(kind == k and _in(at, week) for kind, at in seeded.events)
            for k in ("auto_reply", "bounce", "list", "loop", "quarantined")
        },
        "tokens_in": sum(t["input_tokens"] for t in turns),
        "tokens_out": sum(t["output_tokens"] for t in turns),
        "cost": sum(t["cost_usd"] for t in turns),
    }


async def test_report_matches_independent_figures_and_chart_is_png(db: Database, tmp_path: Path) -> None:
    seeded = await _seed(db)
    settings = ReportConfig(timezone="Europe/Berlin", slack_report_channel="C-MANAGERS")
    rendered = await build_report(db, settings, parse_week("2026-W46", BERLIN))
    for figures, week in ((rendered.report.current, W46), (rendered.report.previous, W45)):
        want = _expected(seeded, week)
        assert figures.inquiries == want["inquiries"] > 0
        assert dict(figures.by_channel) == want["by_channel"]
        assert (figures.answered, figures.abstained, figures.escalated) == (
            want["answered"],
            want["abstained"],
            want["escalated"],
        )
        assert figures.deflection_rate == want["deflection"]
        assert (figures.thumbs_up, figures.thumbs_down) == (want["up"], want["down"])
        assert figures.first_response_median_min == want["median"]
        assert figures.first_response_p90_min == want["p90"]
        assert (figures.escalations, figures.awaiting_person) == (want["escalations"], want["awaiting"])
        assert (figures.tickets_opened, figures.tickets_resolved) == (want["opened"], want["resolved"])
        assert dict(figures.hygiene) == want["hygiene"]
        assert (figures.input_tokens, figures.output_tokens) == (want["tokens_in"], want["tokens_out"])
        assert abs(figures.cost_usd - want["cost"]) < 1e-9
    report = rendered.report
    assert [g.label for g in report.top_gaps] == ["refund to a gift card", "SAML login on mobile"]
    assert sum(d.answered + d.abstained + d.escalated for d in report.daily) == (
        report.current.answered + report.current.abstained + report.current.escalated
    )
    assert report.daily[-1].day.isoformat() == "2026-11-15"
    # the text says each figure with its change
    want = _expected(seeded, W46)
    before = _expected(seeded, W45)
    assert (
        "Inquiries" in rendered.text
        and f"{want['inquiries']} ({want['inquiries'] - before['inquiries']:+d})" in rendered.text
    )
    assert "2026-W46" in rendered.text and "refund to a gift card" in rendered.text
    # the chart is a real PNG that an image library reads
    assert rendered.png.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(rendered.png)) as image:
        image.verify()
    with Image.open(io.BytesIO(rendered.png)) as image:
        assert image.format == "PNG" and image.size == (800, 400)
    import matplotlib.image

    assert matplotlib.image.imread(io.BytesIO(rendered.png)).shape[:2] == (400, 800)

    # Block Kit: header, fields within Slack's limits, delivered with the chart through the publisher port
    class Recorder:
        def __init__(self) -> None:
            self.posts: list[tuple[str, str, list[dict[str, Any]], bytes | None, str]] = []

        async def post_report(
            self, channel: str, text: str, blocks: list[dict[str, Any]], png: bytes | None, filename: str
        ) -> None:
            self.posts.append((channel, text, blocks, png, filename))

    recorder = Recorder()
    assert await deliver_report(rendered, settings, recorder) == ["slack:C-MANAGERS"]
    channel, _, blocks, png, filename = recorder.posts[0]
    assert (channel, png, filename) == ("C-MANAGERS", rendered.png, "support-report-2026-W46.png")
    assert blocks[0]["type"] == "header"
    assert all(len(b.get("fields", [])) <= 10 for b in blocks)


async def test_quiet_week_is_an_honest_report(sqlite_db: Database) -> None:
    settings = ReportConfig(timezone="Europe/Berlin")
    rendered = await build_report(sqlite_db, settings, parse_week("2026-W30", BERLIN))
    assert rendered.report.quiet
    assert rendered.report.current.deflection_rate is None
    assert rendered.report.current.first_response_median_min is None
    assert "No inquiries this week." in rendered.text
    assert "Deflection rate" in rendered.text and "—" in rendered.text
    assert rendered.png.startswith(b"\x89PNG\r\n\x1a\n")
    assert await deliver_report(rendered, settings, None) == []  # nothing configured: nothing sent, no error
