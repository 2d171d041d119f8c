"""No network with the defaults (sockets blocked), and the Qdrant server path via qdrant-client's :memory: mode."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from knowledge.config import KnowledgeConfig
from knowledge.eval import run_retrieval_eval
from knowledge.service import build_knowledge
from tests.knowledge.conftest import FIXTURES

pytestmark = pytest.mark.slow  # loads the embedding model and builds an index: not in the fast tier


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every outbound connection attempt fails and is recorded (local socketpairs for the event loop still work)."""
    attempts: list[Any] = []

    def refuse(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError("network blocked by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a[0]))  # type: ignore[arg-type]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: refuse(None, a[0]))  # type: ignore[arg-type]
    yield attempts


async def test_ingest_ask_and_eval_make_no_network_attempt(no_network: list[Any], tmp_path: Path, kb: Path) -> None:
    # a brand-new DATA_DIR: the model folder is assembled from the installed packages, with no download
    settings = KnowledgeConfig(data_dir=tmp_path / "fresh")
    service = build_knowledge(settings)
    try:
        report = await service.ingest([kb])
        assert report.chunks_added > 0
        answer = await service.answer("Which credit cards do you accept?")
        assert not answer.abstained and answer.answerer == "extractive"
    finally:
        await service.close()
    results = run_retrieval_eval(FIXTURES / "beir", settings)
    assert results["hybrid"]["R@10"] > 0.5
    assert no_network == []


async def test_server_path_with_in_process_qdrant(
    make_settings: Callable[..., KnowledgeConfig], tmp_path: Path, kb: Path
) -> None:
    service = build_knowledge(make_settings(qdrant_url=":memory:", qdrant_collection="kb"), root=tmp_path)
    try:
        first = await service.ingest([kb])
        assert first.chunks_added > 0
        assert (await service.ingest([kb])).chunks_added == 0
        answer = await service.answer("How long are old versions of my files kept?")
        assert not answer.abstained and answer.citations[0].title == "Restoring files"
        filtered = await service.answer("How do I cancel and get a refund?", filters={"category": "billing"})
        assert filtered.citations and all(c.title == "Refunds and cancellations" for c in filtered.citations)
        page = kb / "backup" / "restore-files.md"
        page.unlink()
        gone = await service.ingest([kb])
        assert gone.docs_deleted == 1 and gone.chunks_deleted > 0
        after = await service.answer("How long are old versions of my files kept?")
        assert all(c.title != "Restoring files" for c in after.citations)
    finally:
        await service.close()


async def test_both_stores_use_the_same_sparse_encoding(
    make_settings: Callable[..., KnowledgeConfig], tmp_path: Path
) -> None:
    from llama_index.core.schema import TextNode

    from knowledge.sparse import Bm25Encoder

    encoder = Bm25Encoder()
    server = build_knowledge(make_settings(qdrant_url=":memory:", qdrant_collection="s"), root=tmp_path / "s")
    node = TextNode(text="Restoring deleted files from backups", embedding=[0.1] * 384)
    store: Any = server.engine.retriever._store
    store.add([node])
    point = store.client.retrieve("s", [node.node_id], with_vectors=True)[0]
    stored = point.vector["bm25"]
    expected = encoder.document(node.get_content(metadata_mode="embed"))  # type: ignore[arg-type]
    assert list(stored.indices) == sorted(expected.indices) or set(stored.indices) == set(expected.indices)
    await server.close()
