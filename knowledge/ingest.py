"""Incremental, crash-safe ingestion: files -> Documents -> structure-aware chunks -> embeddings -> the vector store.

The bookkeeping (which document was indexed at which content hash, in how many chunks) lives behind the
`DocumentStates` port: the database in production, shared by every replica (see `bot.store.documents`). Each run
is scoped to its paths (so `ingest docs/a` never deletes what `ingest docs/b` added), and works one document at a
time, in an order that survives a kill at any point:

1. claim the document (compare-and-set; a document another replica is indexing is left to it),
2. chunk and embed it, write the new chunks (their ids derive from document, content hash and position, so a
   retry overwrites instead of duplicating),
3. delete the document's other chunks (older versions, leftovers of a killed run),
4. record the new hash and chunk count.

"Unchanged" is checked against the index, not only the state: a document whose recorded hash matches but whose
chunk count in the index differs (a kill, a lost or rebuilt index) is indexed again. A file that exists but cannot
be read or chunked keeps its old chunks (a transient parse failure must not wipe an article) and is reported as
skipped; a file that no longer exists disappears from the index. One document never stops a run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import structlog
from llama_index.core.ingestion import run_transformations
from llama_index.core.schema import BaseNode, Document, MetadataMode
from llama_index.core.vector_stores.types import BasePydanticVectorStore

from bot.ports import DocumentState, DocumentStates, Embedder
from knowledge.chunking import CHUNK_OVERLAP, CHUNK_TOKENS, node_parsers
from knowledge.heap import release_free_memory
from knowledge.readers import SUPPORTED, Origin, SkipFile, read_file
from knowledge.sparse import FORMAT as SPARSE_FORMAT

log = structlog.get_logger(__name__)

CLAIM_SECONDS = 600.0  # a replica that died mid-document is taken over after this (its own holder: at once)
FILE_BATCH = 64  # files read and looked up together; only one batch of documents is in memory at a time
_CHUNK_IDS = uuid.UUID("0b6f1d36-6a4e-4c43-9a57-4d2b7b1c9e10")  # namespace of the derived chunk ids


class CountingStore(Protocol):
    """What ingestion needs from a vector store besides LlamaIndex's interface."""

    def count(self, ref_doc_id: str | None = None) -> int: ...

    def delete_except(self, ref_doc_id: str, keep: Sequence[str]) -> None:
        """Delete the document's chunks whose ids are not in `keep`."""
        ...

    def flush(self) -> None: ...

    def reload(self) -> None:
        """Make the index's statistics (BM25's IDF) forget deleted and overwritten points."""
        ...


# How a document's chunks are computed (chunk size and overlap, BM25 term weights). It is recorded with each
# document's content hash, so a release that changes any of it re-indexes every document on the next sync instead
# of leaving old chunks scored the old way.
INDEX_FORMAT = f"chunks({CHUNK_TOKENS},{CHUNK_OVERLAP});{SPARSE_FORMAT}"


