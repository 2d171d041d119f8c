"""The weekly report: a message with blocks, then the chart through files.getUploadURLExternal + upload +
files.completeUploadExternal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.errors import DeliveryError
from tests.cli import run_cli
from tests.fakes.slack_server import FakeSlack
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


@pytest.mark.long
@pytest.mark.slow  # a CLI process
async def test_the_report_command_delivers_without_a_channel_or_an_engine(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    """`supportbot report --week ...` (not a dry run) posts through the report publisher alone: no Slack channel,
    no knowledge engine opened (the embedded index may belong to a running service)."""
    env = {
        "SLACK_BOT_TOKEN": "xoxb-test-token",
        "SLACK_SIGNING_SECRET": "signing-secret-for-tests",
        "SLACK_API_URL": fake_slack.api_url,
        "SLACK_REPORT_CHANNEL": "CREPORTS",
    }
    result = await asyncio.to_thread(run_cli, "report", "--week", "2026-W46", data_dir=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "report for 2026-W46 delivered to slack:CREPORTS"
    assert [m.channel for m in fake_slack.messages] == ["CREPORTS"]
    assert len(fake_slack.uploads) == 1  # the chart
    assert not (tmp_path / "qdrant").exists()  # the command never opened the index
