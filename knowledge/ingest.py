"""Incremental ingestion: files -> Documents -> structure-aware chunks -> embeddings -> the vector store.

LlamaIndex's `IngestionPipeline` with a docstore (`UPSERTS` strategy) does the content-hash bookkeeping: a document
whose hash is in the docstore is skipped, so a second run over an unchanged folder embeds nothing. Changes and
deletions are handled here, scoped to the paths of this run (so `ingest docs/a` never deletes what `ingest docs/b`
added): a changed file's old chunks are deleted before its new ones are added, and a file that no longer exists
disappears from the store and the docstore. A file that exists but cannot be read keeps its old chunks (a
transient parse failure must not wipe an article); it is reported as skipped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.ingestion import DocstoreStrategy, IngestionPipeline
from llama_index.core.schema import BaseNode, Document
from llama_index.core.storage.docstore import SimpleDocumentStore
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from knowledge.chunking import node_parsers
from knowledge.readers import SUPPORTED, SkipFile, read_file

log = structlog.get_logger(__name__)


class CountingStore(Protocol):
    """What ingestion needs from a vector store besides LlamaIndex's interface."""

    def count(self, ref_doc_id: str | None = None) -> int: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ingestion run did. `skipped` holds one "path: reason" line per file that was not ingested."""

    files_seen: int
    files_skipped: int
    chunks_added: int
    chunks_deleted: int
    docs_unchanged: int
    skipped: tuple[str, ...] = ()
    docs_added: int = 0
    docs_updated: int = 0
    docs_deleted: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """One human-readable paragraph: what changed, and each skipped file with its reason."""
        lines = [
            f"{self.files_seen} file(s) seen: {self.docs_added} added, {self.docs_updated} updated, "
            f"{self.docs_deleted} deleted, {self.docs_unchanged} unchanged; {self.chunks_added} chunk(s) written, "
            f"{self.chunks_deleted} removed in {self.seconds:.1f} s"
        ]
        lines += [f"skipped {line}" for line in self.skipped]
        return "\n".join(lines)


def collect_files(paths: Sequence[Path]) -> tuple[list[Path], list[str]]:
    """Supported files under the given paths (hidden files and folders left out), and lines for missing paths."""
    files: list[Path] = []
    missing: list[str] = []
    for raw in paths:
        path = raw.expanduser().resolve()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            for candidate in sorted(path.rglob("*")):
                relative = candidate.relative_to(path).parts
                if any(part.startswith(".") for part in relative) or not candidate.is_file():
                    continue
                if candidate.suffix.lower() in SUPPORTED:
                    files.append(candidate)
        else:
            missing.append(f"{raw}: not found")
    return files, missing


class Ingestor:
    """Runs ingestion over paths against one vector store and its persisted docstore (blocking; use a thread)."""

    def __init__(
        self,
        store: BasePydanticVectorStore,
        embed_model: BaseEmbedding,
        tokenizer: Callable[[str], list[Any]],
        docstore_path: Path,
    ) -> None:
        self._store = store
        self._counting: CountingStore = store  # type: ignore[assignment]
        self._embed_model = embed_model
        self._tokenizer = tokenizer
        self._docstore_path = docstore_path
        self._docstore = self._load_docstore()

    def _load_docstore(self) -> SimpleDocumentStore:
        if self._docstore_path.exists():
            docstore = SimpleDocumentStore.from_persist_path(str(self._docstore_path))
            if docstore.docs and self._counting.count() == 0:
                log.warning("knowledge.docstore_reset", reason="vector store is empty; re-ingesting everything")
                return SimpleDocumentStore()
            return docstore
        return SimpleDocumentStore()

    def run(self, paths: Sequence[Path], progress: bool = False) -> IngestReport:
        started = time.perf_counter()
        files, skipped = collect_files(paths)
        for line in skipped:
            log.warning("knowledge.ingest_skipped", line=line)
        documents: list[Document] = []
        for path in _progress(files, progress, "Reading files"):
            try:
                documents.append(read_file(path))
            except SkipFile as exc:
                skipped.append(f"{path}: {exc}")
                log.warning("knowledge.ingest_skipped", path=str(path), reason=str(exc))
            except OSError as exc:
                skipped.append(f"{path}: cannot read ({type(exc).__name__})")
                log.warning("knowledge.ingest_skipped", path=str(path), reason=type(exc).__name__)
        unchanged, changed, new = self._partition(documents)
        deleted_chunks = sum(self._forget(doc.id_) for doc in changed)
        # a "new" document may still have points (docstore lost, another replica ingested): replace, never duplicate
        deleted_chunks += sum(self._forget(doc.id_) for doc in new if self._counting.count(doc.id_))
        gone = self._vanished(paths, {str(path) for path in files})
        deleted_chunks += sum(self._forget(doc_id) for doc_id in gone)
        nodes = self._pipeline().run(documents=[*changed, *new], show_progress=progress) if changed or new else []
        self._counting.flush()
        self._docstore_path.parent.mkdir(parents=True, exist_ok=True)
        self._docstore.persist(str(self._docstore_path))
        report = IngestReport(
            files_seen=len(files),
            files_skipped=len(skipped),
            chunks_added=len(nodes),
            chunks_deleted=deleted_chunks,
            docs_unchanged=len(unchanged),
            skipped=tuple(skipped),
            docs_added=len(new),
            docs_updated=len(changed),
            docs_deleted=len(gone),
            seconds=time.perf_counter() - started,
        )
        log.info(
            "knowledge.ingested",
            files=report.files_seen,
            skipped=report.files_skipped,
            chunks_added=report.chunks_added,
            chunks_deleted=report.chunks_deleted,
            unchanged=report.docs_unchanged,
            seconds=round(report.seconds, 2),
        )
        return report

    def ingest_documents(self, documents: Sequence[Document], progress: bool = False) -> Sequence[BaseNode]:
        """Ingest ready-made Documents (eval corpora, connectors) through the same pipeline and docstore."""
        _, changed, new = self._partition(list(documents))
        for doc in changed:
            self._forget(doc.id_)
        nodes = self._pipeline().run(documents=[*changed, *new], show_progress=progress)
        self._counting.flush()
        return nodes

    def _pipeline(self) -> IngestionPipeline:
        return IngestionPipeline(
            transformations=[*node_parsers(self._tokenizer), self._embed_model],
            vector_store=self._store,
            docstore=self._docstore,
            docstore_strategy=DocstoreStrategy.UPSERTS,
            disable_cache=True,
        )

    def _partition(self, documents: list[Document]) -> tuple[list[Document], list[Document], list[Document]]:
        unchanged, changed, new = [], [], []
        for doc in documents:
            known = self._docstore.get_document_hash(doc.id_)
            if known is None:
                new.append(doc)
            elif known == doc.hash:
                unchanged.append(doc)
            else:
                changed.append(doc)
        return unchanged, changed, new

    def _forget(self, doc_id: str) -> int:
        """Delete a document's chunks from the store and its entry from the docstore; return the chunks deleted."""
        chunks = self._counting.count(doc_id)
        self._store.delete(doc_id)
        self._docstore.delete_document(doc_id, raise_error=False)
        return chunks

    def _vanished(self, paths: Sequence[Path], seen: set[str]) -> list[str]:
        roots = [p.expanduser().resolve() for p in paths]
        gone = []
        for doc_id in list(self._docstore.docs):
            if doc_id in seen:
                continue
            under = any(doc_id == str(root) or doc_id.startswith(str(root) + os.sep) for root in roots)
            if under and not Path(doc_id).exists():
                gone.append(doc_id)
        return gone


def _progress(items: Iterable[Path], enabled: bool, label: str) -> Iterable[Path]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(list(items), desc=label, unit="file")
