"""The outbox: replies decided but not yet delivered.

A reply is written in the same transaction that settles its inbound message, under a unique idempotency key,
so a crash between "decided" and "sent" leaves a pending row that the dispatcher (any replica, after any
restart) delivers. Claims are leases, so two replicas never send the same row at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Reply
from bot.ports import Clock
from bot.store.codec import reply_from_json, reply_to_json
from bot.store.db import Database
from bot.store.sql import insert_ignore, rowcount, truncate
from bot.store.tables import OutboxRow

PENDING, SENT, DEAD = "pending", "sent", "dead"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    id: int
    reply: Reply
    attempts: int  # claims so far, this one included
    created_at: datetime

    @property
    def resend(self) -> bool:
        """Claimed before: that attempt failed, or its process died mid-send (its lease ran out), so the reply
        may already have gone out."""
        return self.attempts > 1


def backoff_seconds(attempts: int, base: float = 2.0, cap: float = 600.0) -> float:
    """Exponential backoff with full jitter: base * 2^(attempts-1), capped, times a random 0.5..1."""
    return float(min(cap, base * 2 ** max(0, attempts - 1)) * (0.5 + random.random() / 2))


class Outbox:
    def __init__(self, db: Database, clock: Clock, *, max_attempts: int = 15, lease_seconds: float = 60.0) -> None:
        self._db = db
        self._clock = clock
        self.max_attempts = max_attempts
        self._lease_time = timedelta(seconds=lease_seconds)

    async def enqueue_in(self, session: AsyncSession, reply: Reply) -> None:
        """Add a reply inside the caller's transaction; a repeated idempotency key is ignored."""
        now = self._clock.now()
        values = {
            "idempotency_key": reply.idempotency_key,
            "channel": reply.channel.value,
            "conversation_key": reply.conversation_key,
            "payload": reply_to_json(reply),
            "status": PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "delivery_ref": "",
            "last_error": "",
        }
        await session.execute(insert_ignore(self._db.dialect, OutboxRow.__table__, values))  # type: ignore[arg-type]

    async def enqueue(self, *replies: Reply) -> None:
        async with self._db.transaction() as session:
            for reply in replies:
                await self.enqueue_in(session, reply)

    async def claim_due(self, limit: int = 20) -> list[OutboxItem]:
        """Lease up to `limit` pending rows whose time has come."""
        now = self._clock.now()
        async with self._db.sessions() as session:
            ids = list(
                (
                    await session.execute(
                        select(OutboxRow.id)
                        .where(
                            OutboxRow.status == PENDING,
                            OutboxRow.next_attempt_at <= now,
                            or_(OutboxRow.locked_until.is_(None), OutboxRow.locked_until < now),
                        )
                        .order_by(OutboxRow.id)
                        .limit(limit)
                    )
                ).scalars()
            )
        claimed: list[OutboxItem] = []
        for row_id in ids:
            item = await self._lease(row_id, now)
            if item is not None:
                claimed.append(item)
        return claimed

    async def _lease(self, row_id: int, now: datetime) -> OutboxItem | None:
        async with self._db.transaction() as session:
            result = await session.execute(
                update(OutboxRow)
                .where(
                    OutboxRow.id == row_id,
                    OutboxRow.status == PENDING,
                    or_(OutboxRow.locked_until.is_(None), OutboxRow.locked_until < now),
                )
                .values(locked_until=now + self._lease_time, attempts=OutboxRow.attempts + 1)
            )
            if rowcount(result) != 1:
                return None
            row = await session.get(OutboxRow, row_id)
            assert row is not None
            return OutboxItem(row.id, reply_from_json(row.payload), row.attempts, row.created_at)

    async def claim(self, idempotency_key: str) -> OutboxItem | None:
        """Lease the pending reply with this key, due or not (to send it now); None when it is sent, dead or
        leased by someone else."""
        async with self._db.sessions() as session:
            row_id = (
                await session.execute(select(OutboxRow.id).where(OutboxRow.idempotency_key == idempotency_key))
            ).scalar_one_or_none()
        return None if row_id is None else await self._lease(row_id, self._clock.now())

    async def reserve_ref(self, idempotency_key: str, candidate: str) -> str:
        """The delivery reference of the reply with `idempotency_key`: `candidate` if it had none yet, else the
        one reserved before (`bot.ports.DeliveryRefs`). Without such a row, `candidate` (nothing to keep)."""
        async with self._db.transaction() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.idempotency_key == idempotency_key, OutboxRow.delivery_ref == "")
                .values(delivery_ref=candidate)
            )
            stored = await session.execute(
                select(OutboxRow.delivery_ref).where(OutboxRow.idempotency_key == idempotency_key)
            )
            return stored.scalar_one_or_none() or candidate

    async def mark_sent(self, item_id: int, delivery_ref: str = "") -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(OutboxRow)
                .where(OutboxRow.id == item_id)
                .values(status=SENT, sent_at=self._clock.now(), delivery_ref=delivery_ref, locked_until=None)
            )

    async def mark_failed(self, item_id: int, error: str, *, permanent: bool = False) -> str:
        """Schedule a retry with backoff, or mark dead after `max_attempts` (or at once if permanent)."""
        async with self._db.transaction() as session:
            row = await session.get(OutboxRow, item_id)
            if row is None:
                return DEAD
            row.last_error = truncate(error)
            row.locked_until = None
            if permanent or row.attempts >= self.max_attempts:
                row.status = DEAD
            else:
                row.next_attempt_at = self._clock.now() + timedelta(seconds=backoff_seconds(row.attempts))
            return row.status

    async def requeue_dead(self) -> int:
        """Give dead rows another round (`supportbot replay`)."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(OutboxRow)
                .where(OutboxRow.status == DEAD)
                .values(status=PENDING, attempts=0, next_attempt_at=self._clock.now(), locked_until=None)
            )
            return rowcount(result)

    async def stats(self) -> tuple[int, float, int]:
        """(pending rows, age in seconds of the oldest pending row, dead rows)."""
        async with self._db.sessions() as session:
            pending, oldest = (
                await session.execute(
                    select(func.count(), func.min(OutboxRow.created_at)).where(OutboxRow.status == PENDING)
                )
            ).one()
            dead = (await session.execute(select(func.count()).where(OutboxRow.status == DEAD))).scalar_one()
        # min() keeps the column's type, so `oldest` comes back as an aware UTC datetime on both databases.
        age = max(0.0, (self._clock.now() - oldest).total_seconds()) if oldest is not None else 0.0
        return int(pending), age, int(dead)

    async def sent_for(self, conversation_key: str) -> list[Reply]:
        """Replies delivered in a conversation, oldest first (tests and the CLI use it)."""
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(OutboxRow.payload)
                .where(OutboxRow.conversation_key == conversation_key, OutboxRow.status == SENT)
                .order_by(OutboxRow.id)
            )
            return [reply_from_json(p) for p in rows.scalars()]
