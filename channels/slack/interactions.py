"""Button clicks (`block_actions`) to core values: each click of one of our buttons becomes an `InboundMessage`
carrying an `InboundAction`. Nothing is decided here: `bot.actions.ActionService` handles the click and its
replies come back through the outbox like any answer.

A click is recorded in the inbound ledger under `slack:action:<action_ts>:<user>:<action_id>`: Slack stamps each
press with its own `action_ts`, so a redelivered payload (or the same press seen by two replicas) is one action,
while a second press of the same button is a second action (and the core answers it idempotently).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.messages import ActionKind, Channel, InboundAction, InboundMessage, frozen_map
from channels.slack.render import action_kind


@dataclass(frozen=True, slots=True)
class Click:
    """One press of one of our buttons, with where it happened."""

    kind: ActionKind
    action_id: str
    action_ts: str
    value: str
    user: str
    team: str
    channel: str
    message_ts: str
    thread_ts: str  # the thread the clicked message lives in (its own ts when top-level)

    @property
    def conversation_key(self) -> str:
        return f"{self.channel}:{self.thread_ts}"

    @property
    def message_id(self) -> str:
        return f"action:{self.action_ts}:{self.user}:{self.action_id}"

    def keys(self) -> list[str]:
        """Ledger keys: one press is one action, however often Slack delivers it."""
        return [f"slack:{self.message_id}"]

    def inbound(self, received_at: datetime, *, agents_channel: str) -> InboundMessage:
        return InboundMessage(
            channel=Channel.SLACK,
            conversation_key=self.conversation_key,
            message_id=self.message_id,
            sender=self.user,
            text="",
            received_at=received_at,
            metadata=frozen_map(
                {"channel": self.channel, "message_ts": self.message_ts, "team": self.team, "action": self.action_id}
            ),
            action=InboundAction(
                kind=self.kind,
                value=self.value,
                message_ref=self.message_ts,
                in_agents_channel=bool(agents_channel) and self.channel == agents_channel,
            ),
        )


def clicks(body: Mapping[str, Any]) -> list[Click]:
    """Our buttons in a block_actions payload (other apps' and unknown action ids are skipped)."""
    user_info = body.get("user") or {}
    user = str(user_info.get("id", ""))
    team = str((body.get("team") or {}).get("id") or user_info.get("team_id") or "")
    container = body.get("container") or {}
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
    message_ts = str(container.get("message_ts") or message.get("ts") or "")
    thread_ts = str(message.get("thread_ts") or container.get("thread_ts") or message_ts)
    found = []
    for action in body.get("actions") or []:
        action_id = str(action.get("action_id", ""))
        kind = action_kind(action_id)
        if kind is None or not user or not channel:
            continue
        action_ts = str(action.get("action_ts") or message_ts)
        found.append(
            Click(kind, action_id, action_ts, str(action.get("value", "")), user, team, channel, message_ts, thread_ts)
        )
    return found
