"""The one lexical (BM25) encoder, used by both vector stores.

Choice: qdrant_edge's built-in `Bm25` computes the sparse vectors in-process for the embedded store *and* for the
Qdrant server path (client-side), so both index identical term ids and weights: Qdrant's own tokenizer, English
stopwords and Snowball stemmer, term ids hashed the way Qdrant's server-side BM25 does. The IDF part is left to
Qdrant (`Modifier.Idf` on the sparse vector config, on both paths), so corpus statistics stay correct as documents
come and go. fastembed's `Qdrant/bm25` was the alternative; it downloads its stopword files from the hub on first
use, which the offline default cannot do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import qdrant_edge

# Typical chunk length in tokens after stopword removal (our chunks are at most ~200 word pieces).
AVERAGE_CHUNK_TOKENS = 96.0


@dataclass(frozen=True, slots=True)
class Sparse:
    """A sparse vector: term ids and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


class Bm25Encoder:
    """BM25 document and query encoding (term frequency part; Qdrant applies IDF)."""

    def __init__(self, average_length: float = AVERAGE_CHUNK_TOKENS) -> None:
        self._model = qdrant_edge.Bm25(qdrant_edge.Bm25Config(avg_len=average_length))

    def document(self, text: str) -> Sparse:
        vector = self._model.embed_document(text)
        return Sparse(tuple(vector.indices), tuple(vector.values))

    def query(self, text: str) -> Sparse:
        vector = self._model.embed_query(text)
        return Sparse(tuple(vector.indices), tuple(vector.values))

    # LlamaIndex's QdrantVectorStore takes encoders shaped (texts) -> (indices per text, values per text).
    def documents_for_llamaindex(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[float]]]:
        encoded = [self.document(text) for text in texts]
        return [list(e.indices) for e in encoded], [list(e.values) for e in encoded]

    def queries_for_llamaindex(self, texts: Sequence[str]) -> tuple[list[list[int]], list[list[float]]]:
        encoded = [self.query(text) for text in texts]
        return [list(e.indices) for e in encoded], [list(e.values) for e in encoded]
