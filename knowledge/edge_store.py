"""A LlamaIndex vector store over qdrant-edge: the real Qdrant engine, in-process, in a data folder.

Why our own: qdrant-edge has no LlamaIndex integration, and qdrant-client's local mode is a brute-force Python
stand-in (seconds per query at 100k points). The shard keeps a WAL, HNSW for the dense vectors, a sparse index with
IDF for BM25, payload indexes for filters, and fuses dense + sparse with weighted RRF inside one query. Points
carry the same payload as `llama-index-vector-stores-qdrant` writes, so nodes round-trip the same way on both paths.
Calls block; async methods run them in a worker thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from pydantic import PrivateAttr

from bot.errors import ConfigError
from knowledge.fusion import DENSE_VECTOR, SPARSE_VECTOR, FusionPlan
from knowledge.sparse import Bm25Encoder

INDEXED_KEYWORDS = ("doc_id", "source", "title", "product", "category", "language")


class EdgeVectorStore(BasePydanticVectorStore):
    """Dense + BM25 hybrid store on an embedded qdrant-edge shard (add, delete, filtered query, RRF hybrid)."""

    stores_text: bool = True
    flat_metadata: bool = False
    path: str
    dimensions: int

    _shard: Any = PrivateAttr()
    _encoder: Bm25Encoder = PrivateAttr()
    _plan: FusionPlan = PrivateAttr()
    _lock: threading.Lock = PrivateAttr()
    _gate: _ReopenGate = PrivateAttr()

    def __init__(self, path: Path, dimensions: int, encoder: Bm25Encoder, plan: FusionPlan | None = None) -> None:
        super().__init__(stores_text=True, path=str(path), dimensions=dimensions)
        self._encoder = encoder
        self._plan = plan or FusionPlan()
        self._lock = threading.Lock()  # writes, one at a time
        self._gate = _ReopenGate()  # reads run together, never during a reopen
        self._shard = _open_shard(path, dimensions)

    @classmethod
    def class_name(cls) -> str:
        return "EdgeVectorStore"

    @property
    def client(self) -> Any:
        return self._shard

    # --- writes ---

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> list[str]:
        if not nodes:
            return []
        points = []
        for node in nodes:
            sparse = self._encoder.document(node.get_content(metadata_mode=MetadataMode.EMBED))
            vector: dict[str, Any] = {
                DENSE_VECTOR: node.get_embedding(),
                SPARSE_VECTOR: qe.SparseVector(list(sparse.indices), list(sparse.values)),
            }
            points.append(qe.Point(node.node_id, vector, point_payload(node)))
        with self._lock:
            for start in range(0, len(points), 256):
                self._shard.update(qe.UpdateOperation.upsert_points(points[start : start + 256]))
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        condition = qe.Filter(must=[qe.FieldCondition("doc_id", match=qe.MatchValue(ref_doc_id))])
        with self._lock:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(condition))

    def delete_except(self, ref_doc_id: str, keep: Sequence[str]) -> None:
        """Delete the document's points whose ids are not in `keep` (older versions, leftovers of a killed run)."""
        condition = qe.Filter(
            must=[qe.FieldCondition("doc_id", match=qe.MatchValue(ref_doc_id))],
            must_not=[qe.HasIdCondition(set(keep))] if keep else None,
        )
        with self._lock:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(condition))

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        with self._lock:
            if node_ids:
                self._shard.update(qe.UpdateOperation.delete_points(list(node_ids)))
            if filters is not None:
                self._shard.update(qe.UpdateOperation.delete_points_by_filter(edge_filter(filters)))

    def clear(self) -> None:
        with self._lock:
            self._shard.update(qe.UpdateOperation.delete_points_by_filter(qe.Filter()))

    def count(self, ref_doc_id: str | None = None) -> int:
        """Points in the shard, or of one document."""
        condition = None
        if ref_doc_id is not None:
            condition = qe.Filter(must=[qe.FieldCondition("doc_id", match=qe.MatchValue(ref_doc_id))])
        with self._gate.reading():
            return int(self._shard.count(qe.CountRequest(exact=True, filter=condition)))

    def flush(self) -> None:
        """Make the writes durable, then run the shard's optimizer. qdrant-edge has no background optimizer: without
        this every point stays in one plain appendable segment, searched by full scan (p95 ~0.5 s at 100k chunks)
        and loaded whole into RAM on open. Optimized segments carry the HNSW graph and keep vectors and payloads in
        memory-mapped files. Returns at once when the segments are already optimal (a small KB stays plain). After
        an optimization the shard is reopened: the replaced segments stay mapped until then (+600 MB at 100k)."""
        with self._lock:
            self._shard.flush()
            if self._shard.optimize():
                self._reopen()

    def reload(self) -> None:
        """Reopen the shard after deletes or overwrites: qdrant-edge keeps deleted points in the sparse vector's
        IDF statistics until the shard is loaded again (its optimizer only vacuums large deleted fractions), so
        without this a re-ingested page would keep skewing BM25 weights. Queries wait for the reopen."""
        with self._lock:
            self._reopen()

    def _reopen(self) -> None:
        with self._gate.reopening():
            self._shard.flush()
            self._shard.close()
            self._shard = _open_shard(Path(self.path), self.dimensions)

    def close(self) -> None:
        with self._lock:
            self._shard.flush()
            self._shard.close()

    # --- reads ---

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        request = self.build_request(query)
        with self._gate.reading():
            points = self._shard.query(request)
        return self.parse(points)

    def build_request(self, query: VectorStoreQuery) -> Any:
        """The qdrant-edge request for a LlamaIndex query (dense, sparse or hybrid; filters applied everywhere)."""
        condition = _query_filter(query)
        top_k = query.similarity_top_k
        dense = None
        if query.query_embedding is not None:
            dense = qe.Query.Nearest(list(query.query_embedding), using=DENSE_VECTOR)
        sparse = None
        if query.query_str:
            encoded = self._encoder.query(query.query_str)
            sparse = qe.Query.Nearest(qe.SparseVector(list(encoded.indices), list(encoded.values)), using=SPARSE_VECTOR)
        common: dict[str, Any] = {"with_payload": True, "with_vector": [DENSE_VECTOR], "filter": condition}
        if query.mode == VectorStoreQueryMode.HYBRID and dense is not None and sparse is not None:
            limit = self._plan.prefetch_limit(query.hybrid_top_k or top_k)
            dense_weight, sparse_weight = self._plan.weights(query.alpha)
            prefetches = [
                qe.Prefetch(limit=limit, query=dense, filter=condition),
                qe.Prefetch(limit=query.sparse_top_k or limit, query=sparse, filter=condition),
            ]
            fusion = qe.Fusion.Rrf(k=self._plan.rrf_k, weights=[dense_weight, sparse_weight])
            return qe.QueryRequest(
                limit=query.hybrid_top_k or top_k,
                prefetches=prefetches,
                query=fusion,  # type: ignore[arg-type]  # the stub's union lacks the nested Fusion.Rrf class
                **common,
            )
        if query.mode in (VectorStoreQueryMode.SPARSE, VectorStoreQueryMode.TEXT_SEARCH) or dense is None:
            if sparse is None:
                raise ValueError("a sparse query needs query_str")
            return qe.QueryRequest(limit=query.sparse_top_k or top_k, query=sparse, **common)
        return qe.QueryRequest(limit=top_k, query=dense, **common)

    def parse(self, points: Sequence[Any]) -> VectorStoreQueryResult:
        nodes, scores, ids = [], [], []
        for point in points:
            node = metadata_dict_to_node(dict(point.payload or {}))
            vector = point.vector
            if isinstance(vector, dict) and DENSE_VECTOR in vector:
                node.embedding = list(vector[DENSE_VECTOR])
            nodes.append(node)
            scores.append(float(point.score))
            ids.append(str(point.id))
        return VectorStoreQueryResult(nodes=nodes, similarities=scores, ids=ids)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query)

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        await asyncio.to_thread(self.delete, ref_doc_id)


