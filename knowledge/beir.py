"""BEIR-format eval folders: loading them, and indexing their corpus in a throwaway index.

A folder holds `corpus.jsonl` ({"_id", "title", "text"}), `queries.jsonl` ({"_id", "text"}), `qrels.tsv` (or
`qrels/test.tsv`: query-id, corpus-id, score), optionally `answers.jsonl` ({"_id" or "id", "answer"}) and
`unanswerable.jsonl` ({"_id", "text"}: in-domain questions the corpus does not answer); a corpus row may carry
`trust` ("community": answered from only with KNOWLEDGE_INCLUDE_COMMUNITY, as in production). Every
loader accepts `_id` (BEIR) and `id` (what some sets ship). The temporary index goes through the same chunking,
embedding and store as production; the service's own index is never touched.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from knowledge.config import KnowledgeConfig
from knowledge.readers import COMMUNITY, NOT_EMBEDDED, SUPPORTED, KBDocument, Origin, SkipFile, read_file


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def row_id(row: Mapping[str, Any]) -> str:
    """A row's id, BEIR's `_id` or a plain `id`."""
    value = row.get("_id", row.get("id"))
    if value is None:
        raise ValueError(f"row without _id or id: {str(row)[:80]}")
    return str(value)


@dataclass(frozen=True, slots=True)
class BeirSet:
    """One eval folder: corpus rows, questions with relevance judgements, and reference answers when present."""

    corpus: tuple[Mapping[str, Any], ...]
    queries: Mapping[str, str]  # only queries with at least one relevant document
    qrels: Mapping[str, Mapping[str, int]]
    answers: Mapping[str, str]
    unanswerable: Mapping[str, str]  # in-domain questions the corpus cannot answer (`unanswerable.jsonl`, optional)


def load_beir(folder: Path) -> BeirSet:
    qrels_path = folder / "qrels.tsv"
    if not qrels_path.exists():
        qrels_path = folder / "qrels" / "test.tsv"
    qrels: dict[str, dict[str, int]] = {}
    for number, line in enumerate(qrels_path.read_text(encoding="utf-8").splitlines()):
        parts = line.strip().split("\t")
        if len(parts) < 2 or (number == 0 and not parts[-1].strip().lstrip("-").isdigit()):
            continue  # header
        score = int(parts[2]) if len(parts) > 2 else 1
        if score > 0:
            qrels.setdefault(parts[0], {})[parts[1]] = score
    queries = {row_id(row): str(row["text"]) for row in _jsonl(folder / "queries.jsonl") if row_id(row) in qrels}
    answers_path = folder / "answers.jsonl"
    answers = {row_id(row): str(row["answer"]) for row in _jsonl(answers_path)} if answers_path.exists() else {}
    unanswerable_path = folder / "unanswerable.jsonl"
    unanswerable = (
        {row_id(row): str(row["text"]) for row in _jsonl(unanswerable_path)} if unanswerable_path.exists() else {}
    )
    return BeirSet(tuple(_jsonl(folder / "corpus.jsonl")), queries, qrels, answers, unanswerable)


def knowledge_base_corpus(root: Path) -> list[dict[str, str]]:
    """A knowledge-base folder as corpus rows, read by the same readers as ingestion (`_id` = the path under `root`):
    an eval over them scores the text the service indexes (an HTML page's tables as Markdown rows, front matter
    out, community tips marked), not a hand-flattened copy."""
    rows = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED):
        relative = path.relative_to(root).as_posix()
        try:
            document = read_file(path, Origin(relative=relative))
        except SkipFile:
            continue
        row = {"_id": relative, "title": str(document.metadata["title"]), "text": document.text}
        if document.metadata.get("trust") == COMMUNITY:
            row["trust"] = COMMUNITY
        rows.append(row)
    return rows


def corpus_documents(corpus: Collection[Mapping[str, Any]], leave_out: Collection[str] = ()) -> list[KBDocument]:
    """Corpus rows as Documents (id and source = the row id), without empty rows and the ids in `leave_out`."""
    documents = []
    for row in corpus:
        doc_id = row_id(row)
        text = str(row.get("text") or "")
        if not text.strip() or doc_id in leave_out:
            continue
        documents.append(
            KBDocument(
                id_=doc_id,
                text=text,
                metadata={
                    "title": str(row.get("title") or ""),
                    "source": doc_id,
                    "url": "",
                    "updated_at": "",
                    "file_type": "beir",
                    **({"trust": str(row["trust"])} if row.get("trust") else {}),
                },
                excluded_embed_metadata_keys=list(NOT_EMBEDDED),
                excluded_llm_metadata_keys=list(NOT_EMBEDDED),
            )
        )
    return documents


@dataclass(frozen=True, slots=True)
class EvalIndex:
    """A temporary index: the service over it, and which document each chunk came from (citations name pages by
    title or URL, so the eval maps their chunk ids back to corpus ids)."""

    service: Any  # knowledge.service.KnowledgeService (imported lazily: the service imports the eval's callers)
    chunk_documents: Mapping[str, str]


@contextmanager
def temporary_index(
    corpus: Collection[Mapping[str, Any]], config: KnowledgeConfig, leave_out: Collection[str] = ()
) -> Iterator[EvalIndex]:
    """The corpus (minus `leave_out`) ingested into a temporary embedded index."""
    from knowledge.service import build_knowledge  # lazy: service -> engine -> calibration -> beir cycle

    with tempfile.TemporaryDirectory(prefix="supportbot-eval-") as tmp:
        service = build_knowledge(replace(config, qdrant_url="", qdrant_collection="eval"), root=Path(tmp))
        try:
            nodes = service.index_documents(corpus_documents(corpus, leave_out))
            yield EvalIndex(service, {node.node_id: node.ref_doc_id or "" for node in nodes})
        finally:
            service.close_blocking()
