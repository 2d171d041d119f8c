"""From a raw Slack event to a decision: answer it, note that a person spoke, or ignore it (and why).

Two pure steps, so each rule is testable without a server:
- `parse()` reads the event (the dispatch table: `app_mention` and `message` with an answerable subtype become a
  `SlackMessage`; edits, deletions, joins, hidden and unknown events become `Ignored`);
- `decide()` applies the per-channel rules from settings, given the stored conversation of the thread (if any):
  DMs always; mentions; every top-level message in "top-level" channels; follow-ups in a thread the bot is part
  of unless the channel wants mentions for those; an agent (SLACK_AGENT_USERS, nobody when empty) other than the
  asker writing in the thread is a human on the case, and the bot stays quiet.
"""

from __future__ import annotations

import enum
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bot.messages import Channel, InboundMessage, frozen_map
from bot.ports import ThreadView
from channels.slack.config import SlackConfig

# Message subtypes that carry something a person wrote; every other subtype (message_changed,
# message_deleted, channel_join, channel_leave, ...) is ignored.
ANSWERABLE_SUBTYPES = frozenset({"", "thread_broadcast", "file_share", "bot_message"})


class Verdict(enum.StrEnum):
    ANSWER = "answer"  # hand to the inquiry pipeline
    HUMAN = "human"  # a person (agent) wrote in the bot's thread: record it, the bot stays quiet
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A message event a person (or an allowed bot) wrote, normalised."""

    event_id: str
    team: str
    channel: str
    channel_type: str
    sender: str  # user id (bot id for bot messages without a user)
    text: str  # as a person reads it (`readable_text`): links by label, mentions out, &amp; &lt; &gt; unescaped
    ts: str
    thread_ts: str  # "" for a top-level message
    mentioned: bool
    bot_id: str = ""  # set when a bot wrote it

    @property
    def is_dm(self) -> bool:
        return self.channel_type == "im" or self.channel.startswith("D")

    @property
    def is_thread_reply(self) -> bool:
        return bool(self.thread_ts) and self.thread_ts != self.ts

    @property
    def root_ts(self) -> str:
        return self.thread_ts or self.ts

    @property
    def conversation_key(self) -> str:
        return f"{self.channel}:{self.root_ts}"

    @property
    def message_id(self) -> str:
        return f"{self.channel}:{self.ts}"

    def keys(self) -> list[str]:
        """Ledger keys: the event id (Slack retries) and channel+ts (app_mention and message of one post)."""
        keys = [f"slack:ts:{self.channel}:{self.ts}"]
        if self.event_id:
            keys.append(f"slack:event:{self.event_id}")
        return keys

    def inbound(self, received_at: datetime) -> InboundMessage:
        return InboundMessage(
            channel=Channel.SLACK,
            conversation_key=self.conversation_key,
            message_id=self.message_id,
            sender=self.sender,
            text=self.text,
            received_at=received_at,
            metadata=frozen_map(
                {
                    "channel": self.channel,
                    "ts": self.ts,
                    "thread_ts": self.root_ts,
                    "team": self.team,
                    "channel_type": self.channel_type,
                    "event_id": self.event_id,
                }
            ),
        )


@dataclass(frozen=True, slots=True)
class SlackPolicy:
    """Per-channel answering rules, from the channel's config."""

    allowed_channels: frozenset[str] = frozenset()  # empty: every channel the bot is in
    top_level_channels: frozenset[str] = frozenset()
    no_followup_channels: frozenset[str] = frozenset()
    allowed_bots: frozenset[str] = frozenset()
    agent_users: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: SlackConfig) -> SlackPolicy:
        return cls(
            config.allowed_channels,
            config.top_level_channels,
            config.no_followup_channels,
            config.allowed_bots,
            config.agent_users,
        )


# Slack's control sequences in message text (https://api.slack.com/reference/surfaces/formatting): `<@U…>`,
# `<#C…|name>`, `<!here>`, `<!subteam^S…|@team>`, `<!date^…|fallback>`, `<https://…|label>`, `<mailto:…>`. Bounded,
# and no nesting: Slack escapes a literal < > inside them.
_CONTROL = re.compile(r"<([@#!]?)([^<>|\s]{1,500})(?:\|([^<>]{0,500}))?>")
_SPACES = re.compile(r"(?<=\S)[ \t]{2,}(?=\S)")  # the gap a removed mention leaves (indentation is kept)


