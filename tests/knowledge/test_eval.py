"""The retrieval eval on the BEIR-format fixture, and the answer eval (refusals and injections)."""

from __future__ import annotations

import json
from collections.abc import Callable

from knowledge.config import KnowledgeConfig
from knowledge.eval import format_eval_table, run_answer_eval, run_retrieval_eval, score_ranking
from tests.knowledge.conftest import FIXTURES


def test_metrics_of_a_known_ranking() -> None:
    scores = score_ranking(["a", "b", "c"], {"b": 1})
    assert scores["R@1"] == 0 and scores["R@5"] == 1 and scores["MRR@10"] == 0.5
    assert 0.6 < scores["nDCG@10"] < 0.64  # 1 / log2(3)


def test_retrieval_eval_reports_three_modes(make_settings: Callable[..., KnowledgeConfig]) -> None:
    results = run_retrieval_eval(FIXTURES / "beir", make_settings())
    assert set(results) == {"bm25", "dense", "hybrid"}
    for metrics in results.values():
        assert set(metrics) == {"R@1", "R@5", "R@10", "MRR@10", "nDCG@10"}
        assert all(0.0 <= value <= 1.0 for value in metrics.values())
    assert results["hybrid"]["R@5"] >= results["bm25"]["R@5"]
    json.dumps(results)
    table = format_eval_table(results)
    assert "nDCG@10" in table and "hybrid" in table


async def test_answer_eval_abstains_and_ignores_injected_instructions(
    make_settings: Callable[..., KnowledgeConfig],
) -> None:
    results = await run_answer_eval(FIXTURES / "kb", FIXTURES / "answer_cases.jsonl", make_settings())
    failures = [f"{r.question}: {r.reason}" for r in results if not r.passed]
    assert failures == []
    assert any(r.expect == "abstain" and r.abstained for r in results)
