"""Confidence: the probability that the best retrieved passage answers the question, from query-time signals.

Why a fitted model: fused scores only order candidates, and a hand-mixed "0.65 * cosine + 0.35 * coverage" gave
0.91 to a question the knowledge base cannot answer. The signals below are computed from the hits alone; a
logistic regression over them was fitted on labelled questions (answerable ones, the same questions with their
answering documents removed, and off-topic questions), on half of the Samsung e-manual set, the sample set and the
test fixture, and checked on the other Samsung half (`knowledge.answer_eval.run_answers_eval` measures it on any
folder). Its few coefficients live here as constants, so nothing is downloaded or trained at run time;
`collect_signals` and `fit_confidence` redo the fit on any labelled folder (the constants came from these steps).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from pathlib import Path

from knowledge.config import KnowledgeConfig
from knowledge.retrieval import Hit
from knowledge.sparse import Bm25Encoder


@dataclass(frozen=True, slots=True)
class Signals:
    """Query-time evidence that the knowledge base holds the answer."""

    cosine: float  # dense cosine of the best chunk (of the top three) to the question
    coverage: float  # share of the question's BM25 terms found in the best document's retrieved chunks
    support: float  # (fused score of the best document - that of the next one) * `cosine`

    def vector(self) -> tuple[float, ...]:
        return astuple(self)


FEATURES = ("cosine", "coverage", "support")
# Logistic regression (scikit-learn, C=1) fitted with the default fusion plan (score fusion, dense weight 0.4) on
# Samsung half A (lexical how-to questions; weight 2 per question), the sample set and the paraphrase-heavy test
# fixture (each weighted to half the Samsung half's total, so no one style dominates) + 15 off-topic questions;
# label = the best document is a relevant one. Order = FEATURES. On Samsung half B (held out): AUC 0.78, and each
# confidence bin's share correct sits within ~0.1 of the bin (report of issue #12). The margin is scaled by the cosine
# because score fusion normalises BM25 by the query's best match: in a small corpus a lone weak lexical match
# ("ignore your instructions") otherwise looks like a clear winner. Also tried and dropped (no held-out gain):
# the plain margin, coverage of the best chunk alone or of the top three chunks, best BM25 score per question term,
# the cosine margin to the next document, and the number of question terms.
COEFFICIENTS = (1.436, 2.230, 7.053)
INTERCEPT = -3.552


def signals(question: str, hits: Sequence[Hit], encoder: Bm25Encoder) -> Signals:
    """The signals of one retrieval (blocking: tokenises the best document's passages)."""
    if not hits:
        return Signals(0.0, 0.0, 0.0)
    terms = set(encoder.query(question).indices)
    best = hits[0]
    covered: set[int] = set()
    for hit in hits:
        if hit.doc_id == best.doc_id:
            covered |= set(encoder.document(hit.searchable).indices)
    coverage = len(terms & covered) / len(terms) if terms else 0.0
    other_docs = [hit for hit in hits if hit.doc_id != best.doc_id]
    margin = best.score - (other_docs[0].score if other_docs else 0.0)
    best_cosine = max(hit.cosine for hit in hits[:3])
    return Signals(best_cosine, coverage, margin * best_cosine)


def probability(evidence: Signals, coefficients: Sequence[float] = COEFFICIENTS, intercept: float = INTERCEPT) -> float:
    """Logistic model: P(the best passage answers the question)."""
    z = intercept + sum(c * x for c, x in zip(coefficients, evidence.vector(), strict=True))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


def confidence(question: str, hits: Sequence[Hit], encoder: Bm25Encoder) -> float:
    """0..1, calibrated: among questions given confidence c, about c of them have an answering best passage."""
    if not hits:
        return 0.0
    return round(probability(signals(question, hits, encoder)), 4)


@dataclass(frozen=True, slots=True)
class Labelled:
    """One calibration example: the signals of a retrieval and whether its best document answers the question."""

    kind: str  # "answerable" | "held_out" (its relevant documents filtered out) | "off_topic"
    evidence: Signals
    correct: bool


def collect_signals(folder: Path, config: KnowledgeConfig, off_topic: Sequence[str] = ()) -> list[Labelled]:
    """Labelled signals over a BEIR folder: each question as asked, the same question with its relevant documents
    filtered out of the search (unanswerable by construction), and the `off_topic` questions."""
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    from knowledge.beir import load_beir, temporary_index  # lazy: beir -> service -> engine imports this module

    data = load_beir(folder)
    rows: list[Labelled] = []
    with temporary_index(data.corpus, config) as index:
        retriever = index.service.engine.retriever
        encoder = Bm25Encoder()
        for query_id, text in data.queries.items():
            relevant = list(data.qrels[query_id])
            embedding = index.service.embed_model.get_query_embedding(text)
            hits = retriever.search(text, embedding=embedding)
            correct = bool(hits) and hits[0].doc_id in relevant
            rows.append(Labelled("answerable", signals(text, hits, encoder), correct))
            without = MetadataFilters(
                filters=[MetadataFilter(key="doc_id", value=relevant, operator=FilterOperator.NIN)]
            )
            hits = retriever.search(text, embedding=embedding, filters=without)
            rows.append(Labelled("held_out", signals(text, hits, encoder), False))
        for text in off_topic:
            rows.append(Labelled("off_topic", signals(text, retriever.search(text), encoder), False))
    return rows


def fit_confidence(rows: Sequence[Labelled], weights: Sequence[float] | None = None) -> tuple[tuple[float, ...], float]:
    """(coefficients in FEATURES order, intercept) of a logistic regression of `correct` on the signals."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000)
    model.fit([row.evidence.vector() for row in rows], [int(row.correct) for row in rows], sample_weight=weights)
    coefficients = tuple(round(float(c), 3) for c in model.coef_[0])
    return coefficients, round(float(model.intercept_[0]), 3)
