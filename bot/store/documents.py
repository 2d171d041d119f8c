"""The knowledge index's ingestion state in the database (`bot.ports.DocumentStates`), one row per document.

Why the database and not LlamaIndex's JSON docstore: every replica sees the same state, a write is a transaction
(a full disk or a kill leaves the previous row, never a truncated file), and a claim is a compare-and-set on the
row's `version`, so two replicas syncing one folder embed each changed document once. A claim carries a lease:
a replica that died mid-document is taken over when the lease has run out, or at once by its own holder name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.ports import Clock, DocumentState, DocumentStatus
from bot.store.db import Database
from bot.store.sql import rowcount
from bot.store.tables import IngestedDocumentRow

_LOOKUP_BATCH = 500  # ids per IN (...) lookup: far below every driver's parameter limit


class DocumentStateStore:
    """Ingestion state of one index (`collection`: QDRANT_COLLECTION), shared by every replica."""

    def __init__(self, db: Database, clock: Clock, collection: str) -> None:
        self._db = db
        self._clock = clock
        self._collection = collection

    async def get(self, doc_ids: Sequence[str]) -> dict[str, DocumentState]:
        found: dict[str, DocumentState] = {}
        ids = list(dict.fromkeys(doc_ids))
        async with self._db.sessions() as session:
            for start in range(0, len(ids), _LOOKUP_BATCH):
                rows = await session.scalars(
                    select(IngestedDocumentRow).where(
                        IngestedDocumentRow.collection == self._collection,
                        IngestedDocumentRow.doc_id.in_(ids[start : start + _LOOKUP_BATCH]),
                    )
                )
                found.update((row.doc_id, _state(row)) for row in rows)
        return found

    async def under(self, prefix: str) -> list[DocumentState]:
        async with self._db.sessions() as session:
            rows = await session.scalars(
                select(IngestedDocumentRow)
                .where(
                    IngestedDocumentRow.collection == self._collection,
                    IngestedDocumentRow.doc_id.startswith(prefix, autoescape=True),
                )
                .order_by(IngestedDocumentRow.doc_id)
            )
            return [_state(row) for row in rows]

    async def claim(self, doc_id: str, holder: str, seen: DocumentState | None, lease_seconds: float) -> bool:
        now = self._clock.now()
        lease = now + timedelta(seconds=lease_seconds)
        if seen is None:
            try:
                async with self._db.transaction() as session:
                    session.add(
                        IngestedDocumentRow(
                            collection=self._collection,
                            doc_id=doc_id,
                            status="indexing",
                            holder=holder,
                            version=1,
                            lease_until=lease,
                            updated_at=now,
                        )
                    )
                return True
            except IntegrityError:
                return False  # another replica recorded it first
        row = IngestedDocumentRow
        async with self._db.transaction() as session:
            result = await session.execute(
                update(row)
                .where(
                    row.collection == self._collection,
                    row.doc_id == doc_id,
                    row.version == seen.version,
                    or_(row.status != "indexing", row.holder == holder, row.lease_until < now),
                )
                .values(status="indexing", holder=holder, lease_until=lease, version=row.version + 1, updated_at=now)
            )
            return rowcount(result) == 1

    async def finish(self, doc_id: str, holder: str, content_hash: str, chunks: int) -> bool:
        return await self._settle(doc_id, holder, "indexed", content_hash=content_hash, chunks=chunks)

    async def release(self, doc_id: str, holder: str) -> None:
        row = IngestedDocumentRow
        mine = (row.collection == self._collection, row.doc_id == doc_id, row.holder == holder)
        async with self._db.transaction() as session:
            # never indexed: forget the row; indexed before: that version still stands
            await session.execute(delete(row).where(*mine, row.status == "indexing", row.content_hash == ""))
            await session.execute(
                update(row)
                .where(*mine, row.status == "indexing")
                .values(status="indexed", lease_until=None, version=row.version + 1, updated_at=self._clock.now())
            )

    async def mark_deleted(self, doc_id: str) -> None:
        row = IngestedDocumentRow
        async with self._db.transaction() as session:
            await session.execute(
                update(row)
                .where(row.collection == self._collection, row.doc_id == doc_id)
                .values(status="deleted", chunks=0, lease_until=None, version=row.version + 1)
                .values(updated_at=self._clock.now())
            )

    async def _settle(self, doc_id: str, holder: str, status: DocumentStatus, **values: object) -> bool:
        row = IngestedDocumentRow
        async with self._db.transaction() as session:
            result = await session.execute(
                update(row)
                .where(
                    row.collection == self._collection,
                    row.doc_id == doc_id,
                    row.holder == holder,
                    row.status == "indexing",
                )
                .values(status=status, lease_until=None, version=row.version + 1, **values)
                .values(updated_at=self._clock.now())
            )
            return rowcount(result) == 1


def _state(row: IngestedDocumentRow) -> DocumentState:
    status: DocumentStatus = row.status  # type: ignore[assignment]  # only this module writes it
    return DocumentState(
        doc_id=row.doc_id,
        content_hash=row.content_hash,
        chunks=row.chunks,
        status=status,
        holder=row.holder,
        version=row.version,
        lease_until=row.lease_until,
        updated_at=row.updated_at,
    )
