"""Incremental ingestion: files -> Documents -> structure-aware chunks -> embeddings -> the vector store.

LlamaIndex's `IngestionPipeline` with a docstore (`UPSERTS` strategy) does the content-hash bookkeeping: a document
whose hash is in the docstore is skipped, so a second run over an unchanged folder embeds nothing. Changes and
deletions are handled here, scoped to the paths of this run (so `ingest docs/a` never deletes what `ingest docs/b`
added): a changed file's old chunks are deleted before its new ones are added, and a file that no longer exists
disappears from the store and the docstore. A file that exists but cannot be read keeps its old chunks (a
transient parse failure must not wipe an article); it is reported as skipped.

One document never stops a run: each changed or new document is chunked on its own first, and one that cannot be
read or chunked is skipped with a one-line reason while the rest are indexed.
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
from knowledge.readers import SUPPORTED, Origin, SkipFile, read_file

log = structlog.get_logger(__name__)


class CountingStore(Protocol):
    """What ingestion needs from a vector store besides LlamaIndex's interface."""

    def count(self, ref_doc_id: str | None = None) -> int: ...

    def flush(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Skipped:
    """A file (or path) that was not ingested, and why, in one line."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class IngestReport:
    """What one ingestion run did; `skipped` names every file that was not ingested, with its reason."""

    files_seen: int
    files_skipped: int
    chunks_added: int
    chunks_deleted: int
    docs_unchanged: int
    skipped: tuple[Skipped, ...] = ()
    docs_added: int = 0
    docs_updated: int = 0
    docs_deleted: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        """A few lines for a person: counts first, then one line per skipped file."""
        lines = [
            f"{self.files_seen} files: {self.docs_added} added, {self.docs_updated} updated, "
            f"{self.docs_unchanged} unchanged, {self.docs_deleted} deleted, {self.files_skipped} skipped; "
            f"{self.chunks_added} chunks added, {self.chunks_deleted} removed ({self.seconds:.1f} s)"
        ]
        if self.skipped:
            lines.append("Skipped:")
            lines += [f"  {item}" for item in self.skipped]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class KBFile:
    """A file to ingest and its place under the folder it was found in."""

    path: Path
    relative: str


def collect_files(paths: Sequence[Path]) -> tuple[list[KBFile], list[Skipped]]:
    """Supported files under the given paths (hidden files and folders left out), and entries for missing paths."""
    files: list[KBFile] = []
    missing: list[Skipped] = []
    for raw in paths:
        path = raw.expanduser().resolve()
        if path.is_file():
            files.append(KBFile(path, path.name))
        elif path.is_dir():
            for candidate in sorted(path.rglob("*")):
                relative = candidate.relative_to(path).parts
                if any(part.startswith(".") for part in relative) or not candidate.is_file():
                    continue
                if candidate.suffix.lower() in SUPPORTED:
                    files.append(KBFile(candidate, "/".join(relative)))
        else:
            missing.append(Skipped(str(raw), "not found"))
    return files, missing


class Ingestor:
    """Runs ingestion over paths against one vector store and its persisted docstore (blocking; use a thread)."""

    def __init__(
        self,
        store: BasePydanticVectorStore,
        embed_model: BaseEmbedding,
        tokenizer: Callable[[str], list[Any]],
        docstore_path: Path,
        base_url: str = "",
    ) -> None:
        self._store = store
        self._counting: CountingStore = store  # type: ignore[assignment]
        self._embed_model = embed_model
        self._tokenizer = tokenizer
        self._docstore_path = docstore_path
        self._base_url = base_url
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
        documents: list[Document] = []
        for file in _progress(files, progress, "Reading files"):
            try:
                documents.append(read_file(file.path, Origin(file.relative, self._base_url)))
            except SkipFile as exc:
                skipped.append(Skipped(str(file.path), str(exc)))
            except OSError as exc:
                skipped.append(Skipped(str(file.path), f"cannot read ({type(exc).__name__})"))
        unchanged, changed, new = self._partition(documents)
        changed, new = self._chunkable(changed, skipped), self._chunkable(new, skipped)
        for item in skipped:
            log.warning("knowledge.ingest_skipped", path=item.path, reason=item.reason)
        deleted_chunks = sum(self._forget(doc.id_) for doc in changed)
        # a "new" document may still have points (docstore lost, another replica ingested): replace, never duplicate
        deleted_chunks += sum(self._forget(doc.id_) for doc in new if self._counting.count(doc.id_))
        gone = self._vanished(paths, {str(file.path) for file in files})
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

    def _chunkable(self, documents: list[Document], skipped: list[Skipped]) -> list[Document]:
        """The documents that chunk within bounds; each one that does not goes to `skipped` with its reason.

        Chunking is cheap next to embedding, so each document is chunked on its own here: one pathological page
        (LlamaIndex raises on metadata longer than a chunk, parsers on odd input) must not stop the whole run.
        """
        from llama_index.core.ingestion import run_transformations

        parsers = node_parsers(self._tokenizer)
        fit = []
        for doc in documents:
            try:
                chunks = run_transformations([doc], parsers)
            except Exception as exc:  # any parser failure on one document: report it, keep going
                skipped.append(Skipped(doc.id_, f"cannot be chunked ({type(exc).__name__}: {_one_line(exc)})"))
                continue
            if not any(chunk.get_content().strip() for chunk in chunks):
                skipped.append(Skipped(doc.id_, "no text after chunking"))
                continue
            fit.append(doc)
        return fit

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


def _one_line(exc: Exception, limit: int = 100) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _progress(items: Iterable[KBFile], enabled: bool, label: str) -> Iterable[KBFile]:
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(list(items), desc=label, unit="file")
