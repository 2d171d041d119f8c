"""Sources people can click: public URLs or titles (never a server path), numbered by first use, one per page."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from llama_index.core.schema import TextNode

from knowledge.citations import number_citations, retrieved_passage
from knowledge.config import KnowledgeConfig
from knowledge.retrieval import Hit
from knowledge.service import build_knowledge


def hit(doc: str, title: str, url: str = "", section: str = "") -> Hit:
    node = TextNode(text=f"Text of {title}.", metadata={"title": title, "url": url, "section": section, "source": doc})
    node.relationships = {}
    return Hit(node=node, score=1.0, cosine=0.8)


def test_markers_are_renumbered_by_first_use_and_merged_per_page() -> None:
    hits = [
        hit("a.md", "Refunds", "https://help.acme.example/refunds"),
        hit("b.md", "Invoices"),
        hit("a.md", "Refunds", "https://help.acme.example/refunds", "Card refunds"),
        hit("c.md", "Plans", "/srv/kb/plans.md"),
    ]
    text, citations = number_citations("Plans differ [4]. Refunds take 14 days [3][1]. Invoices [2]. Bogus [9].", hits)
    assert text == "Plans differ [1]. Refunds take 14 days [2]. Invoices [3]. Bogus."
    assert [(c.index, c.title) for c in citations] == [(1, "Plans"), (2, "Refunds"), (3, "Invoices")]
    assert citations[0].url == "" and citations[0].source == "Plans"  # a path is not a link
    assert citations[1].url == citations[1].source == "https://help.acme.example/refunds"
    assert citations[1].section == "Card refunds"  # the passage actually quoted first


async def test_no_reply_or_citation_carries_a_server_path(
    make_settings: Callable[..., KnowledgeConfig], kb: Path, tmp_path: Path
) -> None:
    service = build_knowledge(make_settings(knowledge_base_url="https://help.acme.example/"), root=tmp_path / "index")
    try:
        await service.ingest([kb])
        questions = [
            "How do I restore files from the web console?",
            "Which credit cards do you accept?",
            "How long are old versions of files kept?",
            "Can business plans pay by bank transfer against an invoice?",
        ]
        answered = 0
        for question in questions:
            answer = await service.answer(question)
            answered += not answer.abstained
            seen = [answer.text] + [f"{c.title} {c.source} {c.url} {c.section} {c.snippet}" for c in answer.citations]
            for text in seen:
                assert str(kb) not in text and str(tmp_path) not in text and "/tmp/" not in text
            assert [c.index for c in answer.citations] == list(range(1, len(answer.citations) + 1))
            assert all(c.source.startswith("https://") for c in answer.citations)
        assert answered >= 3
        # a page with no front-matter url links under KNOWLEDGE_BASE_URL, by its path under the KB root
        answer = await service.answer("Can I get a refund on my annual renewal?")
        assert answer.citations[0].url == "https://help.acme.example/billing/refunds", answer
    finally:
        await service.close()


def test_a_passage_shows_the_readers_relevance_when_it_read_it_else_the_cosine() -> None:
    plain = hit("a.md", "Refunds")
    assert retrieved_passage(plain).score == 0.8  # no reader ranked this search
    assert retrieved_passage(dataclasses.replace(plain, reader=2.0)).score == 0.8808  # sigmoid(2)
    assert retrieved_passage(dataclasses.replace(plain, reader=-40.0)).score == 0.0
