"""How dense and sparse results are fused: one plan, applied client-side, the same for both stores.

The retriever asks the store for two candidate lists (dense nearest neighbours and BM25) and fuses them here, so the
embedded shard and a Qdrant server rank identically and the raw arm scores stay available to the confidence.

Default method "score": a weighted sum of the chunk's dense cosine and its BM25 score divided by the best BM25
score of the query (a chunk missing from the BM25 list counts 0 there). Measured on the Samsung e-manual set
(504 questions) and the sample set (30), a dense weight of 0.4 beat both arms on both sets, while weighted RRF
(method "rrf", score = w / (k + rank)) only tied BM25 there: RRF throws away how far apart the scores are, which
matters when one arm (BM25 on manuals) is much stronger. Weights are per-corpus settings; `knowledge.eval.
fit_fusion` fits them on half of a labelled folder and scores the other half.

The stores' own HYBRID mode (Qdrant's in-engine weighted RRF) remains for LlamaIndex callers that query a store
directly; its k and weights come from the same plan.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

DENSE_VECTOR = "dense"
SPARSE_VECTOR = "bm25"

Method = Literal["score", "rrf"]
Key = TypeVar("Key", bound=Hashable)


@dataclass(frozen=True, slots=True)
class FusionPlan:
    """Weights and depths of the hybrid query."""

    dense_weight: float = 0.4
    sparse_weight: float = 0.6
    method: Method = "score"
    rrf_k: int = 60
    candidates: int = 20  # each arm returns this many chunks (at least top_k); 40 ranked no better on either set
    prefetch_factor: int = 4  # for the stores' in-engine hybrid: each prefetch fetches top_k * factor
    min_prefetch: int = 20

    def weights(self, alpha: float | None) -> tuple[float, float]:
        """(dense, sparse) weights; alpha in 0..1 overrides the plan's."""
        if alpha is None:
            return self.dense_weight, self.sparse_weight
        return max(alpha, 1e-6), max(1.0 - alpha, 1e-6)

    def prefetch_limit(self, top_k: int) -> int:
        return max(self.min_prefetch, top_k * self.prefetch_factor)

    def depth(self, top_k: int) -> int:
        """How many candidates each arm fetches for a final list of `top_k`."""
        return max(self.candidates, top_k)


def fuse(
    dense: Sequence[tuple[Key, float]],
    sparse: Sequence[tuple[Key, float]],
    plan: FusionPlan,
    cosines: Mapping[Key, float] | None = None,
) -> list[tuple[Key, float]]:
    """Fuse two (key, score) lists, each best first, into (key, fused score), best first.

    `cosines` gives the dense cosine of candidates only the sparse arm found (their vectors come back with them),
    so the score method can weigh them exactly instead of counting 0 for their dense part.
    """
    fused: dict[Key, float] = {}
    if plan.method == "rrf":
        for weight, ranked in ((plan.dense_weight, dense), (plan.sparse_weight, sparse)):
            for rank, (key, _) in enumerate(ranked, 1):
                fused[key] = fused.get(key, 0.0) + weight / (plan.rrf_k + rank)
    else:
        cosine = dict(cosines or {})
        cosine.update(dense)
        best_sparse = max((score for _, score in sparse), default=0.0) or 1.0
        for key, score in dense:
            fused[key] = plan.dense_weight * score
        for key, score in sparse:
            fused[key] = plan.dense_weight * cosine.get(key, 0.0) + plan.sparse_weight * score / best_sparse
    return sorted(fused.items(), key=lambda item: -item[1])
