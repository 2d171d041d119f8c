"""The memory levers keep behaviour: the optimized (and reopened) shard finds the same points with the same
payloads, trimming the C heap changes nothing, the embedded path imports no qdrant-client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import (
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from knowledge.edge_store import EdgeVectorStore
from knowledge.heap import release_free_memory
from knowledge.sparse import Bm25Encoder

pytestmark = pytest.mark.slow  # builds an HNSW graph, starts a process


def test_the_optimized_shard_finds_the_same_points_with_the_same_payloads(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((40, 384)).astype(np.float32)
    store = EdgeVectorStore(tmp_path / "shard", 384, Bm25Encoder())
    nodes = []
    for number in range(7_000):  # above the optimizer's indexing threshold: flush builds the HNSW graph
        vector = centres[number % 40] + rng.standard_normal(384).astype(np.float32) * 0.3
        node = TextNode(
            text=f"Article {number} about {('billing', 'backup')[number % 2]} and restore {number % 7}",
            metadata={"title": f"Page {number // 4}", "category": ("billing", "backup")[number % 2]},
            embedding=(vector / np.linalg.norm(vector)).tolist(),
        )
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=f"doc-{number // 4}")
        nodes.append(node)
    store.add(nodes)
    probes = [nodes[n] for n in range(0, 7_000, 347)]

    def search() -> list[tuple[str, str, str]]:
        found = []
        for node in probes:
            query = VectorStoreQuery(
                query_embedding=node.get_embedding(),
                query_str=node.text,
                similarity_top_k=1,
                mode=VectorStoreQueryMode.HYBRID,
                filters=MetadataFilters(filters=[MetadataFilter(key="category", value=node.metadata["category"])]),
            )
            hit = store.query(query).nodes[0]
            found.append((hit.node_id, hit.get_content(), hit.metadata["title"]))
        return found

    plain = search()
    assert plain == [(node.node_id, node.text, node.metadata["title"]) for node in probes]
    store.flush()
    assert store.client.info().segments_count >= 1
    assert search() == plain
    release_free_memory()
    assert search() == plain
    store.reload()
    assert search() == plain and store.count() == 7_000
    store.close()


def test_the_embedded_service_never_imports_qdrant_client() -> None:
    code = "import sys, knowledge.service; print('qdrant_client' in sys.modules)"  # a fresh process: nothing loaded
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert result.stdout.strip() == "False"
