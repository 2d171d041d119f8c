"""The scale-out store: a Qdrant server or cluster through `llama-index-vector-stores-qdrant`.

The upstream store fetches dense and sparse results in two requests and fuses them in Python. We keep its writes,
deletes, payload format and filter translation, and override the query so Qdrant does the fusion itself: one
`query_points` call with a dense and a sparse prefetch and a weighted RRF query, the same plan the embedded store
runs. Sparse vectors come from the shared BM25 encoder, and the collection's sparse vector has the IDF modifier.
The sync client is used from a worker thread for async calls (qdrant-client's `:memory:` mode, used in tests, keeps
separate data per client object, so one client must serve both).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode, VectorStoreQueryResult
from llama_index.vector_stores.qdrant import QdrantVectorStore
from pydantic import PrivateAttr
from qdrant_client import QdrantClient
from qdrant_client import models as rest

from knowledge.fusion import DENSE_VECTOR, SPARSE_VECTOR, FusionPlan
from knowledge.sparse import Bm25Encoder


class FusedQdrantVectorStore(QdrantVectorStore):
    """QdrantVectorStore whose hybrid query is fused inside Qdrant (prefetch + weighted RRF), not client-side."""

    _plan: FusionPlan = PrivateAttr()
    _encoder: Bm25Encoder = PrivateAttr()

    def __init__(self, client: QdrantClient, collection_name: str, encoder: Bm25Encoder, plan: FusionPlan) -> None:
        super().__init__(
            collection_name=collection_name,
            client=client,
            enable_hybrid=True,
            sparse_doc_fn=encoder.documents_for_llamaindex,
            sparse_query_fn=encoder.queries_for_llamaindex,
            dense_vector_name=DENSE_VECTOR,
            sparse_vector_name=SPARSE_VECTOR,
            sparse_config=rest.SparseVectorParams(index=rest.SparseIndexParams(), modifier=rest.Modifier.IDF),
        )
        self._plan = plan
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "FusedQdrantVectorStore"

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        if not self._collection_exists(self.collection_name):
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        condition = self._build_query_filter(query)
        top_k = query.similarity_top_k
        dense = list(query.query_embedding) if query.query_embedding is not None else None
        sparse = None
        if query.query_str:
            encoded = self._encoder.query(query.query_str)
            sparse = rest.SparseVector(indices=list(encoded.indices), values=list(encoded.values))
        common: dict[str, Any] = {"with_payload": True, "with_vectors": [DENSE_VECTOR], "query_filter": condition}
        if query.mode == VectorStoreQueryMode.HYBRID and dense is not None and sparse is not None:
            limit = self._plan.prefetch_limit(query.hybrid_top_k or top_k)
            dense_weight, sparse_weight = self._plan.weights(query.alpha)
            response = self._client.query_points(
                collection_name=self.collection_name,
                prefetch=[
                    rest.Prefetch(query=dense, using=DENSE_VECTOR, limit=limit, filter=condition),
                    rest.Prefetch(
                        query=sparse, using=SPARSE_VECTOR, limit=query.sparse_top_k or limit, filter=condition
                    ),
                ],
                query=rest.RrfQuery(rrf=rest.Rrf(k=self._plan.rrf_k, weights=[dense_weight, sparse_weight])),
                limit=query.hybrid_top_k or top_k,
                **common,
            )
        elif query.mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH) or dense is None:
            if sparse is None:
                raise ValueError("a sparse query needs query_str")
            response = self._client.query_points(
                collection_name=self.collection_name,
                query=sparse,
                using=SPARSE_VECTOR,
                limit=query.sparse_top_k or top_k,
                **common,
            )
        else:
            response = self._client.query_points(
                collection_name=self.collection_name, query=dense, using=DENSE_VECTOR, limit=top_k, **common
            )
        return self.parse_to_query_result(response.points)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query)

    async def adelete(self, ref_doc_id: str, shard_identifier: Any | None = None, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id)

    def count(self, ref_doc_id: str | None = None) -> int:
        """Points in the collection, or of one document."""
        if not self._collection_exists(self.collection_name):
            return 0
        condition = None
        if ref_doc_id is not None:
            condition = rest.Filter(must=[rest.FieldCondition(key="doc_id", match=rest.MatchValue(value=ref_doc_id))])
        return int(self._client.count(self.collection_name, count_filter=condition, exact=True).count)

    def delete_except(self, ref_doc_id: str, keep: Sequence[str]) -> None:
        """Delete the document's points whose ids are not in `keep` (older versions, leftovers of a killed run)."""
        if not self._collection_exists(self.collection_name):
            return
        condition = rest.Filter(
            must=[rest.FieldCondition(key="doc_id", match=rest.MatchValue(value=ref_doc_id))],
            must_not=[rest.HasIdCondition(has_id=list(keep))] if keep else None,
        )
        self._client.delete(self.collection_name, points_selector=rest.FilterSelector(filter=condition), wait=True)

    def flush(self) -> None:
        """Writes are durable on the server when `upsert` returns."""

    def reload(self) -> None:
        """Nothing to reopen: the server's optimizer vacuums deleted points (see `EdgeVectorStore.reload`)."""

    def close(self) -> None:
        self._client.close()
