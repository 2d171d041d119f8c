"""Button clicks (`block_actions`): feedback, the ticket confirmation flow, hand-off, and the agents' Claim/Resolve.

Bolt acks the click at once; `Interactions.handle()` then does the work. A `UserFacingError` from escalation
("already confirmed: ticket #123", "only the person who asked ...") is shown to the clicker as an ephemeral
message; anything else is logged with a reference id and the clicker gets an apology with that id.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot import strings as core_strings
from bot.errors import UserFacingError
from bot.messages import ActionKind, Channel, Role, parse_case
from bot.ports import Escalation
from bot.services import Services
from channels.slack import strings
from channels.slack.render import action_kind, notice_blocks, preview_blocks, ticket_link

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Click:
    """One button click, with where it happened."""

    kind: ActionKind
    value: str
    user: str
    channel: str
    message_ts: str
    thread_ts: str  # the thread the clicked message lives in (its own ts when top-level)

    @property
    def conversation_key(self) -> str:
        return f"{self.channel}:{self.thread_ts}"


def clicks(body: Mapping[str, Any]) -> list[Click]:
    """Our buttons in a block_actions payload (other apps' and unknown action ids are skipped)."""
    user = str((body.get("user") or {}).get("id", ""))
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    message_ts = str(container.get("message_ts") or message.get("ts") or "")
    thread_ts = str(message.get("thread_ts") or container.get("thread_ts") or message_ts)
    found = []
    for action in body.get("actions") or []:
        kind = action_kind(str(action.get("action_id", "")))
        if kind is not None:
            found.append(Click(kind, str(action.get("value", "")), user, channel, message_ts, thread_ts))
    return found


class Interactions:
    def __init__(self, services: Services, client: AsyncWebClient) -> None:
        self._services = services
        self._client = client

    async def handle(self, body: Mapping[str, Any]) -> None:
        """Do what each clicked button asks; never raises."""
        for click in clicks(body):
            log_ = log.bind(action=click.kind.value, channel=click.channel, message_ts=click.message_ts)
            try:
                await self._dispatch(click)
            except UserFacingError as exc:
                log_.info("slack.action_refused", reason=type(exc).__name__)
                await self._ephemeral(click, exc.message)
            except Exception:
                reference = secrets.token_hex(4)
                metrics.ERRORS.labels("slack").inc()
                log_.exception("slack.action_failed", reference=reference)
                await self._ephemeral(click, strings.APOLOGY.format(reference=reference))

    async def _dispatch(self, click: Click) -> None:
        if click.kind in (ActionKind.FEEDBACK_UP, ActionKind.FEEDBACK_DOWN):
            await self._feedback(click)
            return
        escalation = self._services.escalation
        if escalation is None:
            await self._ephemeral(click, strings.NO_ESCALATION)
            return
        handlers = {
            ActionKind.OFFER_TICKET: self._offer,
            ActionKind.CONFIRM: self._confirm,
            ActionKind.CANCEL: self._cancel,
            ActionKind.TALK_TO_PERSON: self._hand_off,
            ActionKind.CLAIM: self._claim,
            ActionKind.RESOLVE: self._resolve,
        }
        await handlers[click.kind](click, escalation)

    async def _feedback(self, click: Click) -> None:
        up = click.kind is ActionKind.FEEDBACK_UP
        await self._services.feedback.record(
            Channel.SLACK, click.conversation_key, click.value or click.message_ts, click.user, 1 if up else -1
        )
        metrics.FEEDBACK.labels(Channel.SLACK.value, "up" if up else "down").inc()
        await self._ephemeral(click, strings.THANKS_UP if up else strings.THANKS_DOWN)

    async def _offer(self, click: Click, escalation: Escalation) -> None:
        preview = await escalation.preview(click.value)
        if preview.state == "done" and preview.ticket is not None:
            await self._ephemeral(click, strings.TICKET_EXISTS.format(reference=ticket_link(preview.ticket)))
            return
        if preview.state != "pending":
            await self._ephemeral(click, strings.OFFER_GONE.format(state=preview.state))
            return
        text, blocks = preview_blocks(preview)
        await self._client.chat_postMessage(
            channel=click.channel, thread_ts=click.thread_ts, text=text, blocks=blocks, unfurl_links=False
        )

    async def _confirm(self, click: Click, escalation: Escalation) -> None:
        ticket = await escalation.confirm(click.value, click.user)
        await self._update(click, strings.TICKET_CREATED.format(reference=ticket_link(ticket)))

    async def _cancel(self, click: Click, escalation: Escalation) -> None:
        await escalation.cancel(click.value, click.user)
        await self._update(click, strings.TICKET_CANCELLED)

    async def _hand_off(self, click: Click, escalation: Escalation) -> None:
        key = click.value or click.conversation_key
        history = await self._services.conversations.history(Channel.SLACK, key, 6)
        asked = [t.text for t in history if t.role is Role.CUSTOMER]
        summary = asked[-1] if asked else ""
        await escalation.hand_off(Channel.SLACK, key, click.user, summary)
        metrics.ESCALATIONS.labels(Channel.SLACK.value).inc()
        await self._post_in_thread(click, core_strings.HANDOFF)

    async def _claim(self, click: Click, escalation: Escalation) -> None:
        channel, key = parse_case(click.value)
        await escalation.claim(channel, key, click.user)
        await self._post_in_thread(click, strings.CASE_CLAIMED.format(agent=click.user))

    async def _resolve(self, click: Click, escalation: Escalation) -> None:
        channel, key = parse_case(click.value)
        await escalation.resolve(channel, key, click.user)
        await self._post_in_thread(click, strings.CASE_RESOLVED.format(agent=click.user))

    async def _post_in_thread(self, click: Click, text: str) -> None:
        await self._client.chat_postMessage(channel=click.channel, thread_ts=click.thread_ts, text=text)

    async def _update(self, click: Click, text: str) -> None:
        fallback, blocks = notice_blocks(text)
        await self._client.chat_update(channel=click.channel, ts=click.message_ts, text=fallback, blocks=blocks)

    async def _ephemeral(self, click: Click, text: str) -> None:
        try:
            await self._client.chat_postEphemeral(
                channel=click.channel, user=click.user, text=text, thread_ts=click.thread_ts or None
            )
        except Exception:
            log.warning("slack.ephemeral_failed", channel=click.channel, exc_info=True)
