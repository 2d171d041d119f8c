"""The console's document catalog: the documents the index holds (from the ingestion docstore that
`knowledge.build_knowledge` persists under DATA_DIR/knowledge) with each one's chunk count from the vector store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from llama_index.core.storage.docstore import SimpleDocumentStore

from console import DocumentInfo
from knowledge import KnowledgeService


class IndexCatalog:
    """Implements `console.DocumentCatalog` over a `KnowledgeService` and its persisted docstore."""

    def __init__(self, knowledge: KnowledgeService, docstore_path: Path) -> None:
        self._knowledge = knowledge
        self._path = docstore_path

    async def documents(self) -> list[DocumentInfo]:
        docs = await asyncio.to_thread(self._read)
        found = []
        for doc_id, meta in docs:
            chunks = await self._knowledge.chunk_count(doc_id)
            found.append(
                DocumentInfo(
                    title=str(meta.get("title") or doc_id.rsplit("/", 1)[-1]),
                    source=str(meta.get("source") or ""),
                    url=str(meta.get("url") or ""),
                    chunks=chunks,
                    trust=str(meta.get("trust") or ""),
                )
            )
        return sorted(found, key=lambda d: d.source)

    def _read(self) -> list[tuple[str, dict[str, object]]]:
        if not self._path.exists():
            return []
        store = SimpleDocumentStore.from_persist_path(str(self._path))
        return [(doc_id, dict(doc.metadata)) for doc_id, doc in store.docs.items()]
