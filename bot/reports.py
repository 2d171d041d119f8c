"""A report queued in the outbox: the rendered parts a sender needs, carried in the `Reply`'s metadata.

The weekly report goes through the outbox like a reply (one row per destination and week, unique key), so a
retried job, a second scheduler or a crash between "queued" and "sent" never delivers it twice, and what is sent
after a restart is exactly what was decided. The scheduler writes these replies; the Slack report sender and the
report mail sender, registered for `REPORT_KIND`, read them back. Both sides meet here, on the ground floor.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from bot.messages import Channel, Outcome, Reply

REPORT_KIND = "weekly_report"
DELIVERY_KIND = "delivery_kind"  # Reply.metadata key naming the special sender a reply goes to


@dataclass(frozen=True, slots=True)
class ReportParts:
    """Everything a report message is made of (each sender uses its own parts)."""

    title: str
    text: str
    html: str = ""
    blocks: tuple[dict[str, Any], ...] = ()
    png: bytes = b""
    filename: str = ""


def report_reply(channel: Channel, key: str, recipient: str, parts: ReportParts) -> Reply:
    """The outbox row of one report to one destination (a Slack channel id, or comma-separated addresses)."""
    return Reply(
        channel=channel,
        conversation_key=key,
        in_reply_to="",
        text=parts.text,
        outcome=Outcome.ANSWERED,
        idempotency_key=key,
        recipient=recipient,
        subject=parts.title,
        metadata={
            DELIVERY_KIND: REPORT_KIND,
            "html": parts.html,
            "blocks": json.dumps(list(parts.blocks)),
            "png": base64.b64encode(parts.png).decode("ascii"),
            "filename": parts.filename,
        },
        plain=True,
    )


def report_parts(reply: Reply) -> ReportParts:
    """The parts of a queued report; ValueError when the reply is not one."""
    meta = reply.metadata
    if meta.get(DELIVERY_KIND) != REPORT_KIND:
        raise ValueError("not a queued report")
    return ReportParts(
        title=reply.subject,
        text=reply.text,
        html=meta.get("html", ""),
        blocks=tuple(json.loads(meta.get("blocks", "[]"))),
        png=base64.b64decode(meta.get("png", "")),
        filename=meta.get("filename", ""),
    )
