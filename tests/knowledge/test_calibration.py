"""The confidence signals: rare words a page lacks count against it, common ones (a paraphrase) barely do."""

from __future__ import annotations

from dataclasses import replace

from llama_index.core.schema import TextNode

from knowledge.calibration import (
    NO_READING,
    Labelled,
    Signals,
    balanced_weights,
    fit_confidence,
    probability,
    rarity,
    signals,
)
from knowledge.confidence_fit import ConfidenceFit, format_confidence_fit, score_half
from knowledge.retrieval import Hit
from knowledge.sparse import Bm25Encoder

VERSIONS = "Version history. Previous versions of a file are retained for 90 days, then deleted."
SWITCH = "Network switches. Plug the switch into the router and wait for the green light."


def hit(doc: str, text: str, score: float, cosine: float, sparse: float = 0.0) -> Hit:
    node = TextNode(id_=f"{doc}-chunk", text=text, metadata={"source": doc, "title": doc, "section": ""})
    return Hit(node=node, score=score, cosine=cosine, sparse=sparse)


def test_rarity_separates_everyday_words_from_specific_ones() -> None:
    assert rarity("the") < rarity("kept") < rarity("firmware") < rarity("vlan") < rarity("e1550") == 1.0


def test_a_paraphrase_misses_only_common_words_an_unknown_product_misses_a_rare_one() -> None:
    encoder = Bm25Encoder()
    hits = [hit("versions", VERSIONS, 0.9, 0.6, 4.0), hit("switch", SWITCH, 0.3, 0.2, 1.0)]
    paraphrase = signals("How long are old versions of my files kept?", hits, encoder)
    other_product = signals("How do I configure a VLAN on a Cisco switch?", [hits[1], hits[0]], encoder)
    assert paraphrase.missing < 0.45 < other_product.missing
    assert paraphrase.coverage > other_product.coverage
    assert paraphrase.agreement == 2.0 and other_product.agreement == 0.0
    assert probability(paraphrase) > probability(other_product)
    assert signals("anything", [], encoder) == Signals(0.0, 0.0, 0.0, 0.0, 0.0)


def test_smaller_folders_weigh_half_the_largest_one() -> None:
    row = Labelled("answerable", Signals(0.5, 0.5, 0.1, 0.0, 2.0), True, "q1")
    weights = balanced_weights([[row] * 8, [row] * 2])
    assert weights[:8] == [1.0] * 8 and sum(weights[8:]) == 4.0


def test_the_fit_report_scores_a_half_and_prints_the_constants() -> None:
    good, bad = Signals(0.8, 0.9, 0.3, 0.0, 2.0), Signals(0.2, 0.2, 0.0, 1.0, 0.0)
    rows = [Labelled("answerable", good, True, "q1"), Labelled("held_out", bad, False, "q1")]
    rows.append(Labelled("off_topic", bad, False, "off-topic-1"))
    score = score_half("set", rows, (1.77, 2.51, 5.684, -0.443, 0.583), -4.973)
    assert score.auc_correct == 1.0 and score.auc_answerable == 1.0
    assert next(t for t in score.trade_off if t.threshold == 0.5).held_out_abstention == 1.0
    assert sum(n for _, n, _ in score.reliability) == 3
    assert {row.half for row in rows} <= {"a", "b"} and rows[0].half == rows[1].half
    text = format_confidence_fit(ConfidenceFit((1.0,) * 5, -1.0, (score,)))
    assert "\nCOEFFICIENTS = (1.0, 1.0, 1.0, 1.0, 1.0)" in text and "held-out abstained" in text
    text = format_confidence_fit(ConfidenceFit((1.0,) * 6, -1.0, (score,)))
    assert "READER_COEFFICIENTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)" in text and "'reader')" in text


def test_with_a_reader_the_logit_moves_the_confidence_and_a_missing_one_reads_as_no_answer() -> None:
    retrieval = Signals(0.6, 0.8, 0.2, 0.1, 2.0)
    answers, doubts = replace(retrieval, reader=6.0), replace(retrieval, reader=-6.0)
    assert probability(answers) > probability(doubts)
    assert retrieval.vector() == (0.6, 0.8, 0.2, 0.1, 2.0)  # no reader ranked it: the retrieval-only model
    assert answers.vector() == (0.6, 0.8, 0.2, 0.1, 2.0, 6.0)
    assert retrieval.vector(with_reader=True)[-1] == NO_READING
    # a fit over rows with and without a logit (a search that found nothing has none) gives every row six inputs
    rows = [Labelled("answerable", answers, True, "q1"), Labelled("held_out", Signals(0, 0, 0, 0, 0), False, "q1")]
    coefficients, _ = fit_confidence(rows)
    assert len(coefficients) == 6
