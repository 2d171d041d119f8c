"""Posting replies, and the "working on it" reaction that is always cleared.

`SlackSender` is the outbox's
`ReplySender` for Slack: it renders a `Reply` as blocks, posts it in the thread its conversation key names
(`"C123:1700000000.000100"`; a key without a thread part, like the agents' channel `"C_ESCALATION"`, is posted
top-level) or, when the reply says so, shows it to one person or writes it over an earlier message, and then clears
the working reaction on the asker's message. A posted reply carries its idempotency key in Slack message metadata
(`supportbot_reply`), so before a resend `delivered_ref` can find it in the thread and the outbox skips the second
post (`bot.ports.DeliveryCheck`). A failed post raises `DeliveryError` (the outbox retries) or
`PermanentDeliveryError` (dead-lettered; the reaction is cleared too, since no answer will come).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import datetime
from typing import Any

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.errors import PermanentDeliveryError
from bot.messages import Reply
from channels.slack.client import TRANSPORT_ERRORS, delivery_error, error_code
from channels.slack.render import render_reply

log = structlog.get_logger(__name__)

WORKING_EMOJI = "hourglass_flowing_sand"


class WorkingSignal:
    """A reaction on the asker's message while the bot works on it.

    Adding and clearing race (a fast answer can be posted before `reactions.add` returns), so `start()` checks
    after adding whether `clear()` came in meanwhile and removes the reaction again. Failures are logged and
    never stop an answer: the signal is a courtesy, the answer is the product.
    """

    def __init__(self, client: AsyncWebClient, emoji: str = WORKING_EMOJI) -> None:
        self._client = client
        self.emoji = emoji
        self._adding: dict[tuple[str, str], bool] = {}  # (channel, ts) -> cleared while adding
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, channel: str, ts: str) -> None:
        """Mark the message as being worked on now (synchronously, so a quick `clear()` is never missed) and add
        the reaction in the background."""
        key = (channel, ts)
        self._adding[key] = False
        task = asyncio.create_task(self._add(channel, ts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _add(self, channel: str, ts: str) -> None:
        key = (channel, ts)
        try:
            await self._client.reactions_add(channel=channel, timestamp=ts, name=self.emoji)
        except SlackApiError as exc:
            if error_code(exc) != "already_reacted":
                log.warning("slack.reaction_add_failed", channel=channel, ts=ts, error=error_code(exc))
        except TRANSPORT_ERRORS as exc:
            log.warning("slack.reaction_add_failed", channel=channel, ts=ts, error=error_code(exc))
        finally:
            cleared = self._adding.pop(key, False)
        if cleared:
            await self._remove(channel, ts)

    async def drain(self) -> None:
        """Wait for reactions being added (shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def clear(self, channel: str, ts: str) -> None:
        key = (channel, ts)
        if key in self._adding:
            self._adding[key] = True
        await self._remove(channel, ts)

    async def _remove(self, channel: str, ts: str) -> None:
        try:
            await self._client.reactions_remove(channel=channel, timestamp=ts, name=self.emoji)
        except SlackApiError as exc:
            if error_code(exc) != "no_reaction":
                log.warning("slack.reaction_remove_failed", channel=channel, ts=ts, error=error_code(exc))
        except TRANSPORT_ERRORS as exc:
            log.warning("slack.reaction_remove_failed", channel=channel, ts=ts, error=error_code(exc))


def split_key(conversation_key: str) -> tuple[str, str]:
    """("C123", "1700000000.000100") from "C123:1700000000.000100"; ("C123", "") for a bare channel."""
    channel, _, thread_ts = conversation_key.partition(":")
    return channel, thread_ts


REPLY_EVENT = "supportbot_reply"  # message metadata event type: its payload's "key" is the reply's idempotency key
PAGE_SIZE = 200  # messages per conversations.replies / .history page (Slack recommends at most 200)
MAX_PAGES = 10  # a thread or an hour of a channel longer than this is not searched further: the reply is resent
CLOCK_SKEW_SECONDS = 300.0  # our clock against Slack's, when reading a channel from the reply's decision time


def carries_key(message: Mapping[str, Any], key: str, bot_id: str) -> bool:
    """Whether a message (as conversations.replies/.history return it) is our reply with idempotency key `key`:
    written by our bot (`bot_id`, from auth.test), so another app posting the same metadata cannot suppress it."""
    if not bot_id or message.get("bot_id") != bot_id:
        return False
    metadata = message.get("metadata")
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != REPLY_EVENT:
        return False
    payload = metadata.get("event_payload")
    return isinstance(payload, Mapping) and payload.get("key") == key


class SlackSender:
    """Delivers replies to Slack (implements `bot.ports.ReplySender`): posted in the conversation's thread, or
    shown to one person (`visible_to`: `chat.postEphemeral`), or written over an earlier message of ours
    (`replaces`: `chat.update`). `link_domains` are the help-centre hosts answers may link to."""

    def __init__(
        self,
        client: AsyncWebClient,
        signal: WorkingSignal,
        own_bot_id: Callable[[], Awaitable[str]],
        link_domains: Collection[str] = (),
    ) -> None:
        self._client = client
        self._signal = signal
        self._own_bot_id = own_bot_id  # our bot's id (auth.test): only its messages count as ours on a resend
        self._link_domains = frozenset(link_domains)

    async def send(self, reply: Reply) -> str:
        try:
            ref = await self._deliver(reply)
        except (SlackApiError, *TRANSPORT_ERRORS) as exc:
            error = delivery_error(exc)
            log.warning("slack.post_failed", message_id=reply.in_reply_to, error=str(error))
            if isinstance(error, PermanentDeliveryError):
                await self._clear(reply)
            raise error from exc
        await self._clear(reply)
        return ref

    async def _deliver(self, reply: Reply) -> str:
        channel, thread_ts = split_key(reply.conversation_key)
        text, blocks = render_reply(reply, self._link_domains)
        if reply.visible_to:
            response = await self._client.chat_postEphemeral(
                channel=channel, user=reply.visible_to, thread_ts=thread_ts or None, text=text, blocks=blocks
            )
            return str(response.get("message_ts") or "")
        if reply.replaces:
            response = await self._client.chat_update(channel=channel, ts=reply.replaces, text=text, blocks=blocks)
            return str(response.get("ts") or reply.replaces)
        response = await self._client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts or None,
            text=text,
            blocks=blocks,
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": REPLY_EVENT, "event_payload": {"key": reply.idempotency_key}},
        )
        return str(response.get("ts") or "")

    async def delivered_ref(self, reply: Reply, since: datetime) -> str | None:
        """`bot.ports.DeliveryCheck`: the ts of our message carrying this reply's key in its metadata, read from
        the thread (`conversations.replies`) or, for a top-level post, the channel since `since`
        (`conversations.history`). An ephemeral message cannot be read back and an update is idempotent: None."""
        if reply.visible_to or reply.replaces:
            return None
        channel, thread_ts = split_key(reply.conversation_key)
        bot_id = await self._own_bot_id()
        try:
            if thread_ts:
                return await self._find(
                    reply.idempotency_key, bot_id, self._client.conversations_replies, channel=channel, ts=thread_ts
                )
            oldest = f"{since.timestamp() - CLOCK_SKEW_SECONDS:.6f}"
            return await self._find(
                reply.idempotency_key, bot_id, self._client.conversations_history, channel=channel, oldest=oldest
            )
        except SlackApiError as exc:
            if error_code(exc) == "thread_not_found":  # nothing in that thread, so not our reply either
                return None
            raise

    async def _find(
        self, key: str, bot_id: str, method: Callable[..., Awaitable[AsyncSlackResponse]], **args: str
    ) -> str | None:
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await method(**args, include_all_metadata=True, limit=PAGE_SIZE, cursor=cursor)
            for message in page.get("messages") or []:
                if carries_key(message, key, bot_id):
                    return str(message.get("ts") or "")
            cursor = (page.get("response_metadata") or {}).get("next_cursor") or None
            if not page.get("has_more") or not cursor:
                return None
        return None

    async def _clear(self, reply: Reply) -> None:
        channel, ts = reply.metadata.get("channel", ""), reply.metadata.get("ts", "")
        if channel and ts:
            await self._signal.clear(channel, ts)
