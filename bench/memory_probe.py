"""The memory probe `bench knowledge` runs in fresh processes: where a service's memory goes at N chunks.

    python -m bench.memory_probe build 100000 /tmp/somewhere   # ingest-side: imports, model, load, index
    python -m bench.memory_probe serve /tmp/somewhere          # a restarted service on that store: open, query

Each prints one JSON object: RSS after each stage split into anonymous memory (heaps: Python, onnxruntime, the
Qdrant engine) and file-backed pages (shared libraries, memory-mapped segment files the kernel can drop), the glibc
heap's in-use bytes, peak RSS, and hybrid+filter search p50/p95 with real query embeddings.

The chunks are realistic, the vectors derived. A few hundred synthetic help articles (with front matter) go through
the real reader and chunker, so every point carries a real chunk's text and payload (title, section, source,
relationships: ~2.3 KB); `REAL_VECTORS` of those chunks are embedded by the real model (which also warms its
buffers the way an ingest does, and gives the embedding throughput). The N points are copies of the chunks with
their own ids and documents, each with a real vector plus small noise (cosine ~0.95 to it), so the HNSW graph sees
clustered, text-like vectors instead of uniform noise. Embedding 100k chunks for real takes over an hour here;
ingest throughput is measured with the real pipeline on a smaller sample by `bench knowledge`.
"""

from __future__ import annotations

import ctypes
import json
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import psutil

REAL_VECTORS = 256
ARTICLES = 400
QUESTIONS = 60
CATEGORIES = ("billing", "backup", "admin")


def memory_now() -> dict[str, float]:
    """RSS and its anonymous / file-backed parts (MB, from /proc/self/status), and the glibc heap in use."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
            fields[key] = int(value.split()[0]) / 1e3  # kB
    return {
        "rss": fields.get("VmRSS", psutil.Process().memory_info().rss / 1e6),
        "anon": fields.get("RssAnon", 0.0),
        "file": fields.get("RssFile", 0.0) + fields.get("RssShmem", 0.0),
        "malloc_in_use": _malloc_in_use_mb(),
    }


def _malloc_in_use_mb() -> float:
    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks")] + [
            (name, ctypes.c_size_t) for name in ("fsmblks", "uordblks", "fordblks", "keepcost")
        ]

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Mallinfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return float("nan")
    return float(info.uordblks + info.hblkhd) / 1e6


class Stages:
    """Memory after each named stage, flattened into the probe's JSON."""

    def __init__(self) -> None:
        self.figures: dict[str, float] = {}

    def mark(self, stage: str) -> None:
        for part, value in memory_now().items():
            self.figures[f"{part}_{stage}_mb"] = round(value, 1)


def articles(folder: Path, count: int, rng: random.Random) -> Path:
    from bench.bench_knowledge import article

    folder.mkdir(parents=True, exist_ok=True)
    for number in range(count):
        front = f"---\ntitle: Article {number}\ncategory: {CATEGORIES[number % 3]}\n---\n"
        (folder / f"article-{number}.md").write_text(front + article(rng, number))
    return folder


def real_chunks(folder: Path, data_dir: Path) -> list[Any]:
    # lazy: measured stage (these imports belong to the ingest side)
    from knowledge.chunking import node_parsers
    from knowledge.embedding import model_tokenizer
    from knowledge.readers import read_file

    nodes: list[Any] = [read_file(path.resolve()) for path in sorted(folder.glob("*.md"))]
    for transform in node_parsers(model_tokenizer(data_dir)):
        nodes = transform(nodes)
    return nodes


