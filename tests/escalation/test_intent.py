"""Understanding a request for a person (or a complaint) in the customer's own words, measured on held-out phrases."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from bot.intent import Intent
from escalation.intent import MODEL_PATH, EmbeddingIntentClassifier, IntentModel, units

PHRASES = Path(__file__).parent.parent / "fixtures" / "intent" / "phrases.csv"
LABELS = {"person": Intent.PERSON, "complaint": Intent.COMPLAINT, "other": Intent.NONE}


def phrases(split: str) -> list[tuple[Intent, str]]:
    with PHRASES.open(encoding="utf-8", newline="") as f:
        return [(LABELS[r["label"]], r["text"]) for r in csv.DictReader(f) if r["split"] == split]


def test_the_phrase_set_is_big_enough_and_the_shipped_model_was_trained_on_its_training_split() -> None:
    train, held_out = phrases("train"), phrases("test")
    everything = Counter(intent for intent, _ in train + held_out)
    assert everything[Intent.PERSON] >= 150 and everything[Intent.NONE] >= 150 and everything[Intent.COMPLAINT] >= 50
    assert len(held_out) >= 120 and not {t for _, t in train} & {t for _, t in held_out}
    shipped = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    rows = "\n".join(f"{'other' if i is Intent.NONE else i.value}\t{t}" for i, t in train)
    assert shipped["trained_on_sha256"] == hashlib.sha256(rows.encode()).hexdigest(), "run scripts/train_intent.py"
    assert IntentModel.load().labels == (Intent.PERSON, Intent.COMPLAINT, Intent.NONE)


def test_a_long_message_is_read_sentence_by_sentence() -> None:
    text = "I was charged twice for invoice 4412.  Please get me a person\nto sort this out!"
    assert units(text) == [
        "I was charged twice for invoice 4412. Please get me a person to sort this out!",
        "I was charged twice for invoice 4412.",
        "Please get me a person to sort this out!",
    ]
    assert units("just one question?") == ["just one question?"]


class BrokenEmbedder:
    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        raise OSError("model files missing")


async def test_without_an_embedding_model_the_rule_set_answers() -> None:
    classifier = EmbeddingIntentClassifier(BrokenEmbedder())
    assert await classifier.classify("Can I talk to a human please?") is Intent.PERSON
    assert await classifier.classify("How do I add a person to my team?") is Intent.NONE
    assert await classifier.classify("   ") is Intent.NONE


@pytest.mark.slow  # loads the embedding model
async def test_held_out_precision_and_recall(intent_classifier: EmbeddingIntentClassifier) -> None:
    """The offer (a person or a ticket) should follow exactly the held-out messages that ask for one."""
    held_out = phrases("test")
    pieces = [units(text) for _, text in held_out]
    vectors = await intent_classifier.embedder.embed([u for piece in pieces for u in piece])  # one batch: faster
    confusion: Counter[tuple[Intent, Intent]] = Counter()
    start = 0
    for (expected, _), piece in zip(held_out, pieces, strict=True):
        confusion[(expected, intent_classifier.model.decide(vectors[start : start + len(piece)]))] += 1
        start += len(piece)
    tp = sum(n for (want, got), n in confusion.items() if want is not Intent.NONE and got is not Intent.NONE)
    fp = sum(n for (want, got), n in confusion.items() if want is Intent.NONE and got is not Intent.NONE)
    fn = sum(n for (want, got), n in confusion.items() if want is not Intent.NONE and got is Intent.NONE)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    person_hits = confusion[(Intent.PERSON, Intent.PERSON)]
    person_total = sum(n for (want, _), n in confusion.items() if want is Intent.PERSON)
    print(
        f"\nintent held-out ({sum(confusion.values())} phrases): precision {precision:.3f}, recall {recall:.3f}; "
        f"person requests read as a person {person_hits}/{person_total}"
    )
    assert precision >= 0.95 and recall >= 0.95
    for text in ("get me a person", "I want to speak to someone", "escalate this", "I need a real agent, urgent"):
        assert await intent_classifier.classify(text) is Intent.PERSON, text
    for text in ("how do I add a person to my team?", "the person who set up our account left"):
        assert await intent_classifier.classify(text) is Intent.NONE, text
    assert await intent_classifier.classify("I was charged twice. This is unacceptable.") is not Intent.NONE
