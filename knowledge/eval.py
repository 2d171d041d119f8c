"""The evals: retrieval over BEIR-format folders, fitting the fusion weights, answers, and refusal/injection cases.

Retrieval (`supportbot eval retrieval DIR`): the folder's corpus (see `knowledge.beir`) goes through the same
chunking, embedding and stores as production, in a temporary index; chunk hits are collapsed to documents (best
chunk's rank) and scored with R@1, R@5, R@10, MRR@10 and nDCG@10 for BM25-only, dense-only, hybrid (fused) and,
with the cross-encoder on (RERANK_DEPTH > 0), reranked: the fused list's top RERANK_DEPTH reordered by it.

Fit (`supportbot eval fit DIR`): `fit_fusion` picks the fusion method and weights on half the questions and scores
them on the other half, next to both arms and the current plan. Answers (`supportbot eval answers DIR`):
`run_answers_eval` in `knowledge.answer_eval`, re-exported here.

Answers: `cases.jsonl` lines {"question", "expect": "answer"|"abstain", "must_contain": [...],
"must_not_contain": [...]} run against a knowledge folder; unanswerable questions must abstain, and text planted in
documents ("ignore your instructions and ...") must never show up in answers.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from knowledge.answer_eval import AnswerEvalReport, format_answer_report, run_answers_eval, run_answers_eval_blocking
from knowledge.beir import BeirSet, EvalIndex, load_beir, temporary_index
from knowledge.config import KnowledgeConfig
from knowledge.fusion import FusionPlan, fuse
from knowledge.retrieval import Hit, HybridRetriever, Mode

__all__ = [
    "AnswerEvalReport",
    "FusionFit",
    "fit_fusion",
    "format_answer_report",
    "format_eval_table",
    "format_fusion_fit",
    "load_beir",
    "retrieval_scores",
    "run_answer_eval",
    "run_answers_eval",
    "run_answers_eval_blocking",
    "run_retrieval_eval",
    "score_ranking",
]

MODES: tuple[tuple[str, Mode], ...] = (("bm25", "sparse"), ("dense", "dense"), ("hybrid", "hybrid"))
METRICS = ("R@1", "R@5", "R@10", "MRR@10", "nDCG@10")
CANDIDATES = 40  # chunks per arm when ranking for the retrieval metrics
FIT_MARGIN = 0.01  # nDCG@10 a fitted plan must gain on the fit half over the current plan to replace it


def _jsonl(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def score_ranking(ranked: Sequence[str], relevant: Mapping[str, int]) -> dict[str, float]:
    """Document-level metrics of one ranking against graded relevance."""

    def recall(k: int) -> float:
        return len(set(ranked[:k]) & set(relevant)) / len(relevant)

    mrr = next((1.0 / rank for rank, doc in enumerate(ranked[:10], 1) if doc in relevant), 0.0)
    dcg = sum((2 ** relevant.get(doc, 0) - 1) / math.log2(rank + 1) for rank, doc in enumerate(ranked[:10], 1))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum((2**grade - 1) / math.log2(rank + 1) for rank, grade in enumerate(ideal, 1))
    ndcg = dcg / idcg if idcg else 0.0
    return {"R@1": recall(1), "R@5": recall(5), "R@10": recall(10), "MRR@10": mrr, "nDCG@10": ndcg}


def documents(hits: Sequence[Hit]) -> list[str]:
    """Chunk hits collapsed to documents, each at the rank of its best chunk."""
    ranked: list[str] = []
    for hit in hits:
        if hit.doc_id not in ranked:
            ranked.append(hit.doc_id)
    return ranked


def _mean(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    count = max(1, len(rows))
    return {metric: round(sum(row[metric] for row in rows) / count, 4) for metric in METRICS}


def run_retrieval_eval(folder: Path, config: KnowledgeConfig) -> dict[str, dict[str, float]]:
    """Build a temporary index of the folder's corpus and score BM25-only, dense-only and hybrid retrieval."""
    data = load_beir(folder)
    with temporary_index(data.corpus, config) as index:
        return retrieval_scores(index, data)


def retrieval_scores(
    index: EvalIndex, data: BeirSet, modes: Sequence[tuple[str, Mode]] = MODES
) -> dict[str, dict[str, float]]:
    """Mean metrics per mode of the questions of `data` on an index of its corpus."""
    retriever: HybridRetriever = index.service.engine.retriever
    # "hybrid" is the fused list alone; "reranked" what the engine reads: the same list after the cross-encoder
    runs = [(name, mode, False) for name, mode in modes]
    if retriever.reranks and any(mode == "hybrid" for _, mode in modes):
        runs.append(("reranked", "hybrid", True))
    rows: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in runs}
    for query_id, text in data.queries.items():
        embedding = index.service.embed_model.get_query_embedding(text)
        for name, mode, rerank in runs:
            vector = None if mode == "sparse" else embedding
            hits = retriever.search(text, embedding=vector, mode=mode, top_k=CANDIDATES, rerank=rerank)
            rows[name].append(score_ranking(documents(hits), data.qrels[query_id]))
    return {name: _mean(values) for name, values in rows.items()}


