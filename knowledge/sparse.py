"""The one lexical (BM25) encoder, used by both vector stores.

Choice: qdrant_edge's built-in `Bm25` computes the sparse vectors in-process for the embedded store *and* for the
Qdrant server path (client-side), so both index identical term ids and weights: Qdrant's own tokenizer, English
stopwords and Snowball stemmer, term ids hashed the way Qdrant's server-side BM25 does. The IDF part is left to
Qdrant (`Modifier.Idf` on the sparse vector config, on both paths), so corpus statistics stay correct as documents
come and go. fastembed's `Qdrant/bm25` was the alternative; it downloads its stopword files from the hub on first
use, which the offline default cannot do.

BM25 parameters: k1 = 0.9, b = 0.5 (lever "BM25 tuning" of issue #12), not the library's 1.2 / 0.75. Our chunks are
short sections of one topic each, so a term repeated in a section says less (earlier saturation, k1) and a long
section is less to blame for its length (milder normalisation, b). Chosen among well-known settings (Lucene/Anserini
0.9 / 0.4, 0.9 / 0.5, 1.2 / 0.5, 1.2 / 0.3, 1.5 / 0.75) on half of the Samsung e-manual questions; 0.9 / 0.4 ranked a
hair higher there but cost the sample set a rank, 0.9 / 0.5 costs it nothing. Samsung hybrid R@5 / nDCG@10 0.870 /
0.780 -> 0.889 / 0.787 (the other half: 0.878 / 0.784 -> 0.894 / 0.790). The term-frequency part is computed here,
at ingest, so chunks indexed before a change keep their old weights until they are indexed again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import qdrant_edge

# Typical chunk length in tokens after stopword removal (our chunks are at most ~200 word pieces). 40, 60 and 150
# ranked no better on the Samsung set.
AVERAGE_CHUNK_TOKENS = 96.0
K1 = 0.9  # term-frequency saturation: a term's weight in a chunk never exceeds K1 + 1
B = 0.5  # length normalisation: 0 none, 1 full


@dataclass(frozen=True, slots=True)
class Sparse:
    """A sparse vector: term ids and their weights."""

    indices: tuple[int, ...]
    values: tuple[float, ...]


class Bm25Encoder:
    """BM25 document and query encoding (term frequency part; Qdrant applies IDF)."""

    def __init__(self, average_length: float = AVERAGE_CHUNK_TOKENS, k1: float = K1, b: float = B) -> None:
        self._model = qdrant_edge.Bm25(qdrant_edge.Bm25Config(k=k1, b=b, avg_len=average_length))

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
