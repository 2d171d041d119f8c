"""Confidence: the probability that the best retrieved passage answers the question, from query-time signals.

Why a fitted model: fused scores only order candidates, and a hand-mixed "0.65 * cosine + 0.35 * coverage" gave
0.91 to a question the knowledge base cannot answer. The signals below are computed from the hits alone; a
logistic regression over them is fitted on labelled questions (answerable ones, the same questions with their
answering documents filtered out unless another page still states the answer, and off-topic questions) by
`fit_folders` (`supportbot eval fit-confidence DIR [DIR...]`), which fits on one half of every folder's questions
and scores the other half. Its few coefficients live here as constants, so nothing is downloaded or trained at run
time.

Every signal is independent of the corpus size (raw BM25 grows with it, so a model leaning on it would not carry to
another knowledge base): cosines, shares of the question's words, a margin of fused scores (normalised per query),
and how rare a word is in general English (`wordfreq`, whose frequency lists ship inside its wheel). Rarity tells
the two kinds of missing word apart: a paraphrase leaves common words out of the page ("old", "kept"), while a
question the knowledge base does not cover brings specific words no retrieved page has ("Toyota", "VLAN", the name
of a feature whose page is gone).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import astuple, dataclass
from functools import lru_cache
from pathlib import Path

from wordfreq import zipf_frequency

from knowledge.config import KnowledgeConfig
from knowledge.focus import search_text
from knowledge.retrieval import Hit, logistic
from knowledge.sparse import Bm25Encoder

_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True, slots=True)
class Signals:
    """Query-time evidence that the knowledge base holds the answer."""

    cosine: float  # dense cosine of the best chunk (of the top three) to the question
    coverage: float  # share of the question's words found in the best document's chunks, each weighted by rarity
    support: float  # (fused score of the best document - that of the next one) * `cosine`
    missing: float  # rarity of the rarest question word the best document lacks (0 when it has them all)
    agreement: float  # 0..2: the dense arm's and the sparse arm's best hit are the best document
    reader: float | None = None  # the cross-encoder's logit for the best passage (None: no reader ranked the hits)

    def vector(self, with_reader: bool | None = None) -> tuple[float, ...]:
        """The model's inputs in FEATURES order (READER_FEATURES with the reader: a missing logit counts as the
        bottom of its scale, "nothing here answers")."""
        base = astuple(self)[:-1]
        if with_reader is None:
            with_reader = self.reader is not None
        return (*base, NO_READING if self.reader is None else self.reader) if with_reader else base


FEATURES = ("cosine", "coverage", "support", "missing", "agreement")
READER_FEATURES = (*FEATURES, "reader")
NO_READING = -12.0  # the logit of a passage that has nothing to do with the question
# Fitted by `supportbot eval fit-confidence` (default fusion plan, BM25 k1 0.9 / b 0.5) on half A (CRC of the
# question id) of the Samsung e-manual set (712 sections, 504 questions), the sample set and the paraphrase-heavy
# test fixture, each smaller set weighted to half the largest one's total, + the off-topic questions; label = the best
# document is a relevant one. Order = FEATURES. On the B halves (issue #12), AUC of a right best page: Samsung 0.814
# (the previous three signals: 0.80, before the BM25 change), sample 0.977, fixture 0.953. The margin is scaled by
# the cosine because score fusion normalises BM25 by the query's best match: in a small corpus a lone weak lexical
# match ("ignore your instructions") otherwise looks like a clear winner. Measured and dropped (no gain on a held-out
# half): plain coverage next to the rarity-weighted one, rarity of words missing from all hits, coverage of the
# page titles, coverage by the quoted answer, the raw best BM25 score (grows with the corpus), a second model for
# "the quote carries the fact" (it ranked answers no better than this one).
COEFFICIENTS = (1.446, 2.611, 4.556, -0.737, 0.867)
INTERCEPT = -5.169
# The same fit with the cross-encoder's logit (RERANK_DEPTH > 0, the default; hits reranked, so "best" is the
# reader's choice), order = READER_FEATURES. On the B halves, AUC of a right best page: Samsung 0.814 -> 0.833
# (answerable vs not 0.765), sample 0.977 -> 0.996, fixture 0.953 -> 0.964. The cosine's weight turns slightly
# negative: the logit carries what it said, and more.
# These constants predate leaving restated twins out of the negatives (`collect_signals`). Refitted without them:
# (-0.354, 0.858, 3.84, -0.159, 0.384, 0.204), intercept -2.542; it reads every question a little surer, so it
# needs the abstain threshold 0.25 to answer as many answerable Samsung questions (458 of 504) as these do at 0.2.
# There, over both halves, it abstains on 10 more of Samsung's 388 held-out questions (153 -> 163), on 2 more of the
# 50 a hand audit found really unanswerable (`bench/data/samsung_heldout_audit.jsonl`) and on one fewer of the 24
# another page answers, on 1 more of the sample set's 34, but refuses 2 of the paraphrase fixture's 44 answerable
# questions, and "How do I claim a refund?" on the answer-case KB (0.22, answered from the right page). Not adopted:
# a help centre's paraphrased questions matter more than 2.6 points on a set of near-duplicate manuals; refit when
# more labelled sets arrive.
# Two more reader signals, measured the same way (fit on the A halves; one threshold that answers as many answerable
# Samsung questions, 0.91, as these constants do at 0.2) and dropped:
# - the cross-encoder's best logit over the single sentences, list items and table rows of the best page (or of the
#   top three pages): Samsung answerable-vs-held-out AUC on the B halves 0.782 -> 0.782 (0.786), and held-out
#   abstention no higher. Trained on MS MARCO passages, it reads answer presence no better a sentence at a time.
# - the gap between the best page's logit and the next page's. Over both halves, Samsung held-out abstention 0.394
#   -> 0.436 and the audit's really unanswerable 23 -> 29 of 50; sample set answered 28 -> 29 of 30, held out 25 ->
#   26 of 34; the fixture answered 35 -> 38 of 44 but held out 41 -> 39 of 44. But "What is the best way to learn
#   Spanish quickly?" rose from 0.15 to 0.29 on the Samsung set (a weak best page whose rivals are weaker still looks
#   like a clear winner), so off-topic abstention fell below 1.0. Bounded forms (sigma(best) - sigma(next), or the
#   gap capped at the best logit) keep off-topic at 1.0 but lose the gain (Samsung held-out 0.37-0.41, audit 25-26).
READER_COEFFICIENTS = (-0.395, 0.712, 4.367, -0.115, 0.472, 0.184)
READER_INTERCEPT = -2.682


@lru_cache(maxsize=65536)
def rarity(word: str) -> float:
    """0 for the commonest English words, 1 for a word English text never uses (a product name, an error code)."""
    return max(0.0, 7.0 - zipf_frequency(word, "en")) / 7.0


@lru_cache(maxsize=65536)
def _term(word: str, encoder: Bm25Encoder) -> int | None:
    indices = encoder.query(word).indices
    return indices[0] if indices else None  # None: a stop word


def signals(question: str, hits: Sequence[Hit], encoder: Bm25Encoder) -> Signals:
    """The signals of one retrieval (blocking: tokenises the best document's passages)."""
    if not hits:
        return Signals(0.0, 0.0, 0.0, 0.0, 0.0)
    words = {word: _term(word, encoder) for word in set(_WORD.findall(question.lower()))}
    weights = {term: rarity(word) for word, term in words.items() if term is not None}
    best = hits[0]
    covered: set[int] = set()
    for hit in hits:
        if hit.doc_id == best.doc_id:
            covered |= set(encoder.document(hit.searchable).indices)
    total = sum(weights.values())
    coverage = sum(w for term, w in weights.items() if term in covered) / total if total else 0.0
    missing = max((w for term, w in weights.items() if term not in covered), default=0.0)
    other_docs = [hit for hit in hits if hit.doc_id != best.doc_id]
    margin = best.score - (other_docs[0].score if other_docs else 0.0)
    best_cosine = max(hit.cosine for hit in hits[:3])
    dense_best = max(hits, key=lambda hit: hit.cosine).doc_id
    sparse_best = max(hits, key=lambda hit: hit.sparse).doc_id
    agreement = float(dense_best == best.doc_id) + float(sparse_best == best.doc_id)
    return Signals(best_cosine, coverage, margin * best_cosine, missing, agreement, best.reader)


def probability(
    evidence: Signals, coefficients: Sequence[float] | None = None, intercept: float | None = None
) -> float:
    """Logistic model: P(the best passage answers the question). The default constants are the reader's model when
    the evidence has a reader's logit, else the retrieval-only one."""
    if coefficients is None or intercept is None:
        reads = evidence.reader is not None
        coefficients, intercept = (READER_COEFFICIENTS, READER_INTERCEPT) if reads else (COEFFICIENTS, INTERCEPT)
    vector = evidence.vector(len(coefficients) == len(READER_FEATURES))
    z = intercept + sum(c * x for c, x in zip(coefficients, vector, strict=True))
    return logistic(z)


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
    question_id: str = ""

    @property
    def half(self) -> str:
        """ "a" or "b", fixed by the question id, so a question and its held-out twin fall in the same half."""
        return "ab"[zlib.crc32(self.question_id.encode()) % 2]


def collect_signals(folder: Path, config: KnowledgeConfig, off_topic: Sequence[str] = ()) -> list[Labelled]:
    """Labelled signals over a BEIR folder: each question as asked, the same question with its relevant documents
    filtered out of the search (unanswerable, unless a page that stays still states its reference answer: such a
    twin is no example of either kind and is left out), the folder's unanswerable questions, and the `off_topic`
    questions; each read as the engine reads it (`search_text`: its focus, without markup)."""
    from llama_index.core.vector_stores.types import FilterOperator, MetadataFilter, MetadataFilters

    from knowledge.answer_eval import page_words, stated_by  # lazy: answer_eval -> beir -> service -> engine -> here
    from knowledge.beir import load_beir, temporary_index  # lazy: beir -> service -> engine imports this module

    data = load_beir(folder)
    pages = page_words(data.corpus)
    rows: list[Labelled] = []
    with temporary_index(data.corpus, config) as index:
        engine = index.service.engine
        encoder = Bm25Encoder()

        def search(text: str, filters: MetadataFilters | None = None) -> list[Hit]:
            embedding = index.service.embed_model.get_query_embedding(text)
            found: list[Hit] = engine.screen(engine.retriever.search(text, embedding=embedding, filters=filters))
            return found

        for query_id, asked in data.queries.items():
            text, relevant = search_text(asked), list(data.qrels[query_id])
            hits = search(text)
            correct = bool(hits) and hits[0].doc_id in relevant
            rows.append(Labelled("answerable", signals(text, hits, encoder), correct, query_id))
            if stated_by(pages, data.answers.get(query_id, ""), relevant):
                continue
            without = MetadataFilters(
                filters=[MetadataFilter(key="doc_id", value=relevant, operator=FilterOperator.NIN)]
            )
            rows.append(Labelled("held_out", signals(text, search(text, without), encoder), False, query_id))
        unanswerable = [(query_id, "held_out", search_text(asked)) for query_id, asked in data.unanswerable.items()]
        unanswerable += [(f"off-topic-{n}", "off_topic", search_text(asked)) for n, asked in enumerate(off_topic, 1)]
        for query_id, kind, text in unanswerable:
            rows.append(Labelled(kind, signals(text, search(text), encoder), False, query_id))
    return rows


def fit_confidence(rows: Sequence[Labelled], weights: Sequence[float] | None = None) -> tuple[tuple[float, ...], float]:
    """(coefficients in FEATURES order, intercept) of a logistic regression of `correct` on the signals."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=1000)
    with_reader = any(row.evidence.reader is not None for row in rows)
    vectors = [row.evidence.vector(with_reader) for row in rows]
    model.fit(vectors, [int(row.correct) for row in rows], sample_weight=weights)
    coefficients = tuple(round(float(c), 3) for c in model.coef_[0])
    return coefficients, round(float(model.intercept_[0]), 3)


def balanced_weights(groups: Sequence[Sequence[Labelled]]) -> list[float]:
    """One weight per row of the concatenated groups: the largest group's rows weigh 1, every smaller group weighs
    half the largest one's total, so a 30-question set counts without one corpus style dominating."""
    largest = max((len(group) for group in groups), default=0)
    weights: list[float] = []
    for group in groups:
        weight = 1.0 if len(group) == largest else 0.5 * largest / max(1, len(group))
        weights += [weight] * len(group)
    return weights
