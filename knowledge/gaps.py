"""Knowledge-gap clustering: group questions the bot handled badly into topics, by their embeddings.

Choice: scikit-learn's AgglomerativeClustering with average linkage on cosine distance and a distance threshold,
so the number of gaps comes from the data (no k to guess) and one odd question does not drag a topic along.
Each cluster is labelled with its most central question (the medoid), which reads better than a bag of terms.
Clustering is pure (vectors in, clusters out); the backlog job in `scheduler/gaps.py` stores and merges them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_DISTANCE = (
    0.65  # average cosine distance within a topic; MiniLM keeps 5 distinct seeded topics apart at 0.6-0.8
)


@dataclass(frozen=True, slots=True)
class QuestionCluster:
    """One topic: the member indices (into the input), the medoid's index, and the unit-length centroid."""

    members: tuple[int, ...]
    medoid: int
    centroid: tuple[float, ...]


def normalize(vectors: Sequence[Sequence[float]]) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    unit: np.ndarray = np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)
    return unit


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    va, vb = normalize([a])[0], normalize([b])[0]
    return float(va @ vb)


def cluster_questions(
    vectors: Sequence[Sequence[float]], *, distance_threshold: float = DEFAULT_DISTANCE
) -> list[QuestionCluster]:
    """Cluster embedding vectors; largest clusters first."""
    if len(vectors) == 0:
        return []
    unit = normalize(vectors)
    if len(unit) == 1:
        labels = np.zeros(1, dtype=int)
    else:
        from sklearn.cluster import AgglomerativeClustering  # lazy: scikit-learn and SciPy take seconds to import

        model = AgglomerativeClustering(
            n_clusters=None, metric="cosine", linkage="average", distance_threshold=distance_threshold
        )
        labels = model.fit_predict(unit)
    clusters: list[QuestionCluster] = []
    for label in sorted(set(labels.tolist())):
        members = [i for i, lab in enumerate(labels.tolist()) if lab == label]
        centroid = normalize([unit[members].mean(axis=0)])[0]
        medoid = members[int(np.argmax(unit[members] @ centroid))]
        clusters.append(QuestionCluster(tuple(members), medoid, tuple(float(x) for x in centroid)))
    clusters.sort(key=lambda c: (-len(c.members), c.members[0]))
    return clusters


def label_for(question: str, limit: int = 120) -> str:
    """A gap's label: its central question, on one line and bounded."""
    text = " ".join(question.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
