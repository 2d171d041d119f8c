"""The console's document catalog: the documents the index holds, read from the ingestion state every replica
shares (`ingested_documents`), with the chunk count and the time of each one's last indexed version."""

from __future__ import annotations

from pathlib import PurePath

from bot.ports import DocumentStates
from console import DocumentInfo


class IndexCatalog:
    """Implements `console.DocumentCatalog` over the shared ingestion state."""

    def __init__(self, states: DocumentStates) -> None:
        self._states = states

    async def documents(self) -> list[DocumentInfo]:
        return [
            DocumentInfo(
                title=PurePath(state.doc_id).name,
                source=state.doc_id,
                chunks=state.chunks,
                updated=f"{state.updated_at:%Y-%m-%d %H:%M}",
            )
            for state in await self._states.under("")
            if state.status == "indexed"
        ]
