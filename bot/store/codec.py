"""JSON codecs for the values the database keeps as payloads (inbound messages for replay, replies in the outbox)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.messages import (
    Action,
    ActionKind,
    Channel,
    Citation,
    InboundAction,
    InboundMessage,
    Outcome,
    Reply,
    frozen_map,
)


def citation_to_json(c: Citation) -> dict[str, Any]:
    return {
        "index": c.index,
        "title": c.title,
        "source": c.source,
        "url": c.url,
        "section": c.section,
        "snippet": c.snippet,
        "score": c.score,
        "chunk_id": c.chunk_id,
        "community": c.community,
    }


def citation_from_json(d: dict[str, Any]) -> Citation:
    return Citation(
        index=int(d["index"]),
        title=str(d.get("title", "")),
        source=str(d.get("source", "")),
        url=str(d.get("url", "")),
        section=str(d.get("section", "")),
        snippet=str(d.get("snippet", "")),
        score=float(d.get("score", 0.0)),
        chunk_id=str(d.get("chunk_id", "")),
        community=bool(d.get("community", False)),  # rows written before trust levels existed: official
    )


def action_to_json(a: InboundAction) -> dict[str, Any]:
    return {
        "kind": a.kind.value,
        "value": a.value,
        "message_ref": a.message_ref,
        "in_agents_channel": a.in_agents_channel,
    }


def action_from_json(d: dict[str, Any] | None) -> InboundAction | None:
    """None for rows written before clicks were inbound messages (no "action" key)."""
    if not d:
        return None
    return InboundAction(
        kind=ActionKind(d["kind"]),
        value=str(d.get("value", "")),
        message_ref=str(d.get("message_ref", "")),
        in_agents_channel=bool(d.get("in_agents_channel", False)),
    )


def message_to_json(m: InboundMessage) -> dict[str, Any]:
    data: dict[str, Any] = {
        "channel": m.channel.value,
        "conversation_key": m.conversation_key,
        "message_id": m.message_id,
        "sender": m.sender,
        "text": m.text,
        "received_at": m.received_at.isoformat(),
        "subject": m.subject,
        "metadata": dict(m.metadata),
    }
    if m.action is not None:
        data["action"] = action_to_json(m.action)
    return data


def message_from_json(d: dict[str, Any]) -> InboundMessage:
    return InboundMessage(
        channel=Channel(d["channel"]),
        conversation_key=str(d["conversation_key"]),
        message_id=str(d["message_id"]),
        sender=str(d["sender"]),
        text=str(d["text"]),
        received_at=datetime.fromisoformat(d["received_at"]),
        subject=str(d.get("subject", "")),
        metadata=frozen_map(d.get("metadata")),
        action=action_from_json(d.get("action")),
    )


def reply_to_json(r: Reply) -> dict[str, Any]:
    return {
        "channel": r.channel.value,
        "conversation_key": r.conversation_key,
        "in_reply_to": r.in_reply_to,
        "text": r.text,
        "outcome": r.outcome.value,
        "idempotency_key": r.idempotency_key,
        "citations": [citation_to_json(c) for c in r.citations],
        "actions": [{"kind": a.kind.value, "label": a.label, "value": a.value} for a in r.actions],
        "confidence": r.confidence,
        "low_confidence": r.low_confidence,
        "reference_id": r.reference_id,
        "recipient": r.recipient,
        "subject": r.subject,
        "metadata": dict(r.metadata),
        "visible_to": r.visible_to,
        "replaces": r.replaces,
        "plain": r.plain,
        "mentions": list(r.mentions),
    }


def reply_from_json(d: dict[str, Any]) -> Reply:
    return Reply(
        channel=Channel(d["channel"]),
        conversation_key=str(d["conversation_key"]),
        in_reply_to=str(d["in_reply_to"]),
        text=str(d["text"]),
        outcome=Outcome(d["outcome"]),
        idempotency_key=str(d["idempotency_key"]),
        citations=tuple(citation_from_json(c) for c in d.get("citations", [])),
        actions=tuple(
            Action(kind=ActionKind(a["kind"]), label=str(a["label"]), value=str(a.get("value", "")))
            for a in d.get("actions", [])
        ),
        confidence=None if d.get("confidence") is None else float(d["confidence"]),
        low_confidence=bool(d.get("low_confidence", False)),
        reference_id=str(d.get("reference_id", "")),
        recipient=str(d.get("recipient", "")),
        subject=str(d.get("subject", "")),
        metadata=frozen_map(d.get("metadata")),
        visible_to=str(d.get("visible_to", "")),  # absent in rows written before these fields existed
        replaces=str(d.get("replaces", "")),
        plain=bool(d.get("plain", False)),
        mentions=tuple(str(m) for m in d.get("mentions", [])),
    )
