"""The inbound ledger: every message we accepted, once, with its processing status.

`record()` stores a message under all the keys it is known by (Slack `event_id` and `channel:ts`, an email's
UID and Message-ID); any key seen before makes it a duplicate, even across replicas, because the keys are a
primary key. Processing takes a lease (`claim`), so a replica that died mid-answer is replaced after the lease
and two replicas never work the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.messages import InboundMessage
from bot.ports import Clock
from bot.store.codec import message_from_json, message_to_json
from bot.store.db import Database
from bot.store.sql import truncate
from bot.store.tables import InboundKeyRow, InboundRow

RECEIVED, ANSWERED, IGNORED, FAILED, DEAD_LETTER = "received", "answered", "ignored", "failed", "dead_letter"


@dataclass(frozen=True, slots=True)
class InboundRecord:
    id: int
    status: str
    attempts: int
    message: InboundMessage
    reason: str = ""


def _record(row: InboundRow) -> InboundRecord:
    return InboundRecord(row.id, row.status, row.attempts, message_from_json(row.payload), row.reason)


class InboundLedger:
    """Exactly-once intake: record, claim, and settle inbound messages."""

    def __init__(self, db: Database, clock: Clock, *, lease_seconds: float = 120.0, max_attempts: int = 3) -> None:
        self._db = db
        self._clock = clock
        self._lease = timedelta(seconds=lease_seconds)
        self.max_attempts = max_attempts

    async def record(
        self, msg: InboundMessage, keys: Sequence[str] = (), *, status: str = RECEIVED, reason: str = ""
    ) -> int | None:
        """Store `msg`; return its id, or None when it (or any of `keys`) was seen before."""
        now = self._clock.now()
        all_keys = {f"{msg.channel.value}:{msg.message_id}", *keys}
        try:
            async with self._db.transaction() as session:
                row = InboundRow(
                    channel=msg.channel.value,
                    message_id=msg.message_id,
                    conversation_key=msg.conversation_key,
                    status=status,
                    payload=message_to_json(msg),
                    reason=reason,
                    created_at=now,
                    updated_at=now,
                )
                session.add(row)
                await session.flush()
                session.add_all(InboundKeyRow(key=k, inbound_id=row.id, created_at=now) for k in sorted(all_keys))
                await session.flush()
                return row.id
        except IntegrityError:
            return None

    async def seen(self, key: str) -> bool:
        async with self._db.sessions() as session:
            return (await session.get(InboundKeyRow, key)) is not None

    async def add_keys(self, inbound_id: int, keys: Sequence[str]) -> None:
        """Teach the ledger more keys for a recorded message (e.g. a Message-ID learned after the UID)."""
        now = self._clock.now()
        for key in keys:
            try:
                async with self._db.transaction() as session:
                    session.add(InboundKeyRow(key=key, inbound_id=inbound_id, created_at=now))
            except IntegrityError:
                continue

    async def claim(self, inbound_id: int) -> InboundRecord | None:
        """Take the processing lease on a received message; None if it is settled or leased elsewhere."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(InboundRow)
                .where(
                    InboundRow.id == inbound_id,
                    InboundRow.status == RECEIVED,
                    or_(InboundRow.locked_until.is_(None), InboundRow.locked_until < now),
                )
                .values(locked_until=now + self._lease, attempts=InboundRow.attempts + 1, updated_at=now)
            )
            if getattr(result, "rowcount", 0) != 1:
                return None
            row = await session.get(InboundRow, inbound_id)
            assert row is not None
            return _record(row)

    async def due(self, limit: int = 100) -> list[int]:
        """Ids of received messages nobody holds a lease on (crashed or never started)."""
        now = self._clock.now()
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(InboundRow.id)
                .where(
                    InboundRow.status == RECEIVED,
                    or_(InboundRow.locked_until.is_(None), InboundRow.locked_until < now),
                )
                .order_by(InboundRow.id)
                .limit(limit)
            )
            return list(rows.scalars())

    async def settle(self, inbound_id: int, status: str, *, reason: str = "") -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(InboundRow)
                .where(InboundRow.id == inbound_id)
                .values(status=status, reason=reason, locked_until=None, updated_at=self._clock.now())
            )

    async def fail(self, inbound_id: int, error: str) -> str:
        """Count a failed attempt: back to received for a retry, or dead_letter after `max_attempts`."""
        async with self._db.transaction() as session:
            row = await session.get(InboundRow, inbound_id)
            if row is None:
                return DEAD_LETTER
            row.status = DEAD_LETTER if row.attempts >= self.max_attempts else RECEIVED
            row.last_error = truncate(error)
            row.locked_until = None
            row.updated_at = self._clock.now()
            return row.status

    async def get(self, inbound_id: int) -> InboundRecord | None:
        async with self._db.sessions() as session:
            row = await session.get(InboundRow, inbound_id)
            return _record(row) if row else None

    async def dead_letters(self, limit: int = 100) -> list[InboundRecord]:
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(InboundRow).where(InboundRow.status == DEAD_LETTER).order_by(InboundRow.id).limit(limit)
            )
            return [_record(r) for r in rows.scalars()]

    async def requeue(self, inbound_id: int) -> bool:
        """Give a dead letter another chance (`supportbot replay`)."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(InboundRow)
                .where(InboundRow.id == inbound_id, InboundRow.status == DEAD_LETTER)
                .values(status=RECEIVED, attempts=0, locked_until=None, updated_at=self._clock.now())
            )
            return getattr(result, "rowcount", 0) == 1

    async def count_by_status(self) -> dict[str, int]:
        async with self._db.sessions() as session:
            rows = await session.execute(select(InboundRow.status, func.count()).group_by(InboundRow.status))
            return {status: int(n) for status, n in rows.tuples()}
