"""Knowledge engine figures: ingestion overhead over the raw embedding model, retrieval latency, memory.

1. Ingestion throughput: synthetic help articles go through the whole pipeline (read, chunk, embed, BM25, upsert,
   ingestion state); the same chunk texts are then embedded by the raw fastembed model alone. ratio = pipeline / raw.
2. Retrieval latency on the embedded store at 10k and 100k chunks (--quick: 1k and 5k), with a filter: the
   retriever's hybrid search (a dense and a sparse candidate list, fused client-side by the configured plan) next to
   the store's in-engine weighted RRF that the retriever used before issue #12; ratio = now / before.
   Store part with cheap random vectors; real query-embedding time measured separately; total = sum of both.
3. Reranking: the cross-encoder (`knowledge.rerank`) reading RERANK_DEPTH synthetic passages of ~150 words per
   question, p50/p95, and the question's retrieval total with it as a ratio to the total without it (before).
4. Memory at scale, in fresh processes (`bench/memory_probe.py`): the knowledge side of a service building an
   index of 100k chunks (--quick: 5k; real chunk payloads, vectors derived from real embeddings), RSS after each
   stage split into anonymous and file-backed memory, peak RSS; then a restarted service on that index: RSS and
   hybrid+filter search p50/p95. Goal: RSS under 1 GB at 100k chunks, p95 not worse; before = commit 4570747.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import Report, Timer
from knowledge.config import KnowledgeConfig

WORDS = [
    "backup",
    "restore",
    "file",
    "folder",
    "device",
    "account",
    "billing",
    "invoice",
    "plan",
    "team",
    "admin",
    "encryption",
    "key",
    "password",
    "sync",
    "upload",
    "download",
    "schedule",
    "version",
    "retention",
    "storage",
    "quota",
    "error",
    "network",
    "proxy",
    "firewall",
    "install",
    "update",
    "laptop",
    "phone",
    "share",
    "link",
    "permission",
    "user",
    "group",
    "audit",
    "report",
    "export",
    "import",
    "archive",
    "snapshot",
    "cloud",
    "server",
    "agent",
    "notification",
    "email",
    "alert",
    "policy",
    "region",
    "latency",
    "bandwidth",
    "throttle",
    "resume",
    "pause",
    "cancel",
    "refund",
    "trial",
]


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."


def article(rng: random.Random, number: int) -> str:
    parts = [f"# Article {number}: {rng.choice(WORDS)} {rng.choice(WORDS)}\n"]
    for section in range(rng.randint(3, 6)):
        parts.append(f"## Section {section} {rng.choice(WORDS)}\n")
        parts.append(" ".join(sentence(rng) for _ in range(rng.randint(3, 9))) + "\n")
    return "\n".join(parts)


async def ingestion(report: Report, quick: bool, settings: KnowledgeConfig, tmp: Path) -> None:
    # lazy: bench.memory_probe imports this module's text generators and measures RSS after its own imports
    from llama_index.core.schema import MetadataMode

    from knowledge.chunking import node_parsers
    from knowledge.embedding import model_tokenizer
    from knowledge.readers import read_file
    from knowledge.service import build_knowledge

    rng = random.Random(7)
    folder = tmp / "kb"
    folder.mkdir()
    for number in range(40 if quick else 200):
        (folder / f"article-{number}.md").write_text(article(rng, number))
    service = build_knowledge(settings, root=tmp / "index")
    started = time.perf_counter()
    result = await service.ingest([folder])
    pipeline_seconds = time.perf_counter() - started
    again = time.perf_counter()
    second = await service.ingest([folder])
    noop_seconds = time.perf_counter() - again
    await service.close()
    nodes = [read_file(path.resolve()) for path in sorted(folder.glob("*.md"))]
    for transform in node_parsers(model_tokenizer(settings.data_dir)):
        nodes = transform(nodes)  # type: ignore[assignment]
    texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
    started = time.perf_counter()
    service.embed_model.embed_texts(texts)
    raw_seconds = time.perf_counter() - started
    report.add("ingest chunks", result.chunks_added, "chunks", f"{result.files_seen} files")
    report.add("ingest pipeline throughput", result.chunks_added / pipeline_seconds, "ch/s")
    report.add("raw embedding throughput", len(texts) / raw_seconds, "ch/s", "same chunk texts, fastembed only")
    report.ratio("ingest time / raw embedding time", pipeline_seconds, raw_seconds, "goal < 1.15")
    report.add("re-ingest unchanged folder", noop_seconds * 1000, "ms", f"{second.chunks_added} chunks embedded")


def fill_store(store: object, count: int, rng: random.Random) -> None:
    # lazy: as in ingestion(): this module stays light for bench.memory_probe
    import qdrant_edge as qe
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
    from llama_index.core.vector_stores.utils import node_to_metadata_dict

    from knowledge.fusion import DENSE_VECTOR, SPARSE_VECTOR

    shard = store.client  # type: ignore[attr-defined]
    encoder = store._encoder  # type: ignore[attr-defined]
    batch = []
    for number in range(count):
        text = sentence(rng) + " " + sentence(rng)
        vector = [rng.gauss(0, 1) for _ in range(384)]
        sparse = encoder.document(text)
        node = TextNode(
            text=text, metadata={"title": "Synthetic", "category": rng.choice(["billing", "backup", "admin"])}
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{number // 8}")
        payload = node_to_metadata_dict(node)
        named = {DENSE_VECTOR: vector, SPARSE_VECTOR: qe.SparseVector(list(sparse.indices), list(sparse.values))}
        batch.append(qe.Point(number + 1, named, payload))
        if len(batch) == 1000:
            shard.update(qe.UpdateOperation.upsert_points(batch))
            batch = []
    if batch:
        shard.update(qe.UpdateOperation.upsert_points(batch))
    shard.optimize()


async def retrieval(report: Report, quick: bool, settings: KnowledgeConfig, tmp: Path) -> None:
    # lazy: as in ingestion(): this module stays light for bench.memory_probe
    from llama_index.core.vector_stores.types import (
        MetadataFilter,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
    )

    from knowledge.edge_store import EdgeVectorStore
    from knowledge.embedding import FastEmbedEmbedding, load_text_embedding
    from knowledge.fusion import FusionPlan
    from knowledge.retrieval import HybridRetriever
    from knowledge.sparse import Bm25Encoder

    embedder = FastEmbedEmbedding(load_text_embedding(settings.embedding_model, settings.data_dir))
    embed_timer = Timer()
    questions = [sentence(random.Random(n)) for n in range(60)]
    for question in questions:
        with embed_timer.measure():
            embedder.get_query_embedding(question)
    report.add_timer("query embedding", embed_timer)
    embed = embed_timer.summary()
    rng = random.Random(11)
    for size in (1_000, 5_000) if quick else (10_000, 100_000):
        encoder = Bm25Encoder()
        before_plan = FusionPlan(dense_weight=1.0, sparse_weight=0.99, method="rrf", rrf_k=2)  # pre-#12 settings
        store = EdgeVectorStore(tmp / f"store-{size}", 384, encoder, before_plan)
        started = time.perf_counter()
        fill_store(store, size, rng)
        report.add(f"load+index {size} chunks", time.perf_counter() - started, "s")
        retriever = HybridRetriever(store, embedder, 5, FusionPlan(), encoder)
        timer, before = Timer(), Timer()
        only_billing = MetadataFilters(filters=[MetadataFilter(key="category", value="billing")])
        for question in questions * 3:
            vector = [rng.gauss(0, 1) for _ in range(384)]
            with timer.measure():
                retriever.search(question, embedding=vector, filters=only_billing)
            query = VectorStoreQuery(
                query_embedding=vector,
                query_str=question,
                similarity_top_k=5,
                mode=VectorStoreQueryMode.HYBRID,
                filters=only_billing,
            )
            with before.measure():
                store.query(query)
        report.add_timer(f"hybrid+filter search @{size}", timer)
        report.add_timer(f"before: in-engine RRF query @{size}", before)
        summary = timer.summary()
        report.ratio(f"search p50 now / before @{size}", summary["p50_ms"], before.summary()["p50_ms"])
        report.add(f"total p50 @{size} (embed + search)", summary["p50_ms"] + embed["p50_ms"], "ms")
        report.add(f"total p95 @{size} (embed + search)", summary["p95_ms"] + embed["p95_ms"], "ms", "goal < 20 ms")
        store.close()
    reranking(report, quick, settings, questions, summary["p50_ms"] + embed["p50_ms"])


def reranking(
    report: Report, quick: bool, settings: KnowledgeConfig, questions: list[str], retrieval_p50_ms: float
) -> None:
    from knowledge.rerank import CrossEncoder  # lazy: as in ingestion()

    started = time.perf_counter()
    reader = CrossEncoder()
    report.add("reranker load", time.perf_counter() - started, "s")
    rng = random.Random(5)
    timer = Timer()
    for question in questions[: 20 if quick else 60]:
        passages = [" ".join(sentence(rng) for _ in range(12)) for _ in range(settings.rerank_depth)]
        with timer.measure():
            reader.scores(question, passages)
    report.add_timer(f"rerank {settings.rerank_depth} passages", timer)
    p50 = timer.summary()["p50_ms"]
    report.ratio("retrieval p50 with rerank / without", retrieval_p50_ms + p50, retrieval_p50_ms)


# Before the memory work (commit 4570747, same probe, 100k chunks): build process, then a restarted service.
BEFORE_100K = {"build peak": 1156.2, "build after queries": 1015.8, "serve after queries": 775.8}
BEFORE_100K_SEARCH = {"p50": 217.1, "p95": 548.0}  # serve process: one plain segment, full scan


def memory(report: Report, quick: bool, tmp: Path) -> None:
    size = 5_000 if quick else 100_000
    folder = tmp / "memory"
    folder.mkdir()
    probe = [sys.executable, "-m", "bench.memory_probe"]
    build = json.loads(subprocess.run([*probe, "build", str(size), str(folder)], **_captured()).stdout)
    serve = json.loads(subprocess.run([*probe, "serve", str(folder)], **_captured()).stdout)
    note = "derived vectors, real chunk payloads (bench/memory_probe.py)"
    report.add(f"embedding throughput (probe sample of {256} chunks)", build["embed_chunks_per_s"], "ch/s")
    for stage in ("imports", "model", "chunked", "embedded_sample", "loaded", "flushed", "released", "reopened"):
        anon, file = build[f"anon_{stage}_mb"], build[f"file_{stage}_mb"]
        report.add(f"build RSS {stage} @{size}", build[f"rss_{stage}_mb"], "MB", f"anon {anon:.0f} + file {file:.0f}")
    report.add(f"build RSS after queries @{size}", build["rss_after_queries_mb"], "MB", note)
    report.add(f"build peak RSS @{size}", build["peak_rss_mb"], "MB", "goal < 1000 MB at 100k")
    report.add(f"flush + optimize (HNSW) {size} chunks", build["flush_and_index_s"], "s")
    for stage in ("imports", "model", "opened", "after_queries"):
        anon, file = serve[f"anon_{stage}_mb"], serve[f"file_{stage}_mb"]
        report.add(f"serve RSS {stage} @{size}", serve[f"rss_{stage}_mb"], "MB", f"anon {anon:.0f} + file {file:.0f}")
    report.add(f"serve peak RSS @{size}", serve["peak_rss_mb"], "MB", "a restarted service on that index")
    report.add(f"serve search p50 @{size}", serve["search_p50_ms"], "ms", "hybrid + filter, real query vectors")
    report.add(f"serve search p95 @{size}", serve["search_p95_ms"], "ms")
    if not quick:
        report.ratio("build peak RSS now / before", build["peak_rss_mb"], BEFORE_100K["build peak"])
        report.ratio("serve RSS now / before", serve["rss_after_queries_mb"], BEFORE_100K["serve after queries"])
        report.ratio("serve search p95 now / before", serve["search_p95_ms"], BEFORE_100K_SEARCH["p95"])


def _captured() -> dict[str, Any]:
    return {"capture_output": True, "text": True, "check": True}


async def run(report: Report, quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-knowledge-") as name:
        tmp = Path(name)
        settings = KnowledgeConfig(data_dir=tmp / "data")
        await ingestion(report, quick, settings, tmp)
        await retrieval(report, quick, settings, tmp)
        memory(report, quick, tmp)
