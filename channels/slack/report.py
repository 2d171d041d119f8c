"""The weekly report and the gap backlog on Slack: the scheduler's `ReportPublisher` port over a web client, and
the outbox's sender for queued weekly reports.

The Slack channel posts the gap backlog through the publisher, and `supportbot report` uses it alone (no channel,
no event handling, no knowledge engine: delivering a report needs none of them).
"""

from __future__ import annotations

from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.messages import Reply
from bot.ports import DeliveryRefs
from bot.reports import report_parts
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
        """Post a report (blocks) and its chart (files.getUploadURLExternal + completeUploadExternal).

        Raises `DeliveryError` when Slack refuses or cannot be reached, so the job or the outbox can retry.
        """
        await self.post_message(channel, text, blocks)
        if png is not None:
            await self.upload(channel, png, filename)

    async def post_message(self, channel: str, text: str, blocks: list[dict[str, Any]]) -> str:
        """Post the message; returns its ts. Its text holds customer words (knowledge-gap labels and examples,
        questions), so every text object goes through the one escaping rule (`slack_text`)."""
        try:
            response = await self._client.chat_postMessage(
                channel=channel,
                text=fallback(slack_text(text)),
                blocks=safe_blocks(blocks) or None,
                unfurl_links=False,
            )
        except (SlackApiError, *TRANSPORT_ERRORS) as exc:
            raise self._failed(channel, exc) from exc
        return str(response.get("ts") or "")

    async def upload(self, channel: str, png: bytes, filename: str) -> None:
        try:
            await self._client.files_upload_v2(channel=channel, file=png, filename=filename, title=filename)
        except (SlackApiError, *TRANSPORT_ERRORS) as exc:
            raise self._failed(channel, exc) from exc

    @staticmethod
    def _failed(channel: str, exc: Exception) -> Exception:
        error = delivery_error(exc)
        log.warning("slack.report_failed", channel=channel, error=str(error))
        return error


class SlackReportSender:
    """The outbox's sender for queued weekly reports (`bot.reports`) on Slack (`bot.ports.ReplySender`).

    The message's ts is kept on the outbox row (`DeliveryRefs`) as soon as it is posted, so when the chart upload
    fails and the outbox retries, the retry uploads the chart without posting the report a second time.
    """

    def __init__(self, publisher: SlackReportPublisher, refs: DeliveryRefs) -> None:
        self._publisher = publisher
        self._refs = refs

    async def send(self, reply: Reply) -> str:
        parts = report_parts(reply)
        channel = reply.recipient
        ts = await self._refs.reserve_ref(reply.idempotency_key, "")  # "" unless posted by an earlier attempt
        if not ts:
            ts = await self._publisher.post_message(channel, parts.text, list(parts.blocks))
            await self._refs.reserve_ref(reply.idempotency_key, ts)
        if parts.png:
            await self._publisher.upload(channel, parts.png, parts.filename)
        return ts
