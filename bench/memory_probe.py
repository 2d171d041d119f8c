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

import contextlib
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
TRACED_POINTS = 2_000
MALLINFO2_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks")
MALLINFO2_FIELDS += ("fsmblks", "uordblks", "fordblks", "keepcost")


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
        _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS]

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

    def peak(self) -> float:
        return max(value for name, value in self.figures.items() if name.startswith("peak_"))

    def mark(self, stage: str) -> None:
        """Memory now, and the peak RSS since the previous mark (the kernel's high-water mark, then reset)."""
        for part, value in memory_now().items():
            self.figures[f"{part}_{stage}_mb"] = round(value, 1)
        status = Path("/proc/self/status").read_text()
        peak = next((line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")), "nan")
        self.figures[f"peak_{stage}_mb"] = round(float(peak) / 1e3, 1)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def articles(folder: Path, count: int, rng: random.Random) -> Path:
    from bench.bench_knowledge import article  # lazy: the probe's first figure is RSS after its measured imports

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
    from llama_index.core.schema import MetadataMode

    from knowledge.config import KnowledgeConfig
    from knowledge.edge_store import EdgeVectorStore
    from knowledge.embedding import FastEmbedEmbedding, load_text_embedding
    from knowledge.fusion import DENSE_VECTOR, SPARSE_VECTOR
    from knowledge.heap import release_free_memory
    from knowledge.sparse import Bm25Encoder

    stages.mark("imports")
    settings = KnowledgeConfig(data_dir=folder / "data")
    embedder = FastEmbedEmbedding(load_text_embedding(settings.embedding_model, settings.data_dir))
    embedder.get_query_embedding("warm up")
    stages.mark("model")
    chunks = real_chunks(articles(folder / "kb", ARTICLES, random.Random(7)), settings.data_dir)
    texts = [chunk.get_content(metadata_mode=MetadataMode.EMBED) for chunk in chunks[:REAL_VECTORS]]
    stages.mark("chunked")
    started = time.perf_counter()
    real = np.asarray(embedder.embed_texts(texts), dtype=np.float32)
    figures = {"real_chunks": float(len(chunks)), "embed_chunks_per_s": len(texts) / (time.perf_counter() - started)}
    stages.mark("embedded_sample")
    encoder = Bm25Encoder()
    store = EdgeVectorStore(folder / "store", real.shape[1], encoder)
    templates = [_template(chunk, encoder) for chunk in chunks]
    noise = np.random.default_rng(11)
    tracemalloc.start()
    started = time.perf_counter()
    batch = []
    for number in range(size):
        payload, sparse = _copy(templates[number % len(templates)], number, number // len(templates))
        vector = real[number % len(real)] + noise.standard_normal(real.shape[1], dtype=np.float32) * 0.017
        vector /= np.linalg.norm(vector)
        named = {DENSE_VECTOR: vector.tolist(), SPARSE_VECTOR: sparse}
        batch.append(qe.Point(_point_id(number), named, payload))
        if len(batch) == 256:  # the store's own batch size
            store.client.update(qe.UpdateOperation.upsert_points(batch))
            batch = []
        if number == TRACED_POINTS:  # tracing every allocation slows the load tenfold: a sample is enough
            figures["python_heap_peak_first_points_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
    if batch:
        store.client.update(qe.UpdateOperation.upsert_points(batch))
    tracemalloc.stop()
    figures["load_s"] = time.perf_counter() - started
    stages.mark("loaded")
    started = time.perf_counter()
    store.flush()  # what the ingest does at its end: durable writes, then the shard's optimizer (HNSW)
    figures["flush_and_index_s"] = time.perf_counter() - started
    stages.mark("flushed")
    release_free_memory()  # and then this
    stages.mark("released")
    store.reload()  # what an ingest that deleted chunks does next
    stages.mark("reopened")
    figures.update(_queries(store, embedder, stages))
    store.close()
    return stages.figures | figures | {"peak_rss_mb": stages.peak()}


def _template(chunk: Any, encoder: Any) -> tuple[dict[str, Any], Any, str, str]:
    """A chunk's payload and sparse vector, computed once and copied for every point made from it."""
    # lazy: measured, as in build()
    import qdrant_edge as qe
    from llama_index.core.schema import MetadataMode

    from knowledge.edge_store import point_payload

    sparse = encoder.document(chunk.get_content(metadata_mode=MetadataMode.EMBED))
    vector = qe.SparseVector(list(sparse.indices), list(sparse.values))
    return point_payload(chunk), vector, chunk.node_id, str(chunk.ref_doc_id)


def _point_id(number: int) -> str:
    return f"00000000-0000-4000-8000-{number:012d}"  # a UUID, as LlamaIndex node ids are


def _copy(template: tuple[dict[str, Any], Any, str, str], number: int, copy: int) -> tuple[dict[str, Any], Any]:
    """The payload `point_payload` gives the chunk's copy `number` in document copy `copy` (same text, own ids)."""
    payload, sparse, node_id, doc_id = template
    document = f"{doc_id}#{copy}"
    content = payload["_node_content"].replace(node_id, _point_id(number)).replace(json.dumps(doc_id)[1:-1], document)
    ids = {"doc_id": document, "document_id": document, "ref_doc_id": document}
    return {**payload, "_node_content": content, **ids}, sparse


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
    store.close()
    return stages.figures | figures | {"peak_rss_mb": stages.peak()}


def _queries(store: Any, embedder: Any, stages: Stages) -> dict[str, float]:
    """180 hybrid searches with a category filter, real query embeddings computed beforehand (search time only)."""
    # lazy: measured, as in build()
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


if __name__ == "__main__":
    if sys.argv[1] == "build":
        print(json.dumps(build(int(sys.argv[2]), Path(sys.argv[3]))))
    else:
        print(json.dumps(serve(Path(sys.argv[2]))))
