"""The evals: retrieval and fusion fit on the BEIR-format fixture, answer scoring, refusals and injections."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from knowledge.answer_eval import OFF_TOPIC_QUESTIONS, QuestionResult, has_fact, held_out_split, still_stated, summarise
from knowledge.beir import load_beir
from knowledge.calibration import READER_FEATURES, collect_signals, fit_confidence, probability
from knowledge.config import KnowledgeConfig
from knowledge.eval import (
    fit_fusion,
    format_eval_table,
    format_fusion_fit,
    run_answer_eval,
    run_retrieval_eval,
    score_ranking,
)
from knowledge.fusion import FusionPlan, fuse
from tests.knowledge.conftest import FIXTURES

pytestmark = pytest.mark.slow  # loads the embedding model and builds an index: not in the fast tier


def test_metrics_of_a_known_ranking() -> None:
    scores = score_ranking(["a", "b", "c"], {"b": 1})
    assert scores["R@1"] == 0 and scores["R@5"] == 1 and scores["MRR@10"] == 0.5
    assert 0.6 < scores["nDCG@10"] < 0.64  # 1 / log2(3)


def test_retrieval_eval_reports_both_arms_fused_and_reranked(make_settings: Callable[..., KnowledgeConfig]) -> None:
    results = run_retrieval_eval(FIXTURES / "beir", make_settings())
    assert set(results) == {"bm25", "dense", "hybrid", "reranked"}
    for metrics in results.values():
        assert set(metrics) == {"R@1", "R@5", "R@10", "MRR@10", "nDCG@10"}
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert results["hybrid"]["R@5"] >= results["bm25"]["R@5"]
    json.dumps(results)
    table = format_eval_table(results)
    assert "nDCG@10" in table and "hybrid" in table and "reranked" in table


async def test_answer_eval_abstains_and_ignores_injected_instructions(
    make_settings: Callable[..., KnowledgeConfig],
) -> None:
    results = await run_answer_eval(FIXTURES / "kb", FIXTURES / "answer_cases.jsonl", make_settings())
    failures = [f"{r.question}: {r.reason}" for r in results if not r.passed]
    assert failures == []
    assert any(r.expect == "abstain" and r.abstained for r in results)


def test_score_fusion_weighs_how_far_apart_the_scores_are() -> None:
    dense = [("a", 0.62), ("b", 0.60)]
    sparse = [("b", 12.0), ("a", 2.0)]  # BM25 is sure about b, the dense arm barely prefers a
    assert next(key for key, _ in fuse(dense, sparse, FusionPlan())) == "b"
    rrf = FusionPlan(method="rrf", dense_weight=1.0, sparse_weight=1.0)
    assert {key for key, _ in fuse(dense, sparse, rrf)} == {"a", "b"}
    # a chunk only BM25 found keeps its real cosine, not 0
    only_sparse = fuse([("a", 0.5)], [("c", 10.0)], FusionPlan(), cosines={"c": 0.5})
    assert dict(only_sparse)["c"] > dict(only_sparse)["a"]


def test_fusion_fit_chooses_on_one_half_and_scores_the_other(make_settings: Callable[..., KnowledgeConfig]) -> None:
    fit = fit_fusion(FIXTURES / "beir", make_settings())
    assert fit.method in {"score", "rrf"} and 0.0 <= fit.dense_weight <= 1.0
    assert set(fit.scores) == {"bm25", "dense", "hybrid", "current"}
    assert fit.fit_scores["nDCG@10"] > 0.5
    text = format_fusion_fit(fit)
    assert "HYBRID_DENSE_WEIGHT=" in text and "nDCG@10" in text
    json.dumps(fit.as_dict())


def test_fact_needs_most_of_the_reference_content_words() -> None:
    reference = "Invitations expire after 7 days; resend one from the Pending tab."
    assert has_fact("Invitations expire after 7 days. You can resend them from the Pending tab [1].", reference)
    assert not has_fact("Invitations expire after a while [1].", reference)
    assert not has_fact("", reference)


def test_holdout_leaves_out_documents_and_every_question_they_answered() -> None:
    qrels = load_beir(FIXTURES / "beir").qrels
    removed, held_out = held_out_split(qrels, 0.25, seed=3)
    assert removed and len(held_out) >= round(0.25 * len(qrels))
    assert all(set(qrels[q]) <= removed for q in held_out)
    assert all(not set(qrels[q]) <= removed for q in set(qrels) - held_out)
    assert held_out_split(qrels, 0.25, seed=3) == (removed, held_out)
    assert held_out_split(qrels, 0.0) == (set(), set())


def test_a_held_out_answer_another_page_still_states_is_scored_apart() -> None:
    """Two manuals of one product line repeat a section: removing one copy leaves the question answerable, so
    abstaining on it is not what the held-out rate asks for, and answering it with the fact is not wrong."""
    corpus = [
        {"_id": "tv-a", "title": "Auto update", "text": "Settings > Support > Software Update > Auto Update."},
        {"_id": "tv-b", "title": "Updating the TV", "text": "Open Settings, Support, Software Update, Auto Update."},
        {"_id": "phone", "title": "Equalizer", "text": "From Settings, tap Sounds and vibration > Equalizer."},
    ]
    answers = {"q1": "Settings > Support > Software Update > Auto Update", "q2": "Sound > Expert Settings > Equalizer"}
    assert still_stated(corpus, {"tv-a"}, answers, {"q1"}) == {"q1"}
    assert still_stated(corpus, {"tv-a", "tv-b"}, answers, {"q1"}) == set()
    assert still_stated(corpus, {"phone"}, answers, {"q2"}) == set()  # one shared word is not the answer

    def result(kind: str, abstained: bool, fact: bool) -> QuestionResult:
        return QuestionResult("q", kind, abstained, False, 0.9, False, fact)

    summary = summarise(
        [result("held_out", True, False), result("held_out", False, False), result("restated", False, True)]
    )
    assert summary["held_out"] == 2 and summary["restated"] == 1
    assert summary["held_out_abstention"] == 0.5 and summary["restated_safe"] == 1.0
    assert summary["confidently_wrong"] == round(1 / 3, 4)


def test_the_confidence_is_not_taught_that_a_restated_answer_is_missing(
    tmp_path: Path, make_settings: Callable[..., KnowledgeConfig]
) -> None:
    """A question whose relevant page is filtered out is a negative example only when no page left states its
    reference answer: the twin section of a second manual still answers it, and calling that retrieval "the
    knowledge base does not know" teaches the confidence to refuse answers the knowledge base holds."""
    corpus = [
        {"_id": "tv-a", "title": "Auto update", "text": "Settings > Support > Software Update > Auto Update."},
        {"_id": "tv-b", "title": "Updating the TV", "text": "Open Settings, Support, Software Update, Auto Update."},
        {"_id": "phone", "title": "Equalizer", "text": "From Settings, tap Sounds and vibration > Equalizer."},
    ]
    questions = {"q1": "How do I turn on automatic software updates?", "q2": "Where is the sound equalizer?"}
    answers = {"q1": "Settings > Support > Software Update > Auto Update", "q2": "Sounds and vibration > Equalizer"}
    folder = tmp_path / "beir"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in corpus))
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": text}) + "\n" for q, text in questions.items())
    )
    (folder / "answers.jsonl").write_text(
        "".join(json.dumps({"_id": q, "answer": text}) + "\n" for q, text in answers.items())
    )
    (folder / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ttv-a\t1\nq2\tphone\t1\n")

    rows = collect_signals(folder, make_settings())

    assert sorted((row.kind, row.question_id) for row in rows) == [
        ("answerable", "q1"),
        ("answerable", "q2"),
        ("held_out", "q2"),
    ]


def test_confidence_ranks_answerable_above_held_out_above_off_topic(
    make_settings: Callable[..., KnowledgeConfig],
) -> None:
    rows = collect_signals(FIXTURES / "beir", make_settings(), OFF_TOPIC_QUESTIONS[:10])

    def mean(kind: str) -> float:
        values = [probability(row.evidence) for row in rows if row.kind == kind]
        return sum(values) / len(values)

    assert mean("answerable") > mean("held_out") > mean("off_topic")
    assert all(row.evidence.reader is not None for row in rows if row.kind == "answerable")  # reranked by default
    coefficients, _ = fit_confidence(rows)
    assert len(coefficients) == len(READER_FEATURES)
    fitted = dict(zip(READER_FEATURES, coefficients, strict=True))
    assert fitted["coverage"] > 0 and fitted["reader"] > 0  # more question words found, a higher logit: more sure
