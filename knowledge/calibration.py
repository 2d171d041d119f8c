"""Confidence: the probability that the best retrieved passage answers the question, from query-time signals.

Why a fitted model: fused scores only order candidates, and a hand-mixed "0.65 * cosine + 0.35 * coverage" gave
0.91 to a question the knowledge base cannot answer. The signals below are computed from the hits alone; a
logistic regression over them was fitted on labelled questions (answerable ones, the same questions with their
answering documents removed, and off-topic questions), on half of the Samsung e-manual set and the sample set,
and checked on the other Samsung half and the sample set (`knowledge.answer_eval.run_answers_eval` measures it on any
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
    agreement: float = 0.0  # 1 when the best document also holds the best cosine and the best BM25 hit, else 0
    bm25: float = 0.0  # the best raw BM25 score among the hits (IDF-weighted: rare question words found score high)

    def vector(self) -> tuple[float, ...]:
        return astuple(self)


FEATURES = ("cosine", "coverage", "support", "agreement", "bm25")
# Logistic regression (scikit-learn, C=1) fitted with the default fusion plan (score fusion, dense weight 0.4) on
# Samsung half A (questions split by a CRC of their id; each as asked and with its relevant documents filtered out)
# and the sample set (weighted to half the Samsung half's total) + 30 off-topic questions; label = the best document
# is a relevant one. Order = FEATURES. Scored on Samsung half B and the sample set (AUC of right best document vs
# the rest / of answerable vs held out): 0.833 / 0.740 and 0.945 / 0.897, against 0.803 / 0.727 and 0.938 / 0.883
# for the first three features alone. The margin is scaled by the cosine because score fusion normalises BM25 by the
# query's best match: in a small corpus a lone weak lexical match ("ignore your instructions") otherwise looks like
# a clear winner. The raw BM25 score carries the IDF of the words it matched, so it grows slowly (logarithmically)
# with the corpus; the fit spans a 26-page and a 712-page corpus. Measured and dropped (issue #12; each added alone,
# held-out AUC within +-0.01 or lower on one of the sets): the plain margin, IDF-weighted coverage of the question
# terms (IDF over the retrieved chunks) by the best document or the best chunk, coverage of the question's numbers
# and model names, BM25 per question term, the number of question terms, coverage by the quoted units (with or
# without their headings), the ranker's best unit score. Dense cosine of the question to the best quoted unit helped
# a little (+0.006 / +0.014) but needs the units embedded before the confidence; not worth the latency yet.
COEFFICIENTS = (0.878, 2.675, 4.044, 0.462, 0.09)
INTERCEPT = -5.384


def signals(question: str, hits: Sequence[Hit], encoder: Bm25Encoder) -> Signals:
    """The signals of one retrieval (blocking: tokenises the best document's passages)."""
    if not hits:
        return Signals(0.0, 0.0, 0.0, 0.0, 0.0)
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
    dense_best = max(hits, key=lambda hit: hit.cosine).doc_id
    sparse_best = max(hits, key=lambda hit: hit.sparse).doc_id
    agreement = float(dense_best == sparse_best == best.doc_id)
    return Signals(best_cosine, coverage, margin * best_cosine, agreement, max(hit.sparse for hit in hits))


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
