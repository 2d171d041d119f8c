"""The operator audit log: who did what to what, and when (console logins, verdicts, replays, admin API).

Rows hold identifiers and counts only, never customer text, so the log can be kept longer than message bodies.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from bot.ports import Clock
from bot.store.db import Database
from bot.store.tables import AuditRow


def key_id(key: str) -> str:
    """How the audit log names a key: a prefix of its SHA-256, safe to log and show, never the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    actor: str
    action: str
    target: str
    detail: dict[str, Any]
    created_at: datetime


class AuditLog:
    """Appends operator actions to `audit_log` and lists them newest first (keyset: `before` an id)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(self, actor: str, action: str, target: str = "", detail: dict[str, Any] | None = None) -> None:
        async with self._db.transaction() as session:
            session.add(
                AuditRow(
                    actor=actor[:320],
                    action=action[:64],
                    target=target[:512],
                    detail=dict(detail or {}),
                    created_at=self._clock.now(),
                )
            )

    async def recent(self, limit: int = 50, before: int | None = None) -> list[AuditEntry]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if before is not None:
            query = query.where(AuditRow.id < before)
        async with self._db.sessions() as session:
            rows = (await session.execute(query)).scalars()
            return [AuditEntry(r.id, r.actor, r.action, r.target, dict(r.detail), r.created_at) for r in rows]