def indexed_hash(content_hash: str) -> str:
    """What the ingestion state records for a document indexed now: a digest of its content hash and the format."""
    return hashlib.sha256(f"{content_hash}|{INDEX_FORMAT}".encode()).hexdigest()


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
    docs_repaired: int = 0  # hash unchanged, but chunks were missing from the index: indexed again
    docs_elsewhere: int = 0  # being indexed by another replica: left to it

    def summary(self) -> str:
        """A few lines for a person: counts first, then one line per skipped file."""
        lines = [
            f"{self.files_seen} files: {self.docs_added} added, {self.docs_updated} updated, "
            f"{self.docs_unchanged} unchanged, {self.docs_deleted} deleted, {self.files_skipped} skipped; "
            f"{self.chunks_added} chunks added, {self.chunks_deleted} removed ({self.seconds:.1f} s)"
        ]
        if self.docs_repaired:
            lines.append(f"{self.docs_repaired} unchanged files had chunks missing from the index: indexed again")
        if self.docs_elsewhere:
            lines.append(f"{self.docs_elsewhere} files were being indexed by another replica: left to it")
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
    """Runs ingestion over paths against one vector store and the shared ingestion state (async; blocking store
    and file work runs in worker threads, embedding goes through the `Embedder` port)."""

    def __init__(
        self,
        store: BasePydanticVectorStore,
        embedder: Embedder,
        tokenizer: Callable[[str], list[Any]],
        states: DocumentStates,
        holder: str,
        base_url: str = "",
    ) -> None:
        self._store = store
        self._counting: CountingStore = store  # type: ignore[assignment]
        self._embedder = embedder
        self._parsers = node_parsers(tokenizer)
        self._states = states
        self._holder = holder
        self._base_url = base_url

    async def run(self, paths: Sequence[Path], progress: bool = False) -> IngestReport:
        started = time.perf_counter()
        files, skipped = await asyncio.to_thread(collect_files, paths)
        tally = _Tally()
        bar = _progress_bar(len(files), progress)
        try:
            for batch in _batches(files, FILE_BATCH):
                documents = await asyncio.to_thread(self._read, batch, skipped)
                known = await self._states.get([doc.id_ for doc in documents])
                for doc in documents:
                    await self._sync_document(doc, known.get(doc.id_), tally, skipped)
                if bar is not None:
                    bar.update(len(batch))
        finally:
            if bar is not None:
                bar.close()
        await self._remove_vanished(paths, {str(file.path) for file in files}, tally)
        await asyncio.to_thread(self._counting.flush)
        if tally.chunks_deleted or tally.repaired:
            await asyncio.to_thread(self._counting.reload)
        await asyncio.to_thread(release_free_memory)  # the engine's and the model's freed buffers, back to the OS
        for item in skipped:
            log.warning("knowledge.ingest_skipped", path=item.path, reason=item.reason)
        report = IngestReport(
            files_seen=len(files),
            files_skipped=len(skipped),
            chunks_added=tally.chunks_added,
            chunks_deleted=tally.chunks_deleted,
            docs_unchanged=tally.unchanged,
            skipped=tuple(skipped),
            docs_added=tally.added,
            docs_updated=tally.updated,
            docs_deleted=tally.deleted,
            seconds=time.perf_counter() - started,
            docs_repaired=tally.repaired,
            docs_elsewhere=tally.elsewhere,
        )
        log.info(
            "knowledge.ingested",
            files=report.files_seen,
            skipped=report.files_skipped,
            chunks_added=report.chunks_added,
            chunks_deleted=report.chunks_deleted,
            unchanged=report.docs_unchanged,
            repaired=report.docs_repaired,
            elsewhere=report.docs_elsewhere,
            seconds=round(report.seconds, 2),
        )
        return report

    def _read(self, files: Sequence[KBFile], skipped: list[Skipped]) -> list[Document]:
        documents: list[Document] = []
        for file in files:
            try:
                documents.append(read_file(file.path, Origin(file.relative, self._base_url)))
            except SkipFile as exc:
                skipped.append(Skipped(str(file.path), str(exc)))
            except OSError as exc:
                skipped.append(Skipped(str(file.path), f"cannot read ({type(exc).__name__})"))
        return documents

    async def _sync_document(
        self, doc: Document, state: DocumentState | None, tally: _Tally, skipped: list[Skipped]
    ) -> None:
        """Bring one document's chunks in the index up to date (claim, write new, delete old, record)."""
        same_hash = state is not None and state.status == "indexed" and state.content_hash == indexed_hash(doc.hash)
        if same_hash and state is not None and await asyncio.to_thread(self._counting.count, doc.id_) == state.chunks:
            tally.unchanged += 1
            return
        if not await self._states.claim(doc.id_, self._holder, state, CLAIM_SECONDS):
            tally.elsewhere += 1
            return
        try:
            nodes = self._chunk(doc, skipped)
            if nodes is None:
                await self._states.release(doc.id_, self._holder)
                return
            vectors = await self._embedder.embed([node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes])
            for node, vector in zip(nodes, vectors, strict=True):
                node.embedding = vector
            deleted = await asyncio.to_thread(self._replace, doc.id_, nodes)
        except BaseException:
            await self._release_quietly(doc.id_)
            raise
        await self._states.finish(doc.id_, self._holder, indexed_hash(doc.hash), len(nodes))
        tally.chunks_added += len(nodes)
        tally.chunks_deleted += deleted
        if same_hash:
            tally.repaired += 1
        elif state is None or not state.content_hash:
            tally.added += 1
        else:
            tally.updated += 1

    def _chunk(self, doc: Document, skipped: list[Skipped]) -> list[BaseNode] | None:
        """The document's chunks with ids derived from (document, hash, position); None (and a `skipped` entry)
        when it cannot be chunked: one pathological page (LlamaIndex raises on metadata longer than a chunk,
        parsers on odd input) must not stop the whole run."""
        try:
            nodes = list(run_transformations([doc], self._parsers))
        except Exception as exc:  # any parser failure on one document: report it, keep going
            skipped.append(Skipped(doc.id_, f"cannot be chunked ({type(exc).__name__}: {_one_line(exc)})"))
            return None
        nodes = [node for node in nodes if node.get_content().strip()]
        if not nodes:
            skipped.append(Skipped(doc.id_, "no text after chunking"))
            return None
        for position, node in enumerate(nodes):
            node.id_ = str(uuid.uuid5(_CHUNK_IDS, f"{doc.id_}\n{doc.hash}\n{position}"))
        return nodes

    def _replace(self, doc_id: str, nodes: Sequence[BaseNode]) -> int:
        """Write the new chunks, then delete every other chunk of the document; return how many were deleted."""
        self._store.add(list(nodes))
        before = self._counting.count(doc_id)
        self._counting.delete_except(doc_id, [node.node_id for node in nodes])
        return max(0, before - len(nodes))

    async def _release_quietly(self, doc_id: str) -> None:
        try:
            await self._states.release(doc_id, self._holder)
        except Exception as exc:  # the claim then runs out (CLAIM_SECONDS); our own holder retakes it at once
            log.warning("knowledge.claim_not_released", error=type(exc).__name__)

    async def _remove_vanished(self, paths: Sequence[Path], seen: set[str], tally: _Tally) -> None:
        """Remove the chunks of recorded documents under `paths` whose files are gone (and tombstone them, so a
        replica whose own index still holds their chunks removes them too)."""
        for root in {str(p.expanduser().resolve()) for p in paths}:
            for state in await self._states.under(root):
                doc_id = state.doc_id
                under = doc_id == root or doc_id.startswith(root + os.sep)
                if not under or doc_id in seen or await asyncio.to_thread(Path(doc_id).exists):
                    continue
                chunks = await asyncio.to_thread(self._counting.count, doc_id)
                if chunks:
                    await asyncio.to_thread(self._store.delete, doc_id)
                    tally.chunks_deleted += chunks
                if state.status != "deleted":
                    await self._states.mark_deleted(doc_id)
                    tally.deleted += 1


