"""Test doubles for PORTS only (never for the code under test): a scripted knowledge engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.messages import Answer, Citation, Turn, Usage
from knowledge.ingest import IngestReport

UNCITED = Citation(0, "Restore", "kb/restore.md", snippet="Restores take a day.", score=0.41)


class ScriptedKnowledge:
    """A KnowledgeEngine that answers from a dict of keyword -> (text, confidence); abstains otherwise.

    Records the questions and histories it was asked, so tests can check what the service passed in.
    """

    def __init__(self, answers: Mapping[str, tuple[str, float]] | None = None, *, fail: bool = False) -> None:
        self.answers = dict(answers or {"backup": ("Backups run every hour [1].", 0.9)})
        self.fail = fail
        self.asked: list[tuple[str, tuple[Turn, ...]]] = []
        self.is_ready = True

    async def answer(
        self, question: str, history: Sequence[Turn] = (), filters: Mapping[str, str] | None = None
    ) -> Answer:
        self.asked.append((question, tuple(history)))
        if self.fail:
            raise RuntimeError("secret internal detail: connection string postgres://admin:hunter2@db")
        for keyword, (text, confidence) in self.answers.items():
            if keyword in question.lower():
                citation = Citation(1, "Backups", "kb/backups.md", url="https://help.example.com/backups")
                return Answer(
                    text,
                    (citation,),
                    confidence,
                    True,
                    False,
                    "scripted",
                    Usage("m", 10, 5, 0.001),
                    {"retrieve": 1.0, "generate": 2.0},
                    passages=(UNCITED,),
                )
        return Answer("", (), 0.1, False, True, "scripted")

    async def ready(self) -> bool:
        return self.is_ready


class CountingEmbedder:
    """An Embedder (the port) with cheap deterministic vectors: counts every text it embeds, and can be told to
    fail on its Nth call (a crash mid-sync without a process to kill)."""

    DIMENSIONS = 16

    def __init__(self, fail_on_call: int = 0) -> None:
        self.fail_on_call = fail_on_call
        self.calls = 0
        self.texts: list[str] = []

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        import asyncio
        import hashlib

        self.calls += 1
        if self.fail_on_call and self.calls >= self.fail_on_call:
            raise RuntimeError("embedding service died")
        await asyncio.sleep(0.001)  # let another replica's work interleave, as a real model call would
        self.texts.extend(texts)
        vectors = []
        for text in texts:
            digest = hashlib.sha256(text.encode()).digest()
            vectors.append([byte / 255 + 0.01 for byte in digest[: self.DIMENSIONS]])
        return vectors


class RecordingIndex:
    """A KnowledgeIndex (the port) that records the paths it was asked to ingest and reports each as added."""

    def __init__(self) -> None:
        self.ingested: list[list[Path]] = []

    async def ingest(self, paths: Sequence[Path], progress: bool = False) -> IngestReport:
        self.ingested.append(list(paths))
        return IngestReport(len(paths), 0, len(paths), 0, 0, docs_added=len(paths))

    async def close(self) -> None:
        return None
