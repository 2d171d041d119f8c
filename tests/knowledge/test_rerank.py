"""The cross-encoder reranker: the packaged model reads question and passage together, and the engine's search is
reordered by it (the fused order is still there for the eval's "hybrid" row)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bot.errors import ConfigError
from knowledge.beir import BeirSet, temporary_index
from knowledge.config import KnowledgeConfig
from knowledge.eval import retrieval_scores
from knowledge.rerank import CrossEncoder, packaged_model_dir
from knowledge.service import build_knowledge

pytestmark = pytest.mark.slow  # loads the models and builds an index: not in the fast tier

SAMPLE_KB = Path(__file__).resolve().parents[2] / "examples" / "kb"
# From the sample set: the fused list ranks "Version history" first ("how long ... kept" words), the reader the page
# that says how long an invitation is valid.
QUESTION = "How long does a team invitation stay valid?"


def test_the_packaged_model_scores_the_answering_passage_highest() -> None:
    assert (packaged_model_dir() / "model.onnx").is_file()  # inside the installed wheel: nothing is downloaded
    reader = CrossEncoder()
    answering, related, unrelated = reader.scores(
        "How do I reset my password?",
        [
            "To reset your password, click 'Forgot password' on the sign-in page and follow the link we email you.",
            "Passwords must be at least 12 characters long and may not repeat your last three passwords.",
            "Invoices are sent on the first day of each month.",
        ],
    )
    assert answering > related > unrelated
    assert answering > 0 > related  # a logit: the sign says "answers" or not
    assert reader.scores("anything", []) == []


def test_missing_model_files_are_one_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"reranker model files are missing .*model.onnx.*RERANK_DEPTH=0"):
        CrossEncoder(folder=tmp_path)


async def test_search_is_reordered_by_the_reader_and_the_fused_order_is_kept_for_the_eval(
    make_settings: Callable[..., KnowledgeConfig], tmp_path: Path
) -> None:
    service = build_knowledge(make_settings(), root=tmp_path / "index")
    try:
        await service.ingest([SAMPLE_KB])
        retriever = service.engine.retriever
        fused = retriever.search(QUESTION, rerank=False)
        reranked = retriever.search(QUESTION)
        assert fused[0].meta("title") == "Version history"  # the words win without the reader
        assert all(hit.reader is None for hit in fused)
        assert reranked[0].meta("title") == "Managing users and roles"
        assert all(hit.reader is not None for hit in reranked)
        assert reranked[0].score < fused[0].score  # fused scores are kept (the confidence reads their margins)
        answer = await service.answer(QUESTION)
        assert "7 days" in answer.text and not answer.abstained
    finally:
        await service.close()


def test_rerank_depth_zero_turns_the_reader_off(make_settings: Callable[..., KnowledgeConfig]) -> None:
    data = BeirSet(
        corpus=(
            {"_id": "a", "title": "Invoices", "text": "Invoices are sent monthly as PDF files."},
            {"_id": "b", "title": "Refunds", "text": "Refunds are possible within 14 days of a payment."},
        ),
        queries={"q1": "When are invoices sent?"},
        qrels={"q1": {"a": 1}},
        answers={},
        unanswerable={},
    )
    with temporary_index(data.corpus, make_settings(rerank_depth=0)) as index:
        assert not index.service.engine.retriever.reranks
        assert set(retrieval_scores(index, data)) == {"bm25", "dense", "hybrid"}
        assert all(hit.reader is None for hit in index.service.engine.retriever.search("When are invoices sent?"))
    with temporary_index(data.corpus, make_settings()) as index:
        scores = retrieval_scores(index, data)
        assert set(scores) == {"bm25", "dense", "hybrid", "reranked"}
        assert scores["reranked"]["R@1"] == 1.0
