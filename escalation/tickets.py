"""Opening tickets as a confirmed action, and the `tickets` table as operators and agents see it.

`TicketExecutor` is the executor for kind "create_ticket": it reserves the ticket row (state "creating", unique
on the action token) in the confirming transaction, calls the backend with the token as idempotency key, then
stores the reference and posts the case to the agents' channel in the transaction that marks the action done.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot import metrics
from bot.messages import Channel, Role, TicketRef, TicketRequest, Turn
from bot.ports import Clock, TicketBackend
from bot.store.db import Database
from bot.store.outbox import Outbox
from bot.store.sql import insert_ignore, rowcount
from bot.store.tables import TicketRow
from bot.strings import for_agents
from escalation.actions import PendingAction
from escalation.handoff import agent_post, conversation_links, merge_links_in

log = structlog.get_logger(__name__)

CREATE_TICKET = "create_ticket"
CREATING, OPEN, CLAIMED, RESOLVED = "creating", "open", "claimed", "resolved"


def ticket_request(action: PendingAction) -> TicketRequest:
    """The backend request from what the person saw and confirmed (the stored preview)."""
    preview = action.preview
    transcript = tuple(
        Turn(Role(t["role"]), str(t["text"]), datetime.fromisoformat(t["at"])) for t in preview.get("transcript", [])
    )
    return TicketRequest(
        subject=str(preview.get("subject", "")),
        summary=str(preview.get("summary", "")),
        requester=action.requester,
        channel=action.channel,
        conversation_key=action.conversation_key,
        conversation_link=str(preview.get("conversation_link", "")),
        transcript=transcript,
    )


def ticket_ref(result: Mapping[str, str]) -> TicketRef:
    return TicketRef(result.get("backend", ""), result.get("reference", ""), result.get("url", ""))


class TicketExecutor:
    """Executor of "create_ticket" actions (see `escalation.actions.ActionExecutor`)."""

    kind = CREATE_TICKET

    def __init__(self, db: Database, clock: Clock, outbox: Outbox, backend: TicketBackend, escalation_channel: str):
        self._db = db
        self._clock = clock
        self._outbox = outbox
        self._backend = backend
        self._escalation_channel = escalation_channel

    async def on_confirmed(self, session: AsyncSession, action: PendingAction) -> None:
        now = self._clock.now()
        values: dict[str, Any] = {
            "action_token": action.token,
            "backend": self._backend.name,
            "reference": "",
            "url": "",
            "subject": str(action.preview.get("subject", ""))[:998],
            "requester": action.requester,
            "channel": action.channel.value,
            "conversation_key": action.conversation_key,
            "state": CREATING,
            "assignee": "",
            "links": {},
            "created_at": now,
            "updated_at": now,
        }
        await session.execute(insert_ignore(self._db.dialect, TicketRow.__table__, values))  # type: ignore[arg-type]

    async def execute(self, action: PendingAction) -> Mapping[str, str]:
        try:
            ref = await self._backend.create(ticket_request(action), idempotency_key=action.token)
        except Exception:
            metrics.TICKETS.labels(self._backend.name, "failed").inc()
            raise
        metrics.TICKETS.labels(self._backend.name, "created").inc()
        log.info("ticket.created", backend=ref.backend, reference=ref.reference, token_prefix=action.token[:6])
        return {"backend": ref.backend, "reference": ref.reference, "url": ref.url}

    async def on_done(self, session: AsyncSession, action: PendingAction) -> None:
        ref = ticket_ref(action.result)
        now = self._clock.now()
        ticket_links = {"ticket_url": ref.url} if ref.url else {}
        links = await merge_links_in(
            session, action.channel, action.conversation_key, {**ticket_links, "ticket": ref.reference}, now
        )
        links = conversation_links(action.channel, action.conversation_key, links)
        if action.preview.get("conversation_link"):
            links.setdefault("permalink", str(action.preview["conversation_link"]))
        await session.execute(
            update(TicketRow)
            .where(TicketRow.action_token == action.token, TicketRow.state == CREATING)
            .values(reference=ref.reference, url=ref.url, state=OPEN, links=links, updated_at=now)
        )
        if not self._escalation_channel:
            log.info("ticket.no_escalation_channel", reference=ref.reference)
            return
        post = agent_post(
            escalation_channel=self._escalation_channel,
            idempotency_key=f"escalation:ticket:{action.token}",
            headline=for_agents.AGENT_POST_TICKET.format(
                reference=ref.reference, requester=action.requester, channel=action.channel.value
            ),
            summary=str(action.preview.get("summary", "")),
            channel=action.channel,
            conversation_key=action.conversation_key,
            links=links,
        )
        await self._outbox.enqueue_in(session, post)

    def describe(self, result: Mapping[str, str]) -> str:
        return f"ticket {result.get('reference', '')}".strip()


@dataclass(frozen=True, slots=True)
class TicketView:
    """One ticket as `supportbot tickets` shows it."""

    id: int
    state: str
    backend: str
    reference: str
    url: str
    subject: str
    requester: str
    channel: str
    conversation_key: str
    assignee: str
    created_at: datetime
    resolved_at: datetime | None


def _view(r: TicketRow) -> TicketView:
    return TicketView(
        r.id,
        r.state,
        r.backend,
        r.reference,
        r.url,
        r.subject,
        r.requester,
        r.channel,
        r.conversation_key,
        r.assignee,
        r.created_at,
        r.resolved_at,
    )


class TicketStore:
    """Queries and case updates on `tickets` (claim and resolve move every open ticket of a conversation)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def list(self, limit: int = 50) -> list[TicketView]:
        async with self._db.sessions() as session:
            rows = await session.execute(select(TicketRow).order_by(TicketRow.id.desc()).limit(limit))
            return [_view(r) for r in rows.scalars()]

    async def claim(self, channel: Channel, conversation_key: str, agent: str) -> int:
        return await self._move(channel, conversation_key, (OPEN, CLAIMED), state=CLAIMED, assignee=agent)

    async def resolve(self, channel: Channel, conversation_key: str) -> int:
        return await self._move(
            channel, conversation_key, (OPEN, CLAIMED), state=RESOLVED, resolved_at=self._clock.now()
        )

    async def _move(self, channel: Channel, key: str, from_states: Sequence[str], **values: object) -> int:
        async with self._db.transaction() as session:
            result = await session.execute(
                update(TicketRow)
                .where(
                    TicketRow.channel == channel.value,
                    TicketRow.conversation_key == key,
                    TicketRow.state.in_(from_states),
                )
                .values(updated_at=self._clock.now(), **values)
            )
            return rowcount(result)


def _age(delta_seconds: float) -> str:
    seconds = max(0, int(delta_seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m" if minutes else f"{seconds}s"


def format_tickets(views: Sequence[TicketView], now: datetime | None = None) -> str:
    """A plain-text table for `supportbot tickets`: id, state, backend reference, requester, channel, age."""
    if not views:
        return "No tickets yet."
    now = now or datetime.now(UTC)
    header = ("ID", "STATE", "REFERENCE", "REQUESTER", "CHANNEL", "AGE")
    rows = [
        (
            str(v.id),
            v.state,
            f"{v.backend} {v.reference}".strip(),
            v.requester,
            v.channel,
            _age((now - v.created_at).total_seconds()),
        )
        for v in views
    ]
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in (header, *rows)
    )
