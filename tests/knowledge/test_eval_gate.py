"""The eval gate: the sample set's retrieval and answer figures must not fall below their floors.

One temporary index of `examples/eval/acme_help_qa` serves both halves and the noisy set (`acme_help_noisy`: the
same questions as customers write them, over the same corpus), so the gate costs one ingestion. Floors sit a
little under the figures measured when they were set (in the comments); raise them when a change earns it, and
lower one only with a reason in the commit message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from knowledge.answer_eval import answer_questions, summarise
from knowledge.beir import knowledge_base_corpus, load_beir, temporary_index
from knowledge.config import KnowledgeConfig
from knowledge.eval import retrieval_scores

pytestmark = pytest.mark.slow  # loads the embedding model and builds an index: not in the fast tier

SAMPLE_SET = Path(__file__).resolve().parents[2] / "examples" / "eval" / "acme_help_qa"
NOISY_SET = SAMPLE_SET.parent / "acme_help_noisy"
SAMPLE_KB = SAMPLE_SET.parents[1] / "kb"

RETRIEVAL_FLOORS = {"R@5": 0.93, "nDCG@10": 0.90}  # measured: hybrid 0.967 / 0.935
# measured (cross-encoder rerank of the top 20, what the engine reads): 1.000 / 0.930
RERANKED_FLOORS = {"R@5": 0.96, "nDCG@10": 0.90}
# measured (issue #12 confidence refit, ABSTAIN 0.2 / LOW 0.85): source hit 0.867, fact 0.50, abstained on 7 of
# the 8 unanswerable and 28 of 30 off-topic, 0.053 confidently wrong (2 of 38: right page, quote without the fact);
# extractive answers quoting the best section in document order (issue #12 item 3): fact 0.567; with the
# cross-encoder rerank and its confidence refit: source hit 0.90, fact 0.667, answered 0.933, 7 of 8 unanswerable
# and 29 of 30 off-topic abstained, 0.026 confidently wrong (1 of 38); numbered steps quoted from step 1 and an
# overlapping unit once: fact 0.70, the rest unchanged
ANSWER_FLOORS = {"source_hit": 0.87, "fact_rate": 0.65, "held_out_abstention": 0.75, "off_topic_abstention": 0.90}
CONFIDENTLY_WRONG_CEILING = 0.10
# measured (question focus, issue #12): source hit 0.833, fact 0.50, answered 0.867, abstained on 7 of the 8 noisy
# unanswerable questions, none confidently wrong; before the focus: 0.267, 0.20, 0.267 (and 8 of 8); with the rerank
# 0.833, 0.633, 0.90, 1 of 38 confidently wrong; numbered steps from step 1: fact 0.667, none confidently wrong
NOISY_FLOORS = {"source_hit": 0.80, "fact_rate": 0.60, "answered": 0.85, "held_out_abstention": 0.75}


@pytest.mark.long
async def test_sample_set_stays_above_its_floors(make_settings: Callable[..., KnowledgeConfig]) -> None:
    data, noisy = load_beir(SAMPLE_SET), load_beir(NOISY_SET)
    # the corpus is the sample KB as ingestion reads it; after editing a page, write it again with
    # `knowledge.beir.knowledge_base_corpus` (README of examples/eval)
    assert list(data.corpus) == knowledge_base_corpus(SAMPLE_KB), "examples/eval corpus is stale: rebuild it"
    assert noisy.corpus == data.corpus and noisy.qrels == data.qrels and noisy.answers == data.answers
    config = make_settings()
    with temporary_index(data.corpus, config) as index:
        retrieval = retrieval_scores(index, data)
        answers = summarise(await answer_questions(index, data, config, removed=set(), held_out=set()))
        noisy_answers = summarise(await answer_questions(index, noisy, config, removed=set(), held_out=set()))
    hybrid = retrieval["hybrid"]
    for metric, floor in RETRIEVAL_FLOORS.items():
        assert hybrid[metric] >= floor, f"hybrid {metric} {hybrid[metric]} fell below {floor}"
        assert hybrid[metric] >= retrieval["bm25"][metric] and hybrid[metric] >= retrieval["dense"][metric]
    reranked = retrieval["reranked"]
    for metric, floor in RERANKED_FLOORS.items():
        assert reranked[metric] >= floor, f"reranked {metric} {reranked[metric]} fell below {floor}"
        assert reranked[metric] >= retrieval["bm25"][metric] and reranked[metric] >= retrieval["dense"][metric]
    for metric, floor in ANSWER_FLOORS.items():
        assert answers[metric] >= floor, f"{metric} {answers[metric]} fell below {floor}"
    assert answers["confidently_wrong"] <= CONFIDENTLY_WRONG_CEILING
    for metric, floor in NOISY_FLOORS.items():
        assert noisy_answers[metric] >= floor, f"noisy {metric} {noisy_answers[metric]} fell below {floor}"
    assert noisy_answers["confidently_wrong"] <= CONFIDENTLY_WRONG_CEILING
