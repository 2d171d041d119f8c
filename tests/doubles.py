"""Test doubles for PORTS only (never for the code under test): a scripted knowledge engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.messages import Answer, Citation, Turn, Usage


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
                )
        return Answer("", (), 0.1, False, True, "scripted")

    async def ready(self) -> bool:
        return self.is_ready
