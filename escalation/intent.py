"""The measured intent classifier: the knowledge base's embedding model (through the `Embedder` port) and a small
multinomial logistic regression trained offline on the labelled phrase set in `tests/fixtures/intent/phrases.csv`
(`scripts/train_intent.py`). Only the coefficients ship, as data (`escalation/data/intent_model.json`); scikit-learn
is needed only to train.

A message is read sentence by sentence as well as whole, so "I was charged twice for invoice 4412. Please get me a
person to sort this out." is understood although most of it is about the invoice. The strongest unit decides:
a person wins over a complaint, a complaint over nothing. When embedding fails (the model cannot load), the rule
set answers (`bot.intent.RuleClassifier`) and the failure is logged once per error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog

from bot.intent import Intent, RuleClassifier
from bot.ports import Embedder, IntentClassifier

log = structlog.get_logger(__name__)

MODEL_PATH = Path(__file__).parent / "data" / "intent_model.json"
MAX_UNITS = 12  # sentences read per message (a long email's first ones), plus the whole message
MAX_CHARS = 1000
MIN_WORDS = 2  # a one-word sentence ("Thanks", "Ann") says too little to be read alone
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n\s*\n")  # a wrapped line (email at 72 columns) is not a sentence


def units(text: str) -> list[str]:
    """What is embedded for one message: the message (shortened) and, when it has several, its sentences."""
    whole = " ".join(text.split())[:MAX_CHARS]
    parts = [" ".join(p.split()) for p in _SENTENCE.split(text)]
    sentences = [p for p in parts if len(p.split()) >= MIN_WORDS][:MAX_UNITS]
    return [whole, *sentences] if len(sentences) > 1 else [whole]


@dataclass(frozen=True)
class IntentModel:
    """A softmax over `labels` (values of `Intent`): `coef` is labels x dimensions, applied to unit-length vectors.
    `min_probability` is the probability a unit needs to count as PERSON or COMPLAINT."""

    labels: tuple[Intent, ...]
    coef: np.ndarray
    intercept: np.ndarray
    min_probability: float
    embedding_model: str

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> IntentModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            labels=tuple(Intent(label) for label in data["labels"]),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=np.asarray(data["intercept"], dtype=np.float64),
            min_probability=float(data["min_probability"]),
            embedding_model=str(data["embedding_model"]),
        )

    def probabilities(self, vectors: Sequence[Sequence[float]]) -> np.ndarray:
        x = np.asarray(vectors, dtype=np.float64)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        logits = x @ self.coef.T + self.intercept
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True))

    def decide(self, vectors: Sequence[Sequence[float]]) -> Intent:
        """The message's intent from its units' vectors: a person when any unit asks for one (a request for a person
        about a refund is still a request for a person), else a complaint when one is the likeliest reading of any
        unit, else nothing."""
        probs = self.probabilities(vectors)
        person, complaint = self.labels.index(Intent.PERSON), self.labels.index(Intent.COMPLAINT)
        if any(row[person] >= self.min_probability for row in probs):
            return Intent.PERSON
        if any(int(row.argmax()) == complaint and row[complaint] >= self.min_probability for row in probs):
            return Intent.COMPLAINT
        return Intent.NONE


class EmbeddingIntentClassifier:
    """`bot.ports.IntentClassifier` over an `Embedder` and an `IntentModel`; the rule set when embedding fails."""

    name = "embeddings"

    def __init__(
        self, embedder: Embedder, model: IntentModel | None = None, fallback: IntentClassifier | None = None
    ) -> None:
        self.embedder = embedder
        self.model = model or IntentModel.load()
        self._fallback = fallback or RuleClassifier()

    async def classify(self, text: str) -> Intent:
        if not text.strip():
            return Intent.NONE
        try:
            vectors = await self.embedder.embed(units(text))
        except Exception as exc:
            log.warning("intent.embedding_failed", error=type(exc).__name__, fallback=self._fallback.name)
            return await self._fallback.classify(text)
        return self.model.decide(vectors)
