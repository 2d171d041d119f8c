"""The report email as a reader sees it: its HTML rendered by a real browser (headless Chromium), with the inline
chart resolved the way a mail client resolves `cid:` (to the related image part), shows the chart."""

from __future__ import annotations

import asyncio
import base64
import subprocess
from datetime import UTC
from email.message import EmailMessage
from pathlib import Path

import pytest
from PIL import Image

from bot.delivery import OutboxDispatcher
from bot.messages import Channel
from bot.reports import REPORT_KIND
from bot.store.db import Database
from bot.store.outbox import Outbox
from scheduler.config import ReportConfig
from scheduler.mail import ReportMailSender
from scheduler.publish import build_report, deliver_report
from scheduler.report import parse_week
from tests.conftest import ManualClock
from tests.scheduler.history import REPORT_WEEK, plan_history, seed
from tests.scheduler.test_report import SENT_AT, Transport

CHART_BLUE = (21, 101, 192)  # the trend lines (#1565c0)


def _close(pixel: tuple[int, ...], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 24 for a, b in zip(pixel[:3], colour, strict=True))


@pytest.mark.slow  # a browser process
async def test_the_email_renders_in_a_browser_with_the_chart_visible(sqlite_db: Database, tmp_path: Path) -> None:
    history = plan_history(per_week=4)
    await seed(sqlite_db, history)
    config = ReportConfig(timezone="UTC", report_email_to=("boss@shop.example",))
    rendered = await build_report(sqlite_db, config, parse_week(REPORT_WEEK, UTC))
    outbox, transport = Outbox(sqlite_db, ManualClock(SENT_AT)), Transport()
    dispatcher = OutboxDispatcher(outbox, {})
    dispatcher.register(Channel.EMAIL, ReportMailSender(transport, outbox, "help@shop.example"), kind=REPORT_KIND)
    await deliver_report(rendered, config, outbox)
    assert await dispatcher.flush_once() == 1
    [mail] = transport.sent
    page = mail.get_body(("html",))
    assert isinstance(page, EmailMessage)
    body = page.get_content()
    for part in mail.walk():  # what a mail client does: cid: -> the related part's bytes
        cid = str(part.get("Content-ID", "")).strip("<>")
        if cid:
            data = base64.b64encode(part.get_content()).decode("ascii")
            body = body.replace(f"cid:{cid}", f"data:{part.get_content_type()};base64,{data}")
    assert "cid:" not in body
    (tmp_path / "report.html").write_text(body, encoding="utf-8")
    shot = tmp_path / "shot.png"
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
        f"--screenshot={shot}", "--window-size=1100,1400", (tmp_path / "report.html").as_uri(),
    ]  # fmt: skip
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, timeout=120, check=False)
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    with Image.open(shot) as image:
        pixels = list(image.convert("RGB").getdata())
    blue = sum(_close(p, CHART_BLUE) for p in pixels)
    assert blue > 500, f"the chart's lines are not on the page ({blue} blue pixels)"