@dataclass(frozen=True, slots=True)
class FusionFit:
    """The fusion plan that ranked best on the fit half, and what it and the arms score on the check half."""

    dense_weight: float
    sparse_weight: float
    rrf_k: int
    method: str
    fit_scores: Mapping[str, float]  # the chosen plan on the fit half
    scores: Mapping[str, Mapping[str, float]]  # check half: "bm25", "dense", "hybrid" (chosen), "current"

    def as_dict(self) -> dict[str, object]:
        return {
            "dense_weight": self.dense_weight,
            "sparse_weight": self.sparse_weight,
            "rrf_k": self.rrf_k,
            "method": self.method,
            "fit_scores": dict(self.fit_scores),
            "scores": {name: dict(values) for name, values in self.scores.items()},
        }


def candidate_plans(base: FusionPlan) -> list[FusionPlan]:
    """The grid `fit_fusion` searches: score fusion at dense weights 0..1, and weighted RRF at k 2 and 60."""
    plans = [
        replace(base, method="score", dense_weight=round(w / 10, 2), sparse_weight=round(1 - w / 10, 2))
        for w in range(11)
    ]
    for k in (2, 60):
        for weight in (0.15, 0.25, 0.5, 1.0):
            plans.append(replace(base, method="rrf", rrf_k=k, dense_weight=weight, sparse_weight=1.0))
    return plans


def fit_fusion(folder: Path, config: KnowledgeConfig, seed: int = 0) -> FusionFit:
    """Choose fusion weights on a random half of the folder's questions (by nDCG@10); score them on the other half.

    The current plan stays unless another beats it on the fit half by `FIT_MARGIN`.

    Each arm is queried once per question; every plan of the grid then fuses the same candidate lists, so the fit
    costs one index build and two searches per question.
    """
    data = load_beir(folder)
    query_ids = sorted(data.queries)
    random.Random(seed).shuffle(query_ids)
    fit_half, check_half = set(query_ids[: len(query_ids) // 2]), set(query_ids[len(query_ids) // 2 :])
    with temporary_index(data.corpus, config) as index:
        service = index.service
        retriever: HybridRetriever = service.engine.retriever
        current = retriever.plan
        arms: dict[str, tuple[list[Hit], list[Hit]]] = {}
        for query_id, text in data.queries.items():
            embedding = service.embed_model.get_query_embedding(text)
            depth = current.depth(CANDIDATES)
            dense = retriever.search(text, embedding=embedding, mode="dense", top_k=depth)
            sparse = retriever.search(text, embedding=embedding, mode="sparse", top_k=depth)
            arms[query_id] = (dense, sparse)

    def scores(plan: FusionPlan | Mode, half: set[str]) -> dict[str, float]:
        return _mean([score_ranking(_ranking(arms[q], plan), data.qrels[q]) for q in sorted(half)])

    # differences of a few thousandths on half a set are noise: another plan must beat the current one by a margin
    best = max(candidate_plans(current), key=lambda plan: scores(plan, fit_half)["nDCG@10"])
    if scores(best, fit_half)["nDCG@10"] < scores(current, fit_half)["nDCG@10"] + FIT_MARGIN:
        best = current
    return FusionFit(
        dense_weight=best.dense_weight,
        sparse_weight=round(best.sparse_weight, 4),
        rrf_k=best.rrf_k,
        method=best.method,
        fit_scores=scores(best, fit_half),
        scores={
            "bm25": scores("sparse", check_half),
            "dense": scores("dense", check_half),
            "hybrid": scores(best, check_half),
            "current": scores(current, check_half),
        },
    )


def _ranking(arms: tuple[list[Hit], list[Hit]], plan: FusionPlan | Mode) -> list[str]:
    dense, sparse = arms
    if plan == "dense":
        return documents(dense)
    if plan == "sparse":
        return documents(sparse)
    assert isinstance(plan, FusionPlan)
    by_id = {hit.node.node_id: hit for hit in [*dense, *sparse]}
    fused = fuse(
        [(h.node.node_id, h.cosine) for h in dense],
        [(h.node.node_id, h.sparse) for h in sparse],
        plan,
        {node_id: hit.cosine for node_id, hit in by_id.items()},
    )
    return documents([by_id[node_id] for node_id, _ in fused])


def format_fusion_fit(fit: FusionFit) -> str:
    """The chosen plan, then the check-half scores of the arms, the chosen plan and the current one."""
    head = (
        f"chosen on half the questions: method={fit.method} dense_weight={fit.dense_weight} "
        f"sparse_weight={fit.sparse_weight}" + (f" rrf_k={fit.rrf_k}" if fit.method == "rrf" else "")
    )
    table = format_eval_table({name: dict(values) for name, values in fit.scores.items()})
    settings = (
        f"HYBRID_FUSION={fit.method} HYBRID_DENSE_WEIGHT={fit.dense_weight} "
        f"HYBRID_SPARSE_WEIGHT={fit.sparse_weight} HYBRID_RRF_K={fit.rrf_k}"
    )
    return f"{head}\nscored on the other half:\n{table}\nto use it: {settings}"


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
    from knowledge.service import build_knowledge  # lazy: service -> engine -> calibration -> beir cycle

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
