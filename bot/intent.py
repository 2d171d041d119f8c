"""What a customer's message asks for beyond an answer: a person, or (a complaint, a billing dispute, an urgent
outage) a ticket. The conversation service asks an `IntentClassifier` port; the measured classifier (embeddings and
a small logistic regression, `escalation.intent`) is wired by the root, and `RuleClassifier` below is the fallback
when no embedding model is available: the one rule set we had, which understands only "talk to a human" phrasings.
"""

from __future__ import annotations

import enum
import re


class Intent(enum.StrEnum):
    """PERSON: asks for a human ("get me a person", "escalate this"). COMPLAINT: a complaint, billing dispute or
    urgent signal ("I was charged twice", "refund me now") that deserves a ticket offer with the answer. NONE: a
    question to answer, even one that mentions people, agents or refunds ("how do I add a person to my team?")."""

    PERSON = "person"
    COMPLAINT = "complaint"
    NONE = "none"


_HUMAN_REQUEST = re.compile(
    r"\b(talk|speak|chat)\s+(to|with)\s+(a\s+|an\s+|some\s*one|some\s+body|your\s+)?"
    r"(human|person|agent|real\s+person|someone|somebody|support\s+(agent|person|team)|representative)\b"
    r"|\b(human|live)\s+agent\b|\brepresentative,?\s+please\b",
    re.IGNORECASE,
)


def wants_a_person(text: str) -> bool:
    """The fallback rule: True when the message asks for a human in one of the common phrasings."""
    return bool(_HUMAN_REQUEST.search(text))


class RuleClassifier:
    """`bot.ports.IntentClassifier` by the rule set alone (no model): PERSON or NONE, never COMPLAINT."""

    name = "rules"

    async def classify(self, text: str) -> Intent:
        return Intent.PERSON if wants_a_person(text) else Intent.NONE
