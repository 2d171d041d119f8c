"""Pending actions in the database: the stored half of the confirm-before-act state machine.

A `PendingAction` is an irreversible action (today: opening a ticket) that a person must confirm. Its state
moves only by compare-and-set (`UPDATE ... WHERE state = expected`), so two replicas, a double click and a
Slack retry race harmlessly: exactly one caller wins each transition.

    pending -> confirmed -> done
    pending -> cancelled | expired

While an action is `confirmed`, `updated_at` is a lease stamp: the caller that moved it there (or took it over)
is running its executor. A caller that finds the stamp older than the lease takes it over, so a crash between
"confirmed" and "done" is finished by whoever comes next, and executors are idempotent on the token.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.messages import Channel, frozen_map
from bot.ports import Clock
from bot.store.db import Database
from bot.store.sql import rowcount
from bot.store.tables import PendingActionRow

PENDING, CONFIRMED, DONE, CANCELLED, EXPIRED = "pending", "confirmed", "done", "cancelled", "expired"
STATES = (PENDING, CONFIRMED, DONE, CANCELLED, EXPIRED)


def new_token() -> str:
    """A random, unguessable action token (192 bits, URL- and Message-ID-safe)."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class PendingAction:
    """A proposed irreversible action, as stored. `preview` holds what the person saw; `result` what it made."""

    token: str
    kind: str
    state: str
    channel: Channel
    conversation_key: str
    requester: str
    confirmers: tuple[str, ...]
    preview: Mapping[str, Any]
    result: Mapping[str, str]
    decided_by: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    message_ref: str = ""

    def may_decide(self, actor: str) -> bool:
        """The requester or one of the listed confirmers (agents); addresses compare case-insensitively."""
        wanted = actor.strip().casefold()
        return bool(wanted) and any(wanted == c.strip().casefold() for c in self.confirmers)


@dataclass(frozen=True, slots=True)
class NewAction:
    """What `ActionStore.create` needs to store a proposal."""

    kind: str
    channel: Channel
    conversation_key: str
    requester: str
    confirmers: Sequence[str]
    preview: Mapping[str, Any]
    ttl: timedelta
    token: str = field(default_factory=new_token)


def _action(row: PendingActionRow) -> PendingAction:
    return PendingAction(
        token=row.token,
        kind=row.kind,
        state=row.state,
        channel=Channel(row.channel),
        conversation_key=row.conversation_key,
        requester=row.requester,
        confirmers=tuple(str(c) for c in row.confirmers or ()),
        preview=dict(row.preview or {}),
        result=frozen_map({str(k): str(v) for k, v in (row.result or {}).items()}),
        decided_by=row.decided_by,
        created_at=row.created_at,
        updated_at=row.updated_at,
        expires_at=row.expires_at,
        message_ref=row.message_ref,
    )


Hook = Callable[[AsyncSession, PendingAction], Awaitable[None]]


