"""The weekly report: a message with blocks, then the chart through files.getUploadURLExternal + upload +
files.completeUploadExternal."""

from __future__ import annotations

import pytest

from bot.errors import DeliveryError
from tests.slack.conftest import SlackHarness

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2048


async def test_report_with_chart_is_posted_and_uploaded(harness: SlackHarness) -> None:
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Weekly report* 2026-W46"}}]
    await harness.channel.post_report("C0REPORTS1", "Weekly report 2026-W46", blocks, PNG, "report-2026-W46.png")
    fake = harness.fake
    assert [(m.channel, m.blocks) for m in fake.messages] == [("C0REPORTS1", blocks)]
    [url_call] = fake.calls_to("files.getUploadURLExternal")
    assert url_call.args["filename"] == "report-2026-W46.png" and int(url_call.args["length"]) == len(PNG)
    [complete] = fake.calls_to("files.completeUploadExternal")
    assert complete.args["channel_id"] == "C0REPORTS1"
    assert list(fake.uploads.values()) == [PNG]


async def test_report_failure_raises_a_delivery_error(harness: SlackHarness) -> None:
    harness.fake.error("chat.postMessage", "channel_not_found")
    with pytest.raises(DeliveryError):
        await harness.channel.post_report("C0GONE", "Weekly report", [], None, "r.png")
