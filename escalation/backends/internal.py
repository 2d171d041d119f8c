"""The internal backend: the ticket is our own `tickets` row, worked from the agents' Slack channel."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import TicketRef, TicketRequest
from bot.ports import Clock
from bot.store.db import Database
from bot.store.sql import insert_ignore
from bot.store.tables import TicketRow


class InternalBackend:
    """Reference "#<row id>". Idempotent by construction: one row per action token (a unique column)."""

    name = "internal"

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def create(self, request: TicketRequest, idempotency_key: str) -> TicketRef:
        async with self._db.transaction() as session:
            ticket_id = await self._find(session, idempotency_key)
            if ticket_id is None:
                # Normally the escalation service reserved the row when the action was confirmed; this keeps the
                # backend correct on its own too (and looks first, so PostgreSQL burns no sequence numbers).
                await session.execute(
                    insert_ignore(self._db.dialect, TicketRow.__table__, self._row(request, idempotency_key))  # type: ignore[arg-type]
                )
                ticket_id = await self._find(session, idempotency_key)
        assert ticket_id is not None
        return TicketRef(self.name, f"#{ticket_id}")

    @staticmethod
    async def _find(session: AsyncSession, token: str) -> int | None:
        found = await session.execute(select(TicketRow.id).where(TicketRow.action_token == token))
        return found.scalar_one_or_none()

    def _row(self, request: TicketRequest, token: str) -> dict[str, Any]:
        now = self._clock.now()
        return {
            "action_token": token,
            "backend": self.name,
            "reference": "",
            "url": "",
            "subject": request.subject,
            "requester": request.requester,
            "channel": request.channel.value,
            "conversation_key": request.conversation_key,
            "state": "creating",
            "assignee": "",
            "links": {},
            "created_at": now,
            "updated_at": now,
        }
