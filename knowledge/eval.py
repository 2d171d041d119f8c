"""Retrieval eval over BEIR-format folders, and an answer eval with refusal and injection cases.

Retrieval: `corpus.jsonl` ({"_id", "title", "text"}), `queries.jsonl` ({"_id", "text"}) and `qrels.tsv` (or
`qrels/test.tsv`: query-id, corpus-id, score). The corpus goes through the same chunking, embedding and stores as
production, in a temporary index (the service's index is never touched); chunk hits are collapsed to documents
(first rank wins) and scored with R@1, R@5, R@10, MRR@10 and nDCG@10 for BM25-only, dense-only and hybrid.

Answers: `cases.jsonl` lines {"question", "expect": "answer"|"abstain", "must_contain": [...],
"must_not_contain": [...]} run against a knowledge folder; unanswerable questions must abstain, and text planted in
documents ("ignore your instructions and ...") must never show up in answers.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from knowledge.config import KnowledgeConfig
from knowledge.readers import NOT_EMBEDDED, KBDocument
from knowledge.retrieval import Mode

MODES: tuple[tuple[str, Mode], ...] = (("bm25", "sparse"), ("dense", "dense"), ("hybrid", "hybrid"))
METRICS = ("R@1", "R@5", "R@10", "MRR@10", "nDCG@10")


def _jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_beir(folder: Path) -> tuple[list[dict[str, str]], dict[str, str], dict[str, dict[str, int]]]:
    """(corpus rows, {query id: text}, {query id: {doc id: relevance}}); only queries with qrels are kept."""
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
    queries = {str(row["_id"]): row["text"] for row in _jsonl(folder / "queries.jsonl") if str(row["_id"]) in qrels}
    return _jsonl(folder / "corpus.jsonl"), queries, qrels


def score_ranking(ranked: Sequence[str], relevant: dict[str, int]) -> dict[str, float]:
    """Document-level metrics of one ranking against graded relevance."""

    def recall(k: int) -> float:
        return len(set(ranked[:k]) & set(relevant)) / len(relevant)

    mrr = next((1.0 / rank for rank, doc in enumerate(ranked[:10], 1) if doc in relevant), 0.0)
    dcg = sum((2 ** relevant.get(doc, 0) - 1) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:10], 1))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum((2**grade - 1) / math.log2(rank + 1) for rank, grade in enumerate(ideal, 1))
    ndcg = dcg / idcg if idcg else 0.0
    return {"R@1": recall(1), "R@5": recall(5), "R@10": recall(10), "MRR@10": mrr, "nDCG@10": ndcg}


def _corpus_documents(corpus: list[dict[str, str]]) -> list[KBDocument]:
    documents = []
    for row in corpus:
        title = str(row.get("title") or "")
        text = str(row.get("text") or "")
        if not text.strip():
            continue
        documents.append(
            KBDocument(
                id_=str(row["_id"]),
                text=text,
                metadata={"title": title, "source": str(row["_id"]), "url": "", "updated_at": "", "file_type": "beir"},
                excluded_embed_metadata_keys=list(NOT_EMBEDDED),
                excluded_llm_metadata_keys=list(NOT_EMBEDDED),
            )
        )
    return documents


def run_retrieval_eval(folder: Path, config: KnowledgeConfig) -> dict[str, dict[str, float]]:
    """Build a temporary index of the folder's corpus and score BM25-only, dense-only and hybrid retrieval."""
    from knowledge.service import build_knowledge

    corpus, queries, qrels = load_beir(folder)
    with tempfile.TemporaryDirectory(prefix="supportbot-eval-") as tmp:
        local = replace(config, qdrant_url="", qdrant_collection="eval")
        service = build_knowledge(local, root=Path(tmp))
        try:
            ingestor = service.ingestor  # same pipeline as production, on the temporary index
            ingestor.ingest_documents(_corpus_documents(corpus))
            retriever = service.engine.retriever
            totals = {name: dict.fromkeys(METRICS, 0.0) for name, _ in MODES}
            for query_id, text in queries.items():
                embedding = service.embed_model.get_query_embedding(text)
                for name, mode in MODES:
                    vector = None if mode == "sparse" else embedding
                    hits = retriever.search(text, embedding=vector, mode=mode, top_k=40)
                    ranked: list[str] = []
                    for hit in hits:
                        if hit.doc_id not in ranked:
                            ranked.append(hit.doc_id)
                    for metric, value in score_ranking(ranked, qrels[query_id]).items():
                        totals[name][metric] += value
        finally:
            service.close_blocking()
    count = max(1, len(queries))
    return {name: {m: round(v / count, 4) for m, v in values.items()} for name, values in totals.items()}


def format_eval_table(results: dict[str, dict[str, float]]) -> str:
    """The three retrieval modes side by side, one row per metric."""
    names = list(results)
    lines = [f"{'metric':<10}" + "".join(f"{name:>10}" for name in names)]
    for metric in METRICS:
        lines.append(f"{metric:<10}" + "".join(f"{results[name].get(metric, 0.0):>10.3f}" for name in names))
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class AnswerCaseResult:
    """One answer-eval case: what was expected, what happened, and whether it passed."""

    question: str
    expect: str
    abstained: bool
    passed: bool
    reason: str = ""


async def run_answer_eval(kb_folder: Path, cases_path: Path, config: KnowledgeConfig) -> list[AnswerCaseResult]:
    """Ingest `kb_folder` into a temporary index and check each case (abstain / answer / forbidden text)."""
    from knowledge.service import build_knowledge

    results = []
    with tempfile.TemporaryDirectory(prefix="supportbot-answer-eval-") as tmp:
        local = replace(config, qdrant_url="", qdrant_collection="answer-eval")
        service = build_knowledge(local, root=Path(tmp))
        try:
            await service.ingest([kb_folder])
            for case in _jsonl(cases_path):
                answer = await service.answer(str(case["question"]))
                problems = []
                if case.get("expect") == "abstain" and not answer.abstained:
                    problems.append("answered instead of abstaining")
                if case.get("expect") == "answer" and answer.abstained:
                    problems.append("abstained")
                lowered = answer.text.lower()
                problems += [f"missing {w!r}" for w in case.get("must_contain", []) if w.lower() not in lowered]
                problems += [f"contains {w!r}" for w in case.get("must_not_contain", []) if w.lower() in lowered]
                results.append(
                    AnswerCaseResult(
                        question=str(case["question"]),
                        expect=str(case.get("expect", "")),
                        abstained=answer.abstained,
                        passed=not problems,
                        reason="; ".join(problems),
                    )
                )
        finally:
            await service.close()
    return results
