"""Replies as Block Kit: mrkdwn text split under Slack's limits, numbered sources, a low-confidence note, buttons.

Pure functions from values to JSON-ready dicts, so rendering is tested without a server. Limits (Slack docs):
a section's text at most 3000 characters, at most 50 blocks per message, a button label at most 75 characters,
a button value at most 2000, and the top-level `text` (the notification fallback) well under 40,000.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any
from urllib.parse import urlsplit

from bot.messages import Action, ActionKind, Citation, Reply
from bot.strings import for_customers
from channels.slack.escape import escape, slack_text, with_mentions

LOW_CONFIDENCE_NOTE = f":warning: {for_customers.LOW_CONFIDENCE} {for_customers.CHECK_SOURCES}"

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
    if citation.community:
        label += f" _({for_customers.COMMUNITY_TIP})_"
    return f"{citation.index}. {label}"


def sources_blocks(citations: Sequence[Citation]) -> list[Block]:
    if not citations:
        return []
    lines = [f"*{for_customers.SOURCES}*", *(source_line(c) for c in sorted(citations, key=lambda c: c.index))]
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


def citation_hosts(citations: Sequence[Citation]) -> set[str]:
    """Hosts of the sources an answer cites: the answer may link to them, as its sources do."""
    hosts = set()
    for citation in citations:
        link = citation.url or (citation.source if citation.source.startswith(("http://", "https://")) else "")
        host = urlsplit(link).hostname if link else None
        if host:
            hosts.add(host)
    return hosts


def reply_mrkdwn(reply: Reply, link_domains: Collection[str] = ()) -> str:
    """The reply's text as safe mrkdwn: plain replies literally, answers from Markdown with allowed links only."""
    if reply.plain:
        return with_mentions(slack_text(reply.text), reply.mentions)
    text = slack_text(reply.text, markdown=True, link_hosts={*link_domains, *citation_hosts(reply.citations)})
    return with_mentions(text, reply.mentions)


def render_reply(reply: Reply, link_domains: Collection[str] = ()) -> tuple[str, list[Block]]:
    """(notification text, blocks) for one reply, never over Slack's limits."""
    body = reply_mrkdwn(reply, link_domains)
    text_blocks = [section(piece) for piece in split_text(body)]
    tail: list[Block] = []
    if reply.low_confidence:
        tail.append(context(LOW_CONFIDENCE_NOTE))
    tail += sources_blocks(reply.citations)
    tail += actions_block(reply.actions)
    room = MAX_BLOCKS - len(tail)
    if len(text_blocks) > room:
        text_blocks = [*text_blocks[: room - 1], context(for_customers.TRUNCATED)]
    blocks = text_blocks + tail
    return fallback(body), blocks[:MAX_BLOCKS]


def safe_blocks(blocks: Sequence[Block]) -> list[Block]:
    """Blocks built elsewhere (the report, the gap backlog) with every text object passed through `slack_text`:
    their labels and examples are customer words. Our own layout (*bold*, line-start quotes) survives."""
    return [_safe(block) for block in blocks]


def _safe(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("type") in ("mrkdwn", "plain_text") and isinstance(value.get("text"), str):
            text = value["text"]
            return {**value, "text": slack_text(text, quotes=True) if value["type"] == "mrkdwn" else text}
        return {key: _safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_safe(item) for item in value]
    return value
