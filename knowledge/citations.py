"""Citations a customer can use: numbered in reading order, one per page, pointing at a public URL or a title.

An answerer writes `[n]` for "passage n of the retrieved list". Customers should see [1] first, then [2], and one
number per page even when two passages came from the same page, so markers are renumbered by first use and merged
per document. A citation names the page by its public URL (front matter `url:`, or KNOWLEDGE_BASE_URL joined with
the page's path under the knowledge base) or, without one, by its title: never a server path. The chunk's `source`
metadata (the path under the ingested folder) is only used to tell pages apart. A citation of a community tip
(chunk metadata `trust: community`) says so, so channels can mark it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.messages import Citation
from knowledge.readers import COMMUNITY
from knowledge.retrieval import Hit, logistic

MARKER = re.compile(r"\[(\d{1,3})\]")
_REPEATED = re.compile(r"\[(\d{1,3})\](?:\s*\[\1\])+")
_SPACE_BEFORE_STOP = re.compile(r"[ \t]+([.,;:!?])(?=\s|$)")
_SNIPPET_CHARS = 300


def public_link(hit: Hit) -> str:
    """The page's public address, or "" (a filesystem path is never one)."""
    url = hit.meta("url").strip()
    return url if url.startswith(("http://", "https://")) else ""


def page_key(hit: Hit) -> str:
    """What makes two passages the same page: the document id, else its source, else its title."""
    return hit.doc_id or hit.meta("source") or hit.meta("title")


def number_citations(text: str, hits: Sequence[Hit]) -> tuple[str, tuple[Citation, ...]]:
    """Renumber `[n]` markers (n = position in `hits`) by first use, one number per page; markers that point at no
    passage are dropped. Returns the new text and its citations, in number order."""
    numbers: dict[str, int] = {}  # page key -> new number
    first_hit: dict[int, Hit] = {}
    dropped = False

    def renumber(match: re.Match[str]) -> str:
        nonlocal dropped
        position = int(match.group(1))
        if not 1 <= position <= len(hits):
            dropped = True
            return ""
        hit = hits[position - 1]
        number = numbers.setdefault(page_key(hit), len(numbers) + 1)
        first_hit.setdefault(number, hit)
        return f"[{number}]"

    renumbered = _REPEATED.sub(r"[\1]", MARKER.sub(renumber, text))
    if dropped:  # "Bogus [9]." must not become "Bogus ."
        renumbered = _SPACE_BEFORE_STOP.sub(r"\1", renumbered)
    citations = tuple(_citation(number, hit) for number, hit in sorted(first_hit.items()))
    return renumbered, citations


def relevance(hit: Hit) -> float:
    """0..1, how well the passage answers the question as the trace shows it: the cross-encoder's judgement (the
    sigmoid of its logit; it ordered the hits) when it read the passage, else the dense cosine."""
    if hit.reader is None:
        return round(hit.cosine, 4)
    return round(logistic(hit.reader), 4)


def retrieved_passage(hit: Hit) -> Citation:
    """A retrieved passage the answer did not cite, as the trace keeps it (index 0: no marker points at it)."""
    return _citation(0, hit)


def _citation(number: int, hit: Hit) -> Citation:
    title = hit.meta("title") or "Help centre article"
    url = public_link(hit)
    return Citation(
        index=number,
        title=title,
        source=url or title,
        url=url,
        section=hit.meta("section"),
        snippet=hit.text[:_SNIPPET_CHARS],
        score=relevance(hit),
        chunk_id=hit.node.node_id,
        community=hit.meta("trust") == COMMUNITY,
    )
