"""The inbound ledger: every message we accepted, once, with its processing status.

`record()` stores a message under all the keys it is known by (Slack `event_id` and `channel:ts`, an email's
UID and Message-ID); any key seen before makes it a duplicate, even across replicas, because the keys are a
primary key. Processing takes a lease (`claim`), so a replica that died mid-answer is replaced after the lease
and two replicas never work the same message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

import structlog
from sqlalchemy import Table, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import InboundMessage
from bot.ports import Clock
from bot.store.codec import message_from_json, message_to_json
from bot.store.db import Database
from bot.store.sql import rowcount, truncate
from bot.store.tables import InboundKeyRow, InboundRow

log = structlog.get_logger(__name__)

RECEIVED, ANSWERED, IGNORED, FAILED, DEAD_LETTER = "received", "answered", "ignored", "failed", "dead_letter"
DEADLOCK = "40P01"  # PostgreSQL's SQLSTATE for deadlock_detected
DEADLOCK_RETRIES = 3


@dataclass(frozen=True, slots=True)
class InboundRecord:
    id: int
    status: str
    attempts: int
    message: InboundMessage
    reason: str = ""


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One message for `InboundLedger.record_many`: what `record(message, keys, status=, reason=)` takes."""

    message: InboundMessage
    keys: tuple[str, ...] = ()
    status: str = RECEIVED
    reason: str = ""

    def all_keys(self) -> frozenset[str]:
        """Every key the message is known by, including its own `channel:message_id`."""
        return frozenset({f"{self.message.channel.value}:{self.message.message_id}", *self.keys})


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

    async def record_many(self, entries: Sequence[LedgerEntry]) -> list[int | None]:
        """Group commit: store many messages in ONE transaction; per entry its id, or None for a duplicate.

        Same outcome as calling `record()` for each entry in order: an entry is a duplicate when any of its keys
        was stored before (by anyone: keys are a primary key, so replicas racing on one key wait for each other
        and exactly one wins) or by an entry earlier in `entries`. A round inserts the entries whose keys do not
        overlap an earlier entry's (multi-row INSERT ... ON CONFLICT DO NOTHING RETURNING), then removes those
        that lost a key. An entry that overlapped only losers gets another round, as it would have succeeded
        after those losers' failed `record()`s; rarely needed (a retry and the twin of an event already stored),
        and each round is its own transaction, committed before this returns.
        """
        results: list[int | None] = [None] * len(entries)
        keysets = [entry.all_keys() for entry in entries]
        pending = list(range(len(entries)))
        while pending:
            chosen: list[int] = []
            deferred: list[int] = []
            blocked: set[str] = set()
            for index in pending:
                (deferred if keysets[index] & blocked else chosen).append(index)
                blocked |= keysets[index]
            ids = await self._round([(entries[i], keysets[i]) for i in chosen])
            taken: set[str] = set()
            for index, inbound_id in zip(chosen, ids, strict=True):
                if inbound_id is not None:
                    results[index] = inbound_id
                    taken |= keysets[index]
            pending = [i for i in deferred if not keysets[i] & taken]
        return results

    async def _round(self, batch: Sequence[tuple[LedgerEntry, frozenset[str]]]) -> list[int | None]:
        """One round in its own transaction. Rows and keys are locked in sorted order, so concurrent rounds cannot
        deadlock; should PostgreSQL still report one (it aborts one side), that round is simply run again."""
        for attempt in range(1, DEADLOCK_RETRIES + 1):
            try:
                async with self._db.transaction() as session:
                    return await self._insert_round(session, batch, self._clock.now())
            except DBAPIError as exc:
                if getattr(exc.orig, "sqlstate", None) != DEADLOCK or attempt == DEADLOCK_RETRIES:
                    raise
                log.warning("inbound.deadlock_retried", attempt=attempt, size=len(batch))
        raise AssertionError("unreachable")

    async def _insert_round(
        self, session: AsyncSession, batch: Sequence[tuple[LedgerEntry, frozenset[str]]], now: datetime
    ) -> list[int | None]:
        """Insert entries whose keys are pairwise disjoint; the id of each one that got all its keys, else None."""
        insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
        rows = sorted(
            (
                {
                    "channel": entry.message.channel.value,
                    "message_id": entry.message.message_id,
                    "conversation_key": entry.message.conversation_key,
                    "status": entry.status,
                    "attempts": 0,
                    "locked_until": None,
                    "payload": message_to_json(entry.message),
                    "reason": entry.reason,
                    "last_error": "",
                    "created_at": now,
                    "updated_at": now,
                }
                for entry, _keys in batch
            ),
            key=lambda row: (row["channel"], row["message_id"]),
        )
        inbound = cast(Table, InboundRow.__table__)
        result = await session.execute(
            insert(inbound).on_conflict_do_nothing().returning(inbound.c.id, inbound.c.channel, inbound.c.message_id),
            rows,
        )
        row_ids: dict[tuple[str, str], int] = {(channel, mid): int(i) for i, channel, mid in result.tuples()}
        ids = [row_ids.get((entry.message.channel.value, entry.message.message_id)) for entry, _keys in batch]
        key_rows: list[dict[str, Any]] = sorted(
            (
                {"key": key, "inbound_id": inbound_id, "created_at": now}
                for (_entry, keys), inbound_id in zip(batch, ids, strict=True)
                if inbound_id is not None
                for key in keys
            ),
            key=lambda row: str(row["key"]),
        )
        if not key_rows:
            return ids
        key_table = cast(Table, InboundKeyRow.__table__)
        result = await session.execute(insert(key_table).on_conflict_do_nothing().returning(key_table.c.key), key_rows)
        stored = set(result.scalars())
        losers = [i for (_entry, keys), i in zip(batch, ids, strict=True) if i is not None and not keys <= stored]
        if losers:  # a key was taken before: a duplicate, as `record()` would say; remove what it did insert
            await session.execute(delete(InboundKeyRow).where(InboundKeyRow.inbound_id.in_(losers)))
            await session.execute(delete(InboundRow).where(InboundRow.id.in_(losers)))
        lost = set(losers)
        return [None if i in lost else i for i in ids]

    async def seen(self, key: str) -> bool:
        async with self._db.sessions() as session:
            return (await session.get(InboundKeyRow, key)) is not None

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
            if rowcount(result) != 1:
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
            return rowcount(result) == 1

    async def count_by_status(self) -> dict[str, int]:
        async with self._db.sessions() as session:
            rows = await session.execute(select(InboundRow.status, func.count()).group_by(InboundRow.status))
            return {status: int(n) for status, n in rows.tuples()}
