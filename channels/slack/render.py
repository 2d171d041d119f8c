"""Replies as Block Kit: mrkdwn text split under Slack's limits, numbered sources, a low-confidence note, buttons.

Pure functions from values to JSON-ready dicts, so rendering is tested without a server. Limits (Slack docs):
a section's text at most 3000 characters, at most 50 blocks per message, a button label at most 75 characters,
a button value at most 2000, and the top-level `text` (the notification fallback) well under 40,000.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from markdown_to_mrkdwn import SlackMarkdownConverter

from bot.messages import Action, ActionKind, Citation, Reply, TicketRef
from bot.ports import ActionPreview
from channels.slack import strings

SECTION_LIMIT = 3000
MAX_BLOCKS = 50
FALLBACK_LIMIT = 3000
LABEL_LIMIT = 75
VALUE_LIMIT = 2000
ACTION_PREFIX = "supportbot_"

Block = dict[str, Any]

_EMOJI = {
    ActionKind.FEEDBACK_UP: ":+1: ",
    ActionKind.FEEDBACK_DOWN: ":-1: ",
    ActionKind.OFFER_TICKET: ":ticket: ",
    ActionKind.TALK_TO_PERSON: ":raising_hand: ",
}
_STYLE = {ActionKind.CONFIRM: "primary", ActionKind.OFFER_TICKET: "primary", ActionKind.CANCEL: "danger"}


def action_id(kind: ActionKind) -> str:
    return f"{ACTION_PREFIX}{kind.value}"


def action_kind(action_id_: str) -> ActionKind | None:
    """The kind behind a button's action_id (ignoring a de-duplication suffix), or None if it is not ours."""
    if not action_id_.startswith(ACTION_PREFIX):
        return None
    name = action_id_.removeprefix(ACTION_PREFIX).split(".", 1)[0]
    try:
        return ActionKind(name)
    except ValueError:
        return None


def escape(text: str) -> str:
    """Escape Slack's control characters (&, <, >) in text that is not markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_LINE_START_QUOTE = re.compile(r"^&gt;", re.MULTILINE)


def to_mrkdwn(markdown: str) -> str:
    """Markdown (what the answerers write) to Slack mrkdwn; stray <, >, & are escaped first, quotes kept."""
    escaped = _LINE_START_QUOTE.sub(">", escape(markdown))
    return str(SlackMarkdownConverter().convert(escaped))


def split_text(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split into pieces of at most `limit` characters, at paragraph, line or word boundaries when possible."""
    pieces: list[str] = []
    rest = text.strip()
    while len(rest) > limit:
        window = rest[:limit]
        cut = max(window.rfind("\n\n"), 0)
        if cut < limit // 2:
            cut = window.rfind("\n")
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut < limit // 2:
            cut = limit
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:SECTION_LIMIT]}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:SECTION_LIMIT]}]}


def source_line(citation: Citation) -> str:
    title = escape(citation.title or citation.source or f"Source {citation.index}").replace("|", "¦")
    link = citation.url or (citation.source if citation.source.startswith(("http://", "https://")) else "")
    label = f"<{link}|{title}>" if link else title
    if citation.section and citation.section != citation.title:
        label += f" — {escape(citation.section)}"
    return f"{citation.index}. {label}"


def sources_blocks(citations: Sequence[Citation]) -> list[Block]:
    if not citations:
        return []
    lines = [f"*{strings.SOURCES}*", *(source_line(c) for c in sorted(citations, key=lambda c: c.index))]
    return [section(piece) for piece in split_text("\n".join(lines))]


def button(action: Action, seen: dict[str, int]) -> Block:
    base = action_id(action.kind)
    seen[base] = seen.get(base, 0) + 1
    element: Block = {
        "type": "button",
        "action_id": base if seen[base] == 1 else f"{base}.{seen[base]}",
        "text": {
            "type": "plain_text",
            "text": (_EMOJI.get(action.kind, "") + action.label)[:LABEL_LIMIT],
            "emoji": True,
        },
        "value": action.value[:VALUE_LIMIT],
    }
    if action.kind in _STYLE:
        element["style"] = _STYLE[action.kind]
    return element


def actions_block(actions: Sequence[Action]) -> list[Block]:
    if not actions:
        return []
    seen: dict[str, int] = {}
    return [{"type": "actions", "elements": [button(a, seen) for a in actions[:25]]}]


def fallback(text: str) -> str:
    return text if len(text) <= FALLBACK_LIMIT else text[: FALLBACK_LIMIT - 1] + "…"


def render_reply(reply: Reply) -> tuple[str, list[Block]]:
    """(notification text, blocks) for one reply, never over Slack's limits."""
    body = to_mrkdwn(reply.text)
    text_blocks = [section(piece) for piece in split_text(body)]
    tail: list[Block] = []
    if reply.low_confidence:
        tail.append(context(strings.LOW_CONFIDENCE))
    tail += sources_blocks(reply.citations)
    tail += actions_block(reply.actions)
    room = MAX_BLOCKS - len(tail)
    if len(text_blocks) > room:
        text_blocks = [*text_blocks[: room - 1], context(strings.TRUNCATED)]
    blocks = text_blocks + tail
    return fallback(body), blocks[:MAX_BLOCKS]


def preview_blocks(preview: ActionPreview) -> tuple[str, list[Block]]:
    """The "create this ticket?" message with Confirm and Cancel buttons (value: the action token)."""
    summary = split_text(to_mrkdwn(preview.summary), 2500)
    lines = [
        f"*{strings.PREVIEW_TITLE}*",
        f"*{strings.PREVIEW_SUBJECT}:* {escape(preview.subject)}",
        f"*{strings.PREVIEW_SUMMARY}:*\n{summary[0] if summary else ''}",
    ]
    blocks = [section("\n".join(lines))]
    blocks += actions_block(
        [
            Action(ActionKind.CONFIRM, strings.CONFIRM, preview.token),
            Action(ActionKind.CANCEL, strings.CANCEL, preview.token),
        ]
    )
    return fallback(f"{strings.PREVIEW_TITLE} {preview.subject}"), blocks


def ticket_link(ticket: TicketRef) -> str:
    reference = escape(ticket.reference)
    return f"<{ticket.url}|{reference}>" if ticket.url else reference


def notice_blocks(text: str) -> tuple[str, list[Block]]:
    """A one-section message (ticket created, cancelled, ...)."""
    return fallback(text), [section(text)]
