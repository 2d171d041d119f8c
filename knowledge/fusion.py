"""How dense and sparse results are fused: the same plan for the embedded store and the Qdrant server.

Both stores send one query with two prefetches (dense nearest neighbours and BM25 sparse) and let Qdrant fuse them
with Reciprocal Rank Fusion. Qdrant's weighted RRF scores a hit at position p as 1 / ((p + 1) / w + k - 1), so a
weight rescales rank positions and only matters with a small k: we use Qdrant's k=2. Defaults are equal weights:
which list deserves more weight depends on the corpus (BM25 led on the Samsung e-manual reference, the dense model
leads on our paraphrase-heavy fixture), so they are settings, checked with `supportbot eval retrieval`.
`VectorStoreQuery.alpha` overrides them per query (0 = lexical only, 1 = dense only).
"""

from __future__ import annotations

from dataclasses import dataclass

DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25"


@dataclass(frozen=True, slots=True)
class FusionPlan:
    """Weights and depths of the hybrid query."""

    dense_weight: float = 1.0
    sparse_weight: float = 0.99  # not 1.0: equal weights tie exactly and Qdrant then orders ties arbitrarily
    rrf_k: int = 2
    prefetch_factor: int = 4  # each prefetch fetches top_k * factor candidates
    min_prefetch: int = 20

    def weights(self, alpha: float | None) -> tuple[float, float]:
        """(dense, sparse) weights; alpha in 0..1 overrides the plan's."""
        if alpha is None:
            return self.dense_weight, self.sparse_weight
        return max(alpha, 1e-6), max(1.0 - alpha, 1e-6)

    def prefetch_limit(self, top_k: int) -> int:
        return max(self.min_prefetch, top_k * self.prefetch_factor)