class ActionStore:
    """Reads and compare-and-set transitions of `pending_actions`; every method is one short transaction."""

    def __init__(self, db: Database, clock: Clock, *, lease: timedelta = timedelta(minutes=2)) -> None:
        self._db = db
        self._clock = clock
        self.lease = lease

    async def create(self, new: NewAction) -> PendingAction:
        now = self._clock.now()
        row = PendingActionRow(
            token=new.token,
            kind=new.kind,
            state=PENDING,
            channel=new.channel.value,
            conversation_key=new.conversation_key,
            requester=new.requester,
            confirmers=list(dict.fromkeys(new.confirmers)),
            preview=dict(new.preview),
            result={},
            message_ref="",
            decided_by="",
            created_at=now,
            updated_at=now,
            expires_at=now + new.ttl,
        )
        async with self._db.transaction() as session:
            session.add(row)
        return _action(row)

    async def get(self, token: str) -> PendingAction | None:
        async with self._db.sessions() as session:
            row = await session.get(PendingActionRow, token)
            return _action(row) if row else None

    async def confirm(self, token: str, actor: str, on_confirmed: Hook) -> bool:
        """pending -> confirmed for an unexpired action; `on_confirmed` runs in the same transaction.

        The UPDATE is the transaction's first statement, so on SQLite it takes the write lock before reading
        (no stale-snapshot upgrade), and on PostgreSQL the row lock serialises concurrent callers.
        """
        now = self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(PendingActionRow)
                .where(
                    PendingActionRow.token == token,
                    PendingActionRow.state == PENDING,
                    PendingActionRow.expires_at > now,
                )
                .values(state=CONFIRMED, decided_by=actor, updated_at=now)
            )
            if rowcount(result) != 1:
                return False
            row = await session.get(PendingActionRow, token)
            assert row is not None
            await on_confirmed(session, _action(row))
            return True

    async def take_over(self, token: str) -> bool:
        """Take the execution lease of a confirmed action whose previous holder stopped (crashed or failed)."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(PendingActionRow)
                .where(
                    PendingActionRow.token == token,
                    PendingActionRow.state == CONFIRMED,
                    PendingActionRow.updated_at < now - self.lease,
                )
                .values(updated_at=now)
            )
            return rowcount(result) == 1

    async def release(self, token: str) -> None:
        """Give up the execution lease at once (the executor failed), so the next caller retries right away."""
        async with self._db.transaction() as session:
            await session.execute(
                update(PendingActionRow)
                .where(PendingActionRow.token == token, PendingActionRow.state == CONFIRMED)
                .values(updated_at=self._clock.now() - self.lease - timedelta(seconds=1))
            )

    async def finish(self, token: str, result: Mapping[str, str], on_done: Hook) -> bool:
        """confirmed -> done with the executor's result; `on_done` runs in the same transaction."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            outcome = await session.execute(
                update(PendingActionRow)
                .where(PendingActionRow.token == token, PendingActionRow.state == CONFIRMED)
                .values(state=DONE, result=dict(result), updated_at=now)
            )
            if getattr(outcome, "rowcount", 0) != 1:
                return False
            row = await session.get(PendingActionRow, token)
            assert row is not None
            await on_done(session, _action(row))
            return True

    async def cancel(self, token: str, actor: str) -> bool:
        now = self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(PendingActionRow)
                .where(PendingActionRow.token == token, PendingActionRow.state == PENDING)
                .values(state=CANCELLED, decided_by=actor, updated_at=now)
            )
            return rowcount(result) == 1

    async def expire(self, token: str | None = None) -> int:
        """pending -> expired for actions past their expiry (one token, or all of them); returns how many."""
        now = self._clock.now()
        condition = [PendingActionRow.state == PENDING, PendingActionRow.expires_at <= now]
        if token is not None:
            condition.append(PendingActionRow.token == token)
        async with self._db.transaction() as session:
            result = await session.execute(
                update(PendingActionRow).where(*condition).values(state=EXPIRED, updated_at=now)
            )
            return rowcount(result)

    async def stalled(self, limit: int = 50) -> list[str]:
        """Tokens of confirmed actions whose lease has lapsed: a crash or a failure left them unfinished."""
        cutoff = self._clock.now() - self.lease
        async with self._db.sessions() as session:
            rows = await session.execute(
                select(PendingActionRow.token)
                .where(PendingActionRow.state == CONFIRMED, PendingActionRow.updated_at < cutoff)
                .order_by(PendingActionRow.updated_at)
                .limit(limit)
            )
            return list(rows.scalars())

    async def count_by_state(self) -> dict[str, int]:
        async with self._db.sessions() as session:
            rows = await session.execute(select(PendingActionRow.state, func.count()).group_by(PendingActionRow.state))
            return {state: int(n) for state, n in rows.tuples()}


class ActionExecutor(Protocol):
    """Carries out one kind of confirmed action. Register one per kind; `execute` must be idempotent on the token.

    `on_confirmed` and `on_done` run inside the state transition's transaction (e.g. to reserve and then settle
    a ticket row, or to queue a notice through the outbox), so their effects commit with the transition.
    """

    kind: str

    async def on_confirmed(self, session: AsyncSession, action: PendingAction) -> None: ...

    async def execute(self, action: PendingAction) -> Mapping[str, str]: ...

    async def on_done(self, session: AsyncSession, action: PendingAction) -> None: ...

    def describe(self, result: Mapping[str, str]) -> str:
        """How the result reads to a person ("ticket #123"), for "This was already confirmed: ..."."""
        ...
