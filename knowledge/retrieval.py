"""Hybrid retrieval (dense + BM25, fused with RRF in Qdrant) and the retrieval half of the confidence.

`HybridRetriever` is a LlamaIndex retriever, so it plugs into query engines; `search()` returns `Hit`s that also
carry the dense cosine of each chunk (its vector comes back with the fused result), because RRF scores are ranks,
not relevance: they cannot say "nothing here answers this". The confidence mixes the best cosine (semantic match)
with how many of the question's content words the top chunks contain (lexical coverage).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from knowledge.sparse import Bm25Encoder

Mode = Literal["hybrid", "dense", "sparse"]
_MODES = {
    "hybrid": VectorStoreQueryMode.HYBRID,
    "dense": VectorStoreQueryMode.DEFAULT,
    "sparse": VectorStoreQueryMode.SPARSE,
}

# Cosine similarities of all-MiniLM-L6-v2 between a question and a chunk: unrelated text sits below ~0.25,
# a chunk that answers the question usually above ~0.55.
COSINE_FLOOR = 0.25
COSINE_CEILING = 0.60


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk, with its fused rank score and its dense cosine to the question."""

    node: BaseNode
    score: float
    cosine: float

    @property
    def text(self) -> str:
        return self.node.get_content(metadata_mode=MetadataMode.NONE)

    def meta(self, key: str) -> str:
        return str(self.node.metadata.get(key, "") or "")

    @property
    def doc_id(self) -> str:
        return self.node.ref_doc_id or self.meta("source")


def metadata_filters(filters: Mapping[str, str] | None) -> MetadataFilters | None:
    """The port's simple `{key: value}` filters as LlamaIndex metadata filters (all must match)."""
    if not filters:
        return None
    return MetadataFilters(filters=[MetadataFilter(key=key, value=value) for key, value in filters.items()])


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


class HybridRetriever(BaseRetriever):
    """Dense + sparse retrieval through one vector store query; Qdrant fuses the two lists."""

    def __init__(self, store: BasePydanticVectorStore, embed_model: BaseEmbedding, top_k: int = 5) -> None:
        super().__init__()
        self._store = store
        self._embed_model = embed_model
        self._top_k = top_k

    def search(
        self,
        question: str,
        embedding: Sequence[float] | None = None,
        filters: MetadataFilters | None = None,
        mode: Mode = "hybrid",
        top_k: int | None = None,
    ) -> list[Hit]:
        """Blocking search; embeds the question unless an embedding is given (or the mode is sparse)."""
        if embedding is None and mode != "sparse":
            embedding = self._embed_model.get_query_embedding(question)
        query = VectorStoreQuery(
            query_embedding=list(embedding) if embedding is not None else None,
            query_str=question,
            similarity_top_k=top_k or self._top_k,
            mode=_MODES[mode],
            filters=filters,
        )
        result = self._store.query(query)
        hits = []
        for node, score in zip(result.nodes or [], result.similarities or [], strict=False):
            similarity = cosine(embedding, node.embedding) if embedding is not None and node.embedding else 0.0
            node.embedding = None  # not needed past this point; keeps answers light
            hits.append(Hit(node=node, score=float(score), cosine=similarity))
        return hits

    async def asearch(
        self, question: str, filters: MetadataFilters | None = None, mode: Mode = "hybrid", top_k: int | None = None
    ) -> list[Hit]:
        return await asyncio.to_thread(self.search, question, None, filters, mode, top_k)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.search(query_bundle.query_str, query_bundle.embedding)
        return [NodeWithScore(node=hit.node, score=hit.score) for hit in hits]


def retrieval_confidence(question: str, hits: Sequence[Hit], encoder: Bm25Encoder, depth: int = 3) -> float:
    """0..1: how well the best chunks match the question, semantically (cosine) and lexically (term coverage)."""
    if not hits:
        return 0.0
    best = max(hit.cosine for hit in hits[:depth])
    semantic = min(1.0, max(0.0, (best - COSINE_FLOOR) / (COSINE_CEILING - COSINE_FLOOR)))
    terms = set(encoder.query(question).indices)
    if not terms:
        return semantic
    covered: set[int] = set()
    for hit in hits[:depth]:
        covered |= set(encoder.document(_searchable(hit)).indices)
    lexical = len(terms & covered) / len(terms)
    return round(0.65 * semantic + 0.35 * lexical * (1.0 if semantic > 0 else 0.5), 4)


def _searchable(hit: Hit) -> str:
    return f"{hit.meta('title')}\n{hit.meta('section')}\n{hit.text}"


def hits_summary(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """A loggable view of hits (no text)."""
    return [{"source": h.meta("source"), "section": h.meta("section"), "cosine": round(h.cosine, 3)} for h in hits]
