"""Ingestion state in the database: crash-safe order, "unchanged" checked against the index, one embedding per
changed document across replicas, BM25 statistics without deleted points. No embedding model: the Embedder port
is a counting double, chunks are sized by words."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from llama_index.core.schema import NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
from sqlalchemy import text

from bot.ports import SystemClock
from bot.store.db import Database
from bot.store.documents import DocumentStateStore
from knowledge.edge_store import EdgeVectorStore
from knowledge.ingest import Ingestor
from knowledge.sparse import Bm25Encoder
from tests.dbs import fresh_database_url
from tests.doubles import CountingEmbedder

PAGES = 40


def write_pages(folder: Path, version: str, count: int = PAGES) -> None:
    folder.mkdir(exist_ok=True)
    for number in range(count):
        (folder / f"page-{number:02d}.md").write_text(
            f"# Page {number}\n\nThis is page {number}, {version}. The plan {version} covers {number} devices.\n"
        )


def ingestor(store: EdgeVectorStore, embedder: CountingEmbedder, db: Database, holder: str = "replica-a") -> Ingestor:
    return Ingestor(store, embedder, str.split, DocumentStateStore(db, SystemClock(), "kb"), holder)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EdgeVectorStore]:
    shard = EdgeVectorStore(tmp_path / "qdrant", CountingEmbedder.DIMENSIONS, Bm25Encoder())
    yield shard
    shard.close()


def texts_by_doc(store: EdgeVectorStore, kb: Path) -> dict[str, list[str]]:
    """Every chunk text in the index, per page file name (a duplicate shows as a repeated text)."""
    import qdrant_edge as qe

    found: dict[str, list[str]] = {}
    offset = None
    while True:
        points, offset = store.client.scroll(qe.ScrollRequest(limit=256, offset=offset, with_payload=True))
        for point in points:
            found.setdefault(Path(str(point.payload["doc_id"])).name, []).append(str(point.payload["_node_content"]))
        if offset is None:
            return found


@pytest.mark.slow  # three syncs of 40 pages
async def test_a_crash_mid_sync_leaves_old_chunks_and_the_rerun_indexes_every_page_once(
    sqlite_db: Database, store: EdgeVectorStore, tmp_path: Path
) -> None:
    kb = tmp_path / "kb"
    write_pages(kb, "v1")
    first = await ingestor(store, CountingEmbedder(), sqlite_db).run([kb])
    assert first.docs_added == PAGES and store.count() == first.chunks_added
    write_pages(kb, "v2")
    with pytest.raises(RuntimeError, match="embedding service died"):
        await ingestor(store, CountingEmbedder(fail_on_call=21), sqlite_db).run([kb])
    halfway = texts_by_doc(store, kb)
    assert len(halfway) == PAGES  # no page lost its chunks: the old ones go only after the new ones are written
    assert sum("v2" in chunks[0] for chunks in halfway.values()) == 20

    embedder = CountingEmbedder()
    rerun = await ingestor(store, embedder, sqlite_db).run([kb])
    assert rerun.docs_updated == PAGES - 20 and rerun.docs_unchanged == 20
    final = texts_by_doc(store, kb)
    assert len(final) == PAGES
    for chunks in final.values():
        assert len(chunks) == len(set(chunks)) == 1 and "v2" in chunks[0]  # one chunk per page, the new one
    assert (await ingestor(store, embedder, sqlite_db).run([kb])).docs_unchanged == PAGES


async def test_unchanged_pages_whose_chunks_are_missing_from_the_index_are_indexed_again(
    sqlite_db: Database, store: EdgeVectorStore, tmp_path: Path
) -> None:
    kb = tmp_path / "kb"
    write_pages(kb, "v1", 3)
    await ingestor(store, CountingEmbedder(), sqlite_db).run([kb])
    store.delete(str((kb / "page-01.md").resolve()))  # points lost (a killed run, a restored index)
    embedder = CountingEmbedder()
    report = await ingestor(store, embedder, sqlite_db).run([kb])
    assert report.docs_repaired == 1 and report.docs_unchanged == 2 and embedder.calls == 1
    assert sorted(texts_by_doc(store, kb)) == ["page-00.md", "page-01.md", "page-02.md"]


async def test_a_new_index_format_indexes_every_page_again(
    sqlite_db: Database, store: EdgeVectorStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kb = tmp_path / "kb"
    write_pages(kb, "v1", 3)
    await ingestor(store, CountingEmbedder(), sqlite_db).run([kb])
    assert (await ingestor(store, CountingEmbedder(), sqlite_db).run([kb])).docs_unchanged == 3
    monkeypatch.setattr("knowledge.ingest.INDEX_FORMAT", "chunks(200,24);bm25(k1=1.2,b=0.75,avg=96.0)")
    embedder = CountingEmbedder()  # a release that scores chunks differently: old chunks must not stay as they were
    report = await ingestor(store, embedder, sqlite_db).run([kb])
    assert report.docs_updated == 3 and embedder.calls == 3
    assert {page: len(chunks) for page, chunks in texts_by_doc(store, kb).items()} == dict.fromkeys(
        ["page-00.md", "page-01.md", "page-02.md"], 1
    )


async def test_a_failing_state_write_leaves_the_previous_state_usable(
    sqlite_db: Database, store: EdgeVectorStore, tmp_path: Path
) -> None:
    kb = tmp_path / "kb"
    write_pages(kb, "v1", 5)
    await ingestor(store, CountingEmbedder(), sqlite_db).run([kb])
    write_pages(kb, "v2", 5)
    async with sqlite_db.transaction() as session:  # the database refuses the write, as a full disk would
        await session.execute(
            text(
                "CREATE TRIGGER disk_full BEFORE UPDATE OF status ON ingested_documents WHEN NEW.status = 'indexed' "
                "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
            )
        )
    with pytest.raises(Exception, match="disk is full"):
        await ingestor(store, CountingEmbedder(), sqlite_db).run([kb])
    states = await DocumentStateStore(sqlite_db, SystemClock(), "kb").get([str((kb / "page-00.md").resolve())])
    (state,) = states.values()
    assert state.chunks == 1 and state.content_hash  # the last good version is still recorded
    async with sqlite_db.transaction() as session:
        await session.execute(text("DROP TRIGGER disk_full"))
    report = await ingestor(store, CountingEmbedder(), sqlite_db).run([kb])
    assert report.docs_updated == 5
    assert all(len(chunks) == 1 and "v2" in chunks[0] for chunks in texts_by_doc(store, kb).values())


@pytest.mark.slow  # PostgreSQL
async def test_two_replicas_on_postgres_embed_each_changed_page_once(store: EdgeVectorStore, tmp_path: Path) -> None:
    """Two engines on one PostgreSQL database, syncing one folder into one index (a Qdrant server in production)."""
    kb = tmp_path / "kb"
    write_pages(kb, "v1", 20)
    async with fresh_database_url("postgres", tmp_path) as url:
        first_db, second_db = Database(url), Database(url)
        await first_db.upgrade()
        try:
            embedder = CountingEmbedder()
            a, b = ingestor(store, embedder, first_db, "a"), ingestor(store, embedder, second_db, "b")
            reports = await asyncio.gather(a.run([kb]), b.run([kb]))
            assert embedder.calls == 20 and store.count() == 20
            assert sum(r.docs_added for r in reports) == 20
            assert sum(r.docs_elsewhere + r.docs_unchanged for r in reports) == 20  # the other replica's share
            write_pages(kb, "v2", 10)
            embedder.calls = 0
            reports = await asyncio.gather(a.run([kb]), b.run([kb]))
            assert embedder.calls == 10 and sum(r.docs_updated for r in reports) == 10
            assert store.count() == 20 and len(set(embedder.texts)) == len(embedder.texts) == 30
        finally:
            await first_db.dispose()
            await second_db.dispose()


@pytest.mark.slow  # reopens a shard
def test_bm25_forgets_deleted_points_after_a_sync(tmp_path: Path) -> None:
    """qdrant-edge keeps deleted points in the sparse IDF until the shard is reopened; `reload` (run by a sync
    that deleted or overwrote chunks) makes scores equal to a fresh index's."""

    def chunk(number: int, words: str, doc: str) -> TextNode:
        node = TextNode(id_=f"00000000-0000-0000-0000-{number:012d}", text=words, embedding=[1.0] * 4)
        node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc)
        return node

    def zebra_score(shard: EdgeVectorStore) -> float:
        query = VectorStoreQuery(query_str="zebra", similarity_top_k=1, mode=VectorStoreQueryMode.SPARSE)
        return float((shard.query(query).similarities or [0.0])[0])

    kept = [chunk(1, "zebra crossing rules", "kept"), chunk(2, "parking rules for cars", "kept")]
    encoder = Bm25Encoder()
    fresh = EdgeVectorStore(tmp_path / "fresh", 4, encoder)
    fresh.add(kept)
    synced = EdgeVectorStore(tmp_path / "synced", 4, encoder)
    synced.add([*kept, *(chunk(100 + n, f"zebra stripes {n}", "old") for n in range(40))])
    synced.delete("old")
    stale = zebra_score(synced)
    synced.reload()
    try:
        assert zebra_score(synced) == pytest.approx(zebra_score(fresh))
        assert stale < zebra_score(fresh) / 2  # what the bug looked like
    finally:
        fresh.close()
        synced.close()
