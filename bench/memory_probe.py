"""The memory probe `bench knowledge` runs in a fresh process: the service's knowledge side (imports, embedding
model, the embedded store) with N synthetic chunks, then hybrid+filter queries. Prints one JSON object: RSS after
each stage, the Python heap's share (tracemalloc) and query latency. A fresh process, so nothing the ingestion
benchmark left behind counts.

    python -m bench.memory_probe 100000 /tmp/somewhere
"""

from __future__ import annotations

import json
import random
import sys
import time
import tracemalloc
from pathlib import Path

import psutil


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss / 1e6)


def main(size: int, folder: Path) -> dict[str, float]:
    # lazy: every import below is measured: the first figure is RSS after them, in this fresh process
    import numpy as np
    import qdrant_edge as qe
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    from bench.bench_knowledge import sentence
    from bench.harness import Timer
    from knowledge.config import KnowledgeConfig
    from knowledge.edge_store import EdgeVectorStore
    from knowledge.embedding import FastEmbedEmbedding, load_text_embedding
    from knowledge.fusion import DENSE_VECTOR, SPARSE_VECTOR, FusionPlan
    from knowledge.retrieval import HybridRetriever
    from knowledge.sparse import Bm25Encoder

    figures = {"rss_imports_mb": rss_mb()}
    settings = KnowledgeConfig(data_dir=folder / "data")
    embedder = FastEmbedEmbedding(load_text_embedding(settings.embedding_model, settings.data_dir))
    embedder.get_query_embedding("warm up")
    figures["rss_model_mb"] = rss_mb()
    encoder = Bm25Encoder()
    store = EdgeVectorStore(folder / "store", 384, encoder)
    rng, vectors = random.Random(11), np.random.default_rng(11)
    tracemalloc.start()
    started = time.perf_counter()
    batch = []
    for number in range(size):
        text = sentence(rng) + " " + sentence(rng)
        node = TextNode(text=text, metadata={"title": "Synthetic", "category": rng.choice(["billing", "backup", "x"])})
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{number // 8}")
        sparse = encoder.document(text)
        named = {
            DENSE_VECTOR: vectors.standard_normal(384, dtype=np.float32).tolist(),
            SPARSE_VECTOR: qe.SparseVector(list(sparse.indices), list(sparse.values)),
        }
        batch.append(qe.Point(number + 1, named, node_to_metadata_dict(node)))
        if len(batch) == 1000:
            store.client.update(qe.UpdateOperation.upsert_points(batch))
            batch = []
    if batch:
        store.client.update(qe.UpdateOperation.upsert_points(batch))
    figures["python_heap_peak_during_load_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    figures["rss_loaded_mb"] = rss_mb()
    store.client.optimize()
    figures["load_and_index_s"] = time.perf_counter() - started
    figures["rss_indexed_mb"] = rss_mb()
    if hasattr(store, "reload"):  # absent before the ingestion-state change; the probe also measures that code
        store.reload()  # what a service sees after a restart (and after a sync that deleted chunks)
    figures["rss_reopened_mb"] = rss_mb()
    retriever = HybridRetriever(store, embedder, 5, FusionPlan(), encoder)
    only_billing = MetadataFilters(filters=[MetadataFilter(key="category", value="billing")])
    timer = Timer()
    questions = [sentence(random.Random(n)) for n in range(60)]
    for question in questions * 3:
        vector = vectors.standard_normal(384, dtype=np.float32).tolist()
        with timer.measure():
            retriever.search(question, embedding=vector, filters=only_billing)
    summary = timer.summary()
    figures["search_p50_ms"], figures["search_p95_ms"] = summary["p50_ms"], summary["p95_ms"]
    figures["rss_after_queries_mb"] = rss_mb()
    figures["peak_rss_mb"] = _peak_mb()
    store.close()
    return figures


def _peak_mb() -> float:
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)  # Linux: kilobytes


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), Path(sys.argv[2]))))