class _ReopenGate:
    """Many readers at once, or one reopen alone (a reopen waits for running reads; new reads wait for it)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._reopening = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._reopening)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextmanager
    def reopening(self) -> Iterator[None]:
        with self._condition:
            self._reopening = True
            self._condition.wait_for(lambda: self._readers == 0)
        try:
            yield
        finally:
            with self._condition:
                self._reopening = False
                self._condition.notify_all()


def point_payload(node: BaseNode) -> dict[str, Any]:
    """What a point stores besides its vectors: the payload `llama-index-vector-stores-qdrant` writes."""
    return node_to_metadata_dict(node, remove_text=False, flat_metadata=False)


def _open_shard(path: Path, dimensions: int) -> Any:
    # Memory placement stays Qdrant's default (vectors cached, payloads on disk): int8 quantized vectors in RAM
    # with the originals on disk saved ~10 % RSS at 20k chunks but doubled search p50/p95 (`bench knowledge`).
    config = qe.EdgeConfig(
        vectors={DENSE_VECTOR: qe.EdgeVectorParams(size=dimensions, distance=qe.Distance.Cosine)},
        sparse_vectors={SPARSE_VECTOR: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)},
    )
    if path.exists() and any(path.iterdir()):
        try:
            shard = qe.EdgeShard.load(str(path), config)
        except Exception as exc:
            if "WouldBlock" in str(exc):  # its write-ahead log is locked: another process has the index open
                raise ConfigError(
                    f"DATA_DIR: the index at {path} is open in another process (a running `supportbot serve`?); "
                    "run this command with that service's HTTP_PORT so it goes through the service, or stop it"
                ) from exc
            raise
    else:
        path.mkdir(parents=True, exist_ok=True)
        shard = qe.EdgeShard.create(str(path), config)
    existing = set(shard.info().payload_schema)
    for key in INDEXED_KEYWORDS:
        if key not in existing:
            shard.update(qe.UpdateOperation.create_field_index(key, qe.PayloadSchemaType.Keyword))
    return shard


def _query_filter(query: VectorStoreQuery) -> Any:
    must: list[Any] = []
    if query.doc_ids:
        must.append(qe.FieldCondition("doc_id", match=qe.MatchAny(list(query.doc_ids))))
    if query.node_ids:
        must.append(qe.HasIdCondition(set(query.node_ids)))
    if query.filters is not None and query.filters.filters:
        must.append(edge_filter(query.filters))
    return qe.Filter(must=must) if must else None


def edge_filter(filters: MetadataFilters) -> Any:
    """LlamaIndex metadata filters as a qdrant-edge filter (same operators as the Qdrant server store)."""
    conditions = [
        edge_filter(item) if isinstance(item, MetadataFilters) else _condition(item) for item in filters.filters
    ]
    if filters.condition == FilterCondition.OR:
        return qe.Filter(should=conditions)
    if filters.condition == FilterCondition.NOT:
        return qe.Filter(must_not=conditions)
    return qe.Filter(must=conditions)


def _condition(item: MetadataFilter) -> Any:
    op, key = item.operator, item.key
    value: Any = item.value
    if op in (FilterOperator.EQ, FilterOperator.CONTAINS) and not isinstance(value, float):
        return qe.FieldCondition(key, match=qe.MatchValue(value))
    ranges = {
        FilterOperator.EQ: {"gte": value, "lte": value},
        FilterOperator.GT: {"gt": value},
        FilterOperator.GTE: {"gte": value},
        FilterOperator.LT: {"lt": value},
        FilterOperator.LTE: {"lte": value},
    }
    if op in ranges:
        return qe.FieldCondition(key, range=qe.RangeFloat(**ranges[op]))
    values = value if isinstance(value, list) else str(value).split(",")
    if op in (FilterOperator.IN, FilterOperator.ANY):
        return qe.FieldCondition(key, match=qe.MatchAny(values))
    if op == FilterOperator.NIN:
        return qe.FieldCondition(key, match=qe.MatchExcept(values))
    if op == FilterOperator.NE:
        return qe.FieldCondition(key, match=qe.MatchExcept([value]))
    if op in (FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE):
        return qe.FieldCondition(key, match=qe.MatchText(str(value)))
    if op == FilterOperator.IS_EMPTY:
        return qe.IsEmptyCondition(key)
    raise NotImplementedError(f"filter operator {op} is not supported")
