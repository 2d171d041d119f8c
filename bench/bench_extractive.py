"""Extractive selection: how much of the reference answer do the top-3 quoted units of the answering section hold?

Data: the Samsung e-manual QA set (BEIR corpus + queries + qrels + reference answers; SAMSUNG_QA_DIR, default
/work/shared/eval/retrieval/samsung_emanual_qa). Retrieval is taken out of the picture: the candidate text is the
question's relevant section(s) from the qrels. Each method segments that text into units, scores them against the
question and keeps the top three; the figure is the share of the reference answer's content words (lower-cased
alphanumeric tokens, no stop words, no single characters) found in the kept units, averaged over questions. Quoted
words per question are printed too: a method that quotes more text finds more words.

Methods: "today" = the answerer before issue #12 (split at every newline and after .!?, score = number of question
terms in the sentence); "units" = `knowledge.segments` (unwrapped paragraphs, Punkt sentences, list items with
lead-in, table rows with header) scored by word overlap, by BM25 over units (`UnitRanker`), by MiniLM cosine, or by a
mix; "answerer" = `ExtractiveAnswerer.select` (the best heading group's units in document order up to a word budget,
then a second group with the remaining words when it scores close: it quotes by words, not by three units). Before
issue #12 item 3 the answerer quoted the three best units plus the two after the best one: 0.700 of the answer
words in 78 words per question.
`python -m bench extractive [--quick]`; --quick samples every 8th question; the cosine methods always run on every
4th question (embedding every unit is the slow part) and the table names that subset.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.harness import Report

DATA = Path(os.environ.get("SAMSUNG_QA_DIR", "/work/shared/eval/retrieval/samsung_emanual_qa"))
_TOKEN = re.compile(r"[a-z0-9]+")
_TODAY_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
TOP = 3


def content_words(text: str) -> set[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return {t for t in _TOKEN.findall(text.lower()) if len(t) > 1 and t not in ENGLISH_STOP_WORDS}


def load() -> tuple[dict[str, str], list[tuple[str, str, str, list[str]]]]:
    """(section text by id, [(query id, question, reference answer, relevant section ids)])."""
    corpus = {}
    for line in (DATA / "corpus.jsonl").read_text().splitlines():
        row = json.loads(line)
        corpus[row["_id"]] = row["text"]
    questions = {json.loads(x)["_id"]: json.loads(x)["text"] for x in (DATA / "queries.jsonl").read_text().splitlines()}
    answers = {json.loads(x)["id"]: json.loads(x)["answer"] for x in (DATA / "answers.jsonl").read_text().splitlines()}
    relevant: dict[str, list[str]] = {}
    for line in (DATA / "qrels.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, _ = line.split("\t")
        relevant.setdefault(query_id, []).append(doc_id)
    cases = [(q, questions[q], answers[q], relevant[q]) for q in questions if q in relevant and q in answers]
    return corpus, cases


def today_units(text: str) -> list[str]:
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    parts = [s.strip(" -*>\t") for s in _TODAY_SPLIT.split("\n".join(lines))]
    return [s for s in parts if len(s) > 3]


def top_by(scores: Sequence[float], units: Sequence[str]) -> list[str]:
    order = sorted(range(len(units)), key=lambda i: (-scores[i], i))[:TOP]
    return [units[i] for i in order]


def overlap_scores(question: str, units: Sequence[str], encoder: object) -> list[float]:
    terms = set(encoder.query(question).indices)  # type: ignore[attr-defined]
    return [float(len(terms & set(encoder.document(u).indices))) for u in units]  # type: ignore[attr-defined]


async def run(report: Report, quick: bool) -> None:
    from knowledge.answerers import ExtractiveAnswerer, UnitRanker
    from knowledge.segments import Unit, segment
    from knowledge.sparse import Bm25Encoder

    corpus, cases = load()
    if quick:
        cases = cases[::8]
    encoder = Bm25Encoder()
    ranker = UnitRanker(encoder)

    def units_of(ids: list[str]) -> list[Unit]:
        return [u for doc in ids for u in segment(corpus[doc]) if len(u.text) > 3]

    def measure(select: Callable[[str, list[str]], list[str]], subset: list[tuple[str, str, str, list[str]]]):
        shares, words = [], []
        for _, question, answer, ids in subset:
            chosen = select(question, ids)
            reference = content_words(answer)
            quoted = " ".join(chosen)
            shares.append(len(reference & content_words(quoted)) / max(1, len(reference)))
            words.append(len(quoted.split()))
        return sum(shares) / len(shares), sum(words) / len(words)

    def today(top: int) -> Callable[[str, list[str]], list[str]]:
        def select(question: str, ids: list[str]) -> list[str]:
            units = [u for doc in ids for u in today_units(corpus[doc])]
            order = sorted(range(len(units)), key=lambda i: (-overlap_scores(question, [units[i]], encoder)[0], i))
            return [units[i] for i in order[:top]]

        return select

    def units_overlap(question: str, ids: list[str]) -> list[str]:
        units = units_of(ids)
        return top_by(overlap_scores(question, [u.quoted for u in units], encoder), [u.quoted for u in units])

    def units_bm25(question: str, ids: list[str]) -> list[str]:
        units = units_of(ids)
        return top_by(ranker.rank(question, units), [u.quoted for u in units])

    def shipped(budget: int, second: float = 0.5) -> Callable[[str, list[str]], list[str]]:
        from llama_index.core.schema import TextNode

        from knowledge.retrieval import Hit

        chooser = ExtractiveAnswerer(encoder, budget=budget, second_share=second)

        def select(question: str, ids: list[str]) -> list[str]:
            hits = [Hit(node=TextNode(text=corpus[d], metadata={"title": d}), score=1.0, cosine=1.0) for d in ids]
            return [pick.unit.quoted for pick in chooser.select(question, hits)]

        return select

    methods: list[tuple[str, Callable[[str, list[str]], list[str]]]] = [
        ("today (lines + .!?, overlap), top-2 as shipped", today(2)),
        ("today (lines + .!?, overlap), top-3", today(3)),
        ("units, overlap, top-3", units_overlap),
        ("units, IDF-weighted terms + type cues, top-3", units_bm25),
        ("answerer as shipped (best section in order, 100 words)", shipped(ExtractiveAnswerer(encoder).budget)),
        ("answerer, 60-word budget", shipped(60)),
        ("answerer, one section only", shipped(100, 0.0)),
    ]
    for name, select in methods:
        share, words = measure(select, cases)
        report.add(f"{name}: answer words covered", share, "", f"n={len(cases)}, {words:.0f} words quoted")

    # Cosine with the production embedding model, on every 4th question (embedding all units is slow).
    from knowledge.embedding import DEFAULT_MODEL, load_text_embedding

    model = load_text_embedding(DEFAULT_MODEL, Path(os.environ.get("DATA_DIR", "./var")))
    cache: dict[str, list[float]] = {}

    def vectors(texts: list[str]) -> list[list[float]]:
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        for text, vector in zip(missing, model.embed(missing, batch_size=16), strict=True):
            cache[text] = [float(x) for x in vector]
        return [cache[t] for t in texts]

    def cosine_scores(question: str, units: list[str]) -> list[float]:
        q = vectors([question])[0]
        return [sum(a * b for a, b in zip(q, v, strict=True)) for v in vectors(units)]

    def units_cosine(question: str, ids: list[str]) -> list[str]:
        texts = [u.quoted for u in units_of(ids)]
        return top_by(cosine_scores(question, texts), texts)

    def units_mix(question: str, ids: list[str]) -> list[str]:
        units = units_of(ids)
        texts = [u.quoted for u in units]
        bm25 = ranker.rank(question, units)
        top = max(bm25) or 1.0
        mixed = [0.5 * b / top + 0.5 * c for b, c in zip(bm25, cosine_scores(question, texts), strict=True)]
        return top_by(mixed, texts)

    subset = cases[::4] if not quick else cases[::2]
    for name, select in [
        ("today (lines + .!?, overlap), top-3", today(3)),
        ("units, IDF-weighted terms + type cues, top-3", units_bm25),
        ("units, MiniLM cosine, top-3", units_cosine),
        ("units, 0.5 IDF-terms/max + 0.5 cosine, top-3", units_mix),
    ]:
        share, words = measure(select, subset)
        report.add(f"[subset] {name}", share, "", f"n={len(subset)}, {words:.0f} words quoted")
