"""Value types that travel through the core.

Every value is a frozen dataclass: adapters build them from raw events, the core passes them around, and
nothing downstream can mutate what an adapter saw. No raw dicts cross a port.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType


class Channel(enum.StrEnum):
    """Where an inquiry came from and where its replies go."""

    SLACK = "slack"
    EMAIL = "email"
    API = "api"
    CLI = "cli"


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"


class Outcome(enum.StrEnum):
    """What the conversation service decided for one turn."""

    ANSWERED = "answered"
    ANSWERED_OFFER = "answered_offer"  # answered, with a ticket offered because confidence was low
    ABSTAINED = "abstained"  # "I don't know" plus a ticket offer, never a guess
    HANDOFF = "handoff"  # the person asked for a human
    SUPPRESSED = "suppressed"  # a human is on the case; the bot stays quiet
    REJECTED = "rejected"  # a guard refused the input (empty, too long)
    FAILED = "failed"  # an internal error; the user got an apology with a reference id


class ActionKind(enum.StrEnum):
    """Things a reply can offer the user (buttons in Slack, instructions in email)."""

    FEEDBACK_UP = "feedback_up"
    FEEDBACK_DOWN = "feedback_down"
    OFFER_TICKET = "offer_ticket"
    TALK_TO_PERSON = "talk_to_person"
    CONFIRM = "confirm"
    CANCEL = "cancel"
    CLAIM = "claim"
    RESOLVE = "resolve"


def frozen_map(values: Mapping[str, str] | None = None) -> Mapping[str, str]:
    """A read-only mapping, so metadata on a frozen value is really frozen."""
    return MappingProxyType(dict(values or {}))


_UNSAFE_CHARS = re.compile(r"[\ud800-\udfff]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Text that every store and wire can carry: lone surrogates (invalid UTF-8 decoded with `surrogateescape`, or
    `\\ud800` in JSON) become U+FFFD and control characters other than tab and newlines are dropped. Adapters apply
    it at the edge; content never turns into a 5xx or a dead letter."""
    return _UNSAFE_CHARS.sub(lambda m: "\ufffd" if m.group() >= "\ud800" else "", text)


@dataclass(frozen=True, slots=True)
class InboundAction:
    """A button a person pressed (a Slack click), carried by the `InboundMessage` that records it.

    Clicks are inbound messages like any other: recorded in the inbound ledger (so a retried or double click is one
    action) and handled by the core (`bot.actions.ActionService`), whose replies go through the outbox. The actor is
    the message's `sender`.
    """

    kind: ActionKind
    value: str  # the button's value, as the core wrote it (an action token, a case value, a reply key)
    message_ref: str = ""  # the channel's reference of the message the button was on (Slack ts), to replace it
    in_agents_channel: bool = False  # pressed in the agents' channel (where Claim and Resolve are allowed)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """One message from a person, normalised by a channel adapter (or a click: `action` is set)."""

    channel: Channel
    conversation_key: str  # Slack: "C123:1700000000.000100" (channel:thread_ts); email: root Message-ID
    message_id: str  # unique per message in its channel (Slack event id / ts, email Message-ID)
    sender: str  # Slack user id or email address
    text: str
    received_at: datetime
    subject: str = ""
    metadata: Mapping[str, str] = field(default_factory=frozen_map)
    action: InboundAction | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """One stored message of a conversation, used as history for follow-up questions."""

    role: Role
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Citation:
    """A numbered source that an answer cites; `index` matches the [n] marker in the text."""

    index: int
    title: str
    source: str  # path or URL of the document
    url: str = ""  # a link a person can open, when there is one
    section: str = ""
    snippet: str = ""
    score: float = 0.0  # 0..1 relevance of the passage to the question (the reader's when one read it)
    chunk_id: str = ""
    community: bool = False  # a community tip (forum, user-contributed), not an official article


@dataclass(frozen=True, slots=True)
class Usage:
    """What one answer cost."""

    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class Answer:
    """What the knowledge engine says to a question."""

    text: str
    citations: tuple[Citation, ...]
    confidence: float  # 0..1 from retrieval scores and citation coverage
    grounded: bool  # every claim cites a retrieved chunk
    abstained: bool  # the engine declined: nothing relevant enough was found
    answerer: str  # "claude", "extractive", ...
    usage: Usage = field(default_factory=Usage)
    stage_ms: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    standalone_question: str = ""  # the follow-up condensed with history, when it was
    passages: tuple[Citation, ...] = ()  # retrieved but not cited (index 0), for the trace: what else it read


def case_value(channel: Channel, conversation_key: str) -> str:
    """The value of CLAIM / RESOLVE actions: which conversation a case is (escalation writes it, channels read it)."""
    return f"{channel.value}|{conversation_key}"


def parse_case(value: str) -> tuple[Channel, str]:
    """Inverse of `case_value`; raises ValueError on anything else."""
    channel, sep, key = value.partition("|")
    if not sep or not key:
        raise ValueError("not a case value")
    return Channel(channel), key


@dataclass(frozen=True, slots=True)
class Action:
    """A button or instruction offered with a reply. `value` is opaque to the user (e.g. an action token)."""

    kind: ActionKind
    label: str
    value: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """Something to say back, in the channel and conversation it belongs to.

    The core returns replies; the composition root puts them in the outbox and a channel's sender renders
    them (Slack blocks, email text and HTML). `idempotency_key` makes delivery exactly-once.

    A reply is posted in its conversation (for Slack: in the thread `conversation_key` names) unless
    `visible_to` names the one person who may see it (a Slack ephemeral message) or `replaces` names a message
    of ours to overwrite (a Slack `chat.update`, e.g. a ticket preview replaced by its result). `plain` says the
    text holds words we did not write (a customer's, a ticket subject) and must be shown as is, never as Markdown.
    """

    channel: Channel
    conversation_key: str
    in_reply_to: str  # message id of the inbound message this answers
    text: str
    outcome: Outcome
    idempotency_key: str
    citations: tuple[Citation, ...] = ()
    actions: tuple[Action, ...] = ()
    confidence: float | None = None
    low_confidence: bool = False
    reference_id: str = ""  # shown with apologies so support can find the log line
    recipient: str = ""
    subject: str = ""
    metadata: Mapping[str, str] = field(default_factory=frozen_map)
    visible_to: str = ""  # only this person sees it (Slack: ephemeral); "" = everyone in the conversation
    replaces: str = ""  # the channel's reference (Slack ts) of an earlier message of ours this one overwrites
    plain: bool = False  # literal text (customer words inside): no Markdown, no links made from it
    # channel user ids the text names, taken from the channel itself (the clicker of a signed Slack payload),
    # never from text: Slack shows these, and only these, as live mentions
    mentions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TicketRequest:
    """What a ticket backend needs to open a ticket."""

    subject: str
    summary: str
    requester: str
    channel: Channel
    conversation_key: str
    conversation_link: str = ""
    transcript: tuple[Turn, ...] = ()


@dataclass(frozen=True, slots=True)
class TicketRef:
    """A ticket that exists in some backend."""

    backend: str
    reference: str  # "#123", "SUP-42", ...
    url: str = ""