def _readable(match: re.Match[str]) -> str:
    sigil, target, label = match.group(1), match.group(2), match.group(3)
    if sigil == "@":  # a person: their id is no word of the question, and a label is only in old payloads
        return f"@{label}" if label else ""
    if sigil == "#":
        return f"#{label}" if label else "#channel"
    if sigil == "!":
        return label or f"@{target.split('^')[0]}"
    return label or target.removeprefix("mailto:")


def readable_text(raw: str) -> str:
    """The words a person reads in a Slack message: links as their label, channels and user groups by name,
    person mentions left out, then Slack's &amp; &lt; &gt; unescaped (after, so an escaped "<b>" stays text)."""
    return _SPACES.sub(" ", html.unescape(_CONTROL.sub(_readable, raw))).strip()


def mention_pattern(bot_user_id: str) -> re.Pattern[str]:
    return re.compile(rf"<@{re.escape(bot_user_id)}(?:\|[^>]*)?>") if bot_user_id else re.compile(r"(?!x)x")


def parse(body: Mapping[str, Any], bot_user_id: str, bot_id: str) -> SlackMessage | Ignored:
    """Normalise an Events API body (`event_callback`) into a message, or say why it is ignored."""
    event = body.get("event")
    if not isinstance(event, Mapping):
        return Ignored("no event")
    kind = str(event.get("type", ""))
    if kind not in ("app_mention", "message"):
        return Ignored(f"event {kind}")
    subtype = str(event.get("subtype") or "")
    if subtype not in ANSWERABLE_SUBTYPES:
        return Ignored(f"subtype {subtype}")
    if event.get("hidden"):
        return Ignored("hidden")
    channel, ts = str(event.get("channel") or ""), str(event.get("ts") or "")
    if not channel or not ts:
        return Ignored("malformed")
    user, sender_bot = str(event.get("user") or ""), str(event.get("bot_id") or "")
    if (bot_user_id and user == bot_user_id) or (bot_id and sender_bot == bot_id):
        return Ignored("own message")
    if subtype == "bot_message" and not sender_bot:
        sender_bot = str(event.get("username") or "bot")
    raw_text = str(event.get("text") or "")
    pattern = mention_pattern(bot_user_id)
    mentioned = kind == "app_mention" or bool(pattern.search(raw_text))
    text = readable_text(pattern.sub("", raw_text))
    return SlackMessage(
        event_id=str(body.get("event_id") or ""),
        team=str(body.get("team_id") or event.get("team") or ""),
        channel=channel,
        channel_type=str(event.get("channel_type") or ("channel" if kind == "app_mention" else "")),
        sender=user or sender_bot,
        text=text,
        ts=ts,
        thread_ts=str(event.get("thread_ts") or ""),
        mentioned=mentioned,
        bot_id=sender_bot,
    )


def decide(msg: SlackMessage, policy: SlackPolicy, thread: ThreadView | None) -> tuple[Verdict, str]:
    """What to do with `msg`; `thread` is the stored conversation of its thread (None: the bot is not in it)."""
    if msg.bot_id and msg.bot_id not in policy.allowed_bots:
        return Verdict.IGNORE, "bot message"
    if msg.is_dm:
        return Verdict.ANSWER, "dm"
    if policy.allowed_channels and msg.channel not in policy.allowed_channels:
        return Verdict.IGNORE, "channel not allowed"
    if not msg.is_thread_reply:
        if msg.mentioned:
            return Verdict.ANSWER, "mention"
        if msg.channel in policy.top_level_channels:
            return Verdict.ANSWER, "top-level channel"
        return Verdict.IGNORE, "no mention"
    if thread is None:
        return (Verdict.ANSWER, "mention") if msg.mentioned else (Verdict.IGNORE, "thread without the bot")
    if msg.mentioned:
        return Verdict.ANSWER, "mention"
    if msg.sender != thread.requester and msg.sender in policy.agent_users:
        return Verdict.HUMAN, "person on the case"  # only an agent takes a thread from the bot
    if msg.channel in policy.no_followup_channels:
        return Verdict.IGNORE, "follow-ups need a mention here"
    return Verdict.ANSWER, "follow-up"