@dataclass(slots=True)
class _Tally:
    added: int = 0
    updated: int = 0
    repaired: int = 0
    unchanged: int = 0
    elsewhere: int = 0
    deleted: int = 0
    chunks_added: int = 0
    chunks_deleted: int = 0


class ProcessStates:
    """`DocumentStates` in this process's memory, for a throwaway index (the evals' temporary folders, benches):
    nothing outlives the process, so a service always gets the database's `DocumentStateStore` instead."""

    def __init__(self) -> None:
        self._rows: dict[str, DocumentState] = {}

    async def get(self, doc_ids: Sequence[str]) -> dict[str, DocumentState]:
        return {doc_id: self._rows[doc_id] for doc_id in doc_ids if doc_id in self._rows}

    async def under(self, prefix: str) -> list[DocumentState]:
        return [state for doc_id, state in sorted(self._rows.items()) if doc_id.startswith(prefix)]

    async def claim(self, doc_id: str, holder: str, seen: DocumentState | None, lease_seconds: float) -> bool:
        now = datetime.now(UTC)
        current = self._rows.get(doc_id)
        if current != seen:
            return False
        base = current or DocumentState(doc_id, "", 0, "indexing", holder, 0, None, now)
        lease = now + timedelta(seconds=lease_seconds)
        self._rows[doc_id] = _moved(base, status="indexing", holder=holder, lease_until=lease)
        return True

    async def finish(self, doc_id: str, holder: str, content_hash: str, chunks: int) -> bool:
        current = self._rows.get(doc_id)
        if current is None or current.holder != holder or current.status != "indexing":
            return False
        self._rows[doc_id] = _moved(current, status="indexed", content_hash=content_hash, chunks=chunks)
        return True

    async def release(self, doc_id: str, holder: str) -> None:
        current = self._rows.get(doc_id)
        if current is None or current.holder != holder or current.status != "indexing":
            return
        if current.content_hash:
            self._rows[doc_id] = _moved(current, status="indexed")
        else:
            del self._rows[doc_id]

    async def mark_deleted(self, doc_id: str) -> None:
        if doc_id in self._rows:
            self._rows[doc_id] = _moved(self._rows[doc_id], status="deleted", chunks=0)


def _moved(state: DocumentState, **changes: Any) -> DocumentState:
    from dataclasses import replace

    values = {"lease_until": None, **changes}
    return replace(state, version=state.version + 1, updated_at=datetime.now(UTC), **values)


def index_documents(
    store: BasePydanticVectorStore,
    embed: Callable[[list[str]], list[list[float]]],
    tokenizer: Callable[[str], list[Any]],
    documents: Sequence[Document],
) -> list[BaseNode]:
    """Chunk, embed and add ready-made Documents to a fresh, throwaway index (the BEIR eval's corpus) without
    bookkeeping: blocking, and for an index nobody syncs incrementally."""
    chunks = run_transformations(list(documents), node_parsers(tokenizer))
    nodes = [node for node in chunks if node.get_content().strip()]
    vectors = embed([node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes])
    for node, vector in zip(nodes, vectors, strict=True):
        node.embedding = vector
    store.add(nodes)
    store.flush()  # type: ignore[attr-defined]  # both stores have it (CountingStore)
    return nodes


def _one_line(exc: Exception, limit: int = 100) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _batches(items: Sequence[KBFile], size: int) -> Iterator[Sequence[KBFile]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="Indexing", unit="file")
