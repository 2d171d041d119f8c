"""Hybrid retrieval (dense + BM25, fused client-side by `knowledge.fusion`) returning scored `Hit`s.

`HybridRetriever` is a LlamaIndex retriever, so it plugs into query engines; `search()` asks the store for a dense
and a sparse candidate list and fuses them with the configured plan. Each `Hit` keeps its fused score, its dense
cosine (vectors come back with the points) and its raw BM25 score, because the confidence needs absolute evidence:
fused scores only order candidates, they cannot say "nothing here answers this" (see `knowledge.calibration`).

With a `Reader` (the cross-encoder of `knowledge.rerank`), the best `rerank_depth` fused candidates are read together
with the question and reordered by `fused / best fused + RERANK_WEIGHT x logit`; each hit keeps its logit in
`Hit.reader` for the confidence.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Protocol

import numpy as np
from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from knowledge.fusion import FusionPlan, fuse
from knowledge.sparse import Bm25Encoder

Mode = Literal["hybrid", "dense", "sparse"]
RERANK_WEIGHT = 0.1  # the reader's logit next to the fused score scaled to 0..1 (knowledge.rerank: how it was chosen)


class Reader(Protocol):
    """Scores how well each passage answers the question: one logit per passage (higher: more likely)."""

    def scores(self, question: str, passages: Sequence[str]) -> list[float]: ...


def logistic(logit: float) -> float:
    """The probability a logit stands for (clamped, so no logit overflows `exp`)."""
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, logit))))


@dataclass(frozen=True, slots=True)
class Hit:
    """One retrieved chunk, with its fused rank score and its dense cosine to the question."""

    node: BaseNode
    score: float
    cosine: float
    sparse: float = 0.0  # raw BM25 score (0 when the sparse arm did not return this chunk)
    reader: float | None = None  # the cross-encoder's logit (None when no reader ranked this search)

    @property
    def text(self) -> str:
        return self.node.get_content(metadata_mode=MetadataMode.NONE)

    def meta(self, key: str) -> str:
        return str(self.node.metadata.get(key, "") or "")

    @property
    def doc_id(self) -> str:
        return self.node.ref_doc_id or self.meta("source")

    @property
    def searchable(self) -> str:
        """Title, section and text: what the sparse index saw."""
        return f"{self.meta('title')}\n{self.meta('section')}\n{self.text}"


def metadata_filters(filters: Mapping[str, str] | None, include_community: bool = True) -> MetadataFilters | None:
    """The port's simple `{key: value}` filters as LlamaIndex metadata filters (all must match); without
    `include_community`, also "not a community tip" (a NOT condition, so chunks without a trust level pass)."""
    conditions: list[MetadataFilter | MetadataFilters] = [
        MetadataFilter(key=key, value=value) for key, value in (filters or {}).items()
    ]
    if not include_community:
        community = MetadataFilter(key="trust", value="community")
        conditions.append(MetadataFilters(filters=[community], condition=FilterCondition.NOT))
    return MetadataFilters(filters=conditions) if conditions else None


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    x, y = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    norm = float(np.linalg.norm(x) * np.linalg.norm(y))
    return float(x @ y) / norm if norm else 0.0


class HybridRetriever(BaseRetriever):
    """Dense + sparse retrieval: two candidate lists from the store, fused by the plan."""

    def __init__(
        self,
        store: BasePydanticVectorStore,
        embed_model: BaseEmbedding,
        top_k: int = 5,
        plan: FusionPlan | None = None,
        encoder: Bm25Encoder | None = None,
        reader: Reader | None = None,
        rerank_depth: int = 20,
    ) -> None:
        super().__init__()
        self._store = store
        self._embed_model = embed_model
        self._top_k = top_k
        self._plan = plan or FusionPlan()
        self._encoder = encoder or Bm25Encoder()
        self._reader = reader
        self._rerank_depth = rerank_depth if reader is not None else 0

    @property
    def reranks(self) -> bool:
        """Whether a hybrid search is reordered by a reader."""
        return self._rerank_depth > 0

    @property
    def plan(self) -> FusionPlan:
        return self._plan

    def with_plan(self, plan: FusionPlan) -> HybridRetriever:
        """The same store and models with another fusion plan (the fusion fit tries several)."""
        return HybridRetriever(
            self._store, self._embed_model, self._top_k, plan, self._encoder, self._reader, self._rerank_depth
        )

    def search(
        self,
        question: str,
        embedding: Sequence[float] | None = None,
        filters: MetadataFilters | None = None,
        mode: Mode = "hybrid",
        top_k: int | None = None,
        rerank: bool = True,
    ) -> list[Hit]:
        """Blocking search; embeds the question unless an embedding is given (or the mode is sparse). A hybrid
        search is reranked by the reader when there is one, unless `rerank` is off (the eval's fused-only row)."""
        limit = top_k or self._top_k
        if embedding is None and mode != "sparse":
            embedding = self._embed_model.get_query_embedding(question)
        reread = self._rerank_depth if mode == "hybrid" and rerank else 0
        depth = limit if mode != "hybrid" else self._plan.depth(max(limit, reread))
        dense: list[tuple[BaseNode, float]] = []
        sparse: list[tuple[BaseNode, float]] = []
        if mode != "sparse" and embedding is not None:
            query = VectorStoreQuery(query_embedding=list(embedding), similarity_top_k=depth, filters=filters)
            dense = self._query(query)
        if mode != "dense" and self._encoder.query(question).indices:
            query = VectorStoreQuery(
                query_str=question,
                similarity_top_k=depth,
                sparse_top_k=depth,
                mode=VectorStoreQueryMode.SPARSE,
                filters=filters,
            )
            sparse = self._query(query)
        nodes = {node.node_id: node for node, _ in [*sparse, *dense]}
        # the dense arm's score is the cosine already (the collection's distance); compute only the sparse-only ones
        cosines = {node.node_id: score for node, score in dense}
        for node_id, node in nodes.items():
            if node_id not in cosines:
                cosines[node_id] = (
                    cosine(embedding, node.embedding) if embedding is not None and node.embedding else 0.0
                )
        bm25 = {node.node_id: score for node, score in sparse}
        if mode == "dense":
            ranked = [(node.node_id, cosines[node.node_id]) for node, _ in dense]
        elif mode == "sparse":
            ranked = [(node.node_id, score) for node, score in sparse]
        else:
            ranked = fuse(
                [(n.node_id, cosines[n.node_id]) for n, _ in dense],
                [(n.node_id, s) for n, s in sparse],
                self._plan,
                cosines,
            )
        hits = []
        for node_id, score in ranked[: max(limit, reread)]:
            node = nodes[node_id]
            node.embedding = None  # not needed past this point; keeps answers light
            hits.append(Hit(node=node, score=float(score), cosine=cosines[node_id], sparse=bm25.get(node_id, 0.0)))
        if reread and self._reader is not None:
            hits = reranked(question, hits[:reread], self._reader) + hits[reread:]
        return hits[:limit]

    def _query(self, query: VectorStoreQuery) -> list[tuple[BaseNode, float]]:
        result = self._store.query(query)
        pairs = zip(result.nodes or [], result.similarities or [], strict=False)
        return [(node, float(score)) for node, score in pairs]

    async def asearch(
        self, question: str, filters: MetadataFilters | None = None, mode: Mode = "hybrid", top_k: int | None = None
    ) -> list[Hit]:
        return await asyncio.to_thread(self.search, question, None, filters, mode, top_k)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.search(query_bundle.query_str, query_bundle.embedding)
        return [NodeWithScore(node=hit.node, score=hit.score) for hit in hits]


def reranked(question: str, hits: Sequence[Hit], reader: Reader, weight: float = RERANK_WEIGHT) -> list[Hit]:
    """The hits reordered by fused score (scaled by the best one) + `weight` x the reader's logit, each carrying its
    logit in `Hit.reader`. Fused scores keep their values: the confidence reads their margins."""
    if not hits:
        return []
    logits = reader.scores(question, [hit.searchable for hit in hits])
    best = max(hit.score for hit in hits)
    scale = best if best > 0 else 1.0
    scored = [
        (hit.score / scale + weight * logit, position, replace(hit, reader=logit))
        for position, (hit, logit) in enumerate(zip(hits, logits, strict=True))
    ]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [hit for _, _, hit in scored]


def hits_summary(hits: Sequence[Hit]) -> list[dict[str, Any]]:
    """A loggable view of hits (no text)."""
    return [{"source": h.meta("source"), "section": h.meta("section"), "cosine": round(h.cosine, 3)} for h in hits]
