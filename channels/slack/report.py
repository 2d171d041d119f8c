"""The weekly report on Slack: the scheduler's `ReportPublisher` port over a web client.

The Slack channel posts reports through it, and `supportbot report` uses it alone (no channel, no event handling,
no knowledge engine: delivering a report needs none of them).
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from channels.slack.client import TRANSPORT_ERRORS, delivery_error
from channels.slack.escape import slack_text
from channels.slack.render import fallback, safe_blocks

log = structlog.get_logger(__name__)


class SlackReportPublisher:
    def __init__(self, client: AsyncWebClient) -> None:
        self._client = client

    async def post_report(
        self, channel: str, text: str, blocks: list[dict[str, Any]], png: bytes | None, filename: str
    ) -> None:
        """Post the weekly report (blocks) and its chart (files.getUploadURLExternal + completeUploadExternal).

        Its text holds customer words (knowledge-gap labels and examples), so every text object goes through the
        one escaping rule (`slack_text`). Raises `DeliveryError` when Slack refuses or cannot be reached, so the
        job can retry.
        """
        try:
            await self._client.chat_postMessage(
                channel=channel,
                text=fallback(slack_text(text)),
                blocks=safe_blocks(blocks) or None,
                unfurl_links=False,
            )
            if png is not None:
                await self._client.files_upload_v2(channel=channel, file=png, filename=filename, title=filename)
        except (SlackApiError, *TRANSPORT_ERRORS) as exc:
            error = delivery_error(exc)
            log.warning("slack.report_failed", channel=channel, error=str(error))
            raise error from exc
