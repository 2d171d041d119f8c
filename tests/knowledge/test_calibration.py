"""Confidence signals from hits alone (no model, no index): the arms' agreement and the best BM25 score count."""

from __future__ import annotations

from llama_index.core.schema import TextNode

from knowledge.calibration import probability, signals
from knowledge.retrieval import Hit
from knowledge.sparse import Bm25Encoder


def hit(doc: str, text: str, score: float, cosine: float, sparse: float) -> Hit:
    return Hit(
        node=TextNode(text=text, metadata={"title": doc, "source": doc}), score=score, cosine=cosine, sparse=sparse
    )


QUESTION = "How long is a team invitation valid?"


def test_agreeing_arms_and_a_strong_lexical_match_raise_the_confidence() -> None:
    encoder = Bm25Encoder()
    agree = [
        hit("invites", "A team invitation is valid for 7 days.", 0.9, 0.62, 11.0),
        hit("billing", "Invoices are sent by email.", 0.4, 0.41, 2.0),
    ]
    disagree = [
        hit("invites", "A team invitation is valid for 7 days.", 0.9, 0.55, 4.0),
        hit("billing", "Invoices are sent by email.", 0.4, 0.62, 5.0),
    ]
    together, apart = signals(QUESTION, agree, encoder), signals(QUESTION, disagree, encoder)
    assert (together.agreement, together.bm25) == (1.0, 11.0)
    assert (apart.agreement, apart.bm25) == (0.0, 5.0)  # the best cosine and the best BM25 hit are another page
    assert probability(together) > probability(apart)
    assert signals(QUESTION, [], encoder).vector() == (0.0,) * 5