def build(size: int, folder: Path) -> dict[str, float]:
    stages = Stages()
    # lazy: every import below is measured: the first figure is RSS after them, in this fresh process
    import numpy as np
    import qdrant_edge as qe
    from llama_index.core.schema import MetadataMode, NodeRelationship, RelatedNodeInfo

    from knowledge.config import KnowledgeConfig
    from knowledge.edge_store import EdgeVectorStore, point_payload, release_free_memory
    from knowledge.embedding import FastEmbedEmbedding, load_text_embedding
    from knowledge.fusion import DENSE_VECTOR, SPARSE_VECTOR
    from knowledge.sparse import Bm25Encoder

    stages.mark("imports")
    settings = KnowledgeConfig(data_dir=folder / "data")
    embedder = FastEmbedEmbedding(load_text_embedding(settings.embedding_model, settings.data_dir))
    embedder.get_query_embedding("warm up")
    stages.mark("model")
    chunks = real_chunks(articles(folder / "kb", ARTICLES, random.Random(7)), settings.data_dir)
    texts = [chunk.get_content(metadata_mode=MetadataMode.EMBED) for chunk in chunks[:REAL_VECTORS]]
    started = time.perf_counter()
    real = np.asarray(embedder.embed_texts(texts), dtype=np.float32)
    figures = {"real_chunks": float(len(chunks)), "embed_chunks_per_s": len(texts) / (time.perf_counter() - started)}
    stages.mark("embedded_sample")
    encoder = Bm25Encoder()
    store = EdgeVectorStore(folder / "store", real.shape[1], encoder)
    noise = np.random.default_rng(11)
    tracemalloc.start()
    started = time.perf_counter()
    batch = []
    for number in range(size):
        template = chunks[number % len(chunks)]
        copy = template.model_copy(update={"id_": f"chunk-{number}"})
        copy.relationships = dict(template.relationships)
        source = template.relationships[NodeRelationship.SOURCE]
        copy.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(
            node_id=f"{source.node_id}#{number // len(chunks)}", metadata=source.metadata, hash=source.hash
        )
        vector = real[number % len(real)] + noise.standard_normal(real.shape[1], dtype=np.float32) * 0.017
        vector /= np.linalg.norm(vector)
        sparse = encoder.document(copy.get_content(metadata_mode=MetadataMode.EMBED))
        named = {DENSE_VECTOR: vector.tolist(), SPARSE_VECTOR: qe.SparseVector(list(sparse.indices), list(sparse.values))}
        batch.append(qe.Point(number + 1, named, point_payload(copy)))
        if len(batch) == 1000:
            store.client.update(qe.UpdateOperation.upsert_points(batch))
            batch = []
    if batch:
        store.client.update(qe.UpdateOperation.upsert_points(batch))
    figures["python_heap_peak_during_load_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    figures["load_s"] = time.perf_counter() - started
    stages.mark("loaded")
    started = time.perf_counter()
    store.client.optimize()
    figures["index_s"] = time.perf_counter() - started
    stages.mark("indexed")
    release_free_memory()
    stages.mark("released")
    store.reload()  # what a sync that deleted chunks does
    stages.mark("reopened")
    figures.update(_queries(store, embedder, stages))
    figures["peak_rss_mb"] = _peak_mb()
    store.close()
    return stages.figures | figures


def serve(folder: Path) -> dict[str, float]:
    """A restarted service: the model and the existing store, then queries (no ingest in this process)."""
    stages = Stages()
    # lazy: measured, as in build()
    from knowledge.config import KnowledgeConfig
    from knowledge.edge_store import EdgeVectorStore
    from knowledge.embedding import FastEmbedEmbedding, load_text_embedding
    from knowledge.sparse import Bm25Encoder

    stages.mark("imports")
    settings = KnowledgeConfig(data_dir=folder / "data")
    embedder = FastEmbedEmbedding(load_text_embedding(settings.embedding_model, settings.data_dir))
    embedder.get_query_embedding("warm up")
    stages.mark("model")
    started = time.perf_counter()
    store = EdgeVectorStore(folder / "store", 384, Bm25Encoder())
    figures = {"open_s": time.perf_counter() - started}
    stages.mark("opened")
    figures.update(_queries(store, embedder, stages))
    figures["peak_rss_mb"] = _peak_mb()
    store.close()
    return stages.figures | figures


def _queries(store: Any, embedder: Any, stages: Stages) -> dict[str, float]:
    """180 hybrid searches with a category filter, real query embeddings computed beforehand (search time only)."""
    from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

    from bench.bench_knowledge import sentence
    from bench.harness import Timer
    from knowledge.fusion import FusionPlan
    from knowledge.retrieval import HybridRetriever

    questions = [sentence(random.Random(n)) for n in range(QUESTIONS)]
    vectors = [embedder.get_query_embedding(question) for question in questions]
    retriever = HybridRetriever(store, embedder, 5, FusionPlan(), store._encoder)
    only_billing = MetadataFilters(filters=[MetadataFilter(key="category", value="billing")])
    timer = Timer()
    for question, vector in list(zip(questions, vectors, strict=True)) * 3:
        with timer.measure():
            retriever.search(question, embedding=vector, filters=only_billing)
    stages.mark("after_queries")
    summary = timer.summary()
    return {"search_p50_ms": summary["p50_ms"], "search_p95_ms": summary["p95_ms"]}


def _peak_mb() -> float:
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3)  # Linux: kilobytes


if __name__ == "__main__":
    if sys.argv[1] == "build":
        print(json.dumps(build(int(sys.argv[2]), Path(sys.argv[3]))))
    else:
        print(json.dumps(serve(Path(sys.argv[2]))))
