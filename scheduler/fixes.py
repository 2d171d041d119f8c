"""What to fix first: lines a manager can hand to whoever writes the help centre.

Three lists, each short and ranked: the open knowledge gaps by how many customers hit them (with an example
question), the documents most often cited in answers that got a 👎, and the questions most often answered with low
confidence. Customer words are PII-masked here (addresses, phones, cards), before any renderer sees them; each
renderer escapes them for its medium.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select

from bot.messages import Outcome
from bot.pii import mask_pii
from bot.store.db import Database
from bot.store.tables import ConversationRow, GapRow, TurnRow
from scheduler.quality import CHUNK, Inquiry

TOP = 5
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class GapFix:
    label: str
    customers: int
    example: str
    trend: str

    @property
    def line(self) -> str:
        example = f" (e.g. “{self.example}”)" if self.example and self.example != self.label else ""
        return (
            f"“{self.label}”: {self.customers} customer{'s' if self.customers != 1 else ''} asked{example} "
            f"[{self.trend}]: write or extend an article that answers it."
        )


@dataclass(frozen=True, slots=True)
class DocumentFix:
    title: str
    url: str
    answers: int  # 👎 answers that cite it

    @property
    def line(self) -> str:
        where = f" ({self.url})" if self.url else ""
        return (
            f"“{self.title}”{where} was cited in {self.answers} answer{'s' if self.answers != 1 else ''} marked 👎: "
            "check that it is right, current and complete."
        )


@dataclass(frozen=True, slots=True)
class QuestionFix:
    question: str
    times: int

    @property
    def line(self) -> str:
        return (
            f"“{self.question}” was answered with low confidence {self.times} time{'s' if self.times != 1 else ''}: "
            "add or clarify the article that answers it."
        )


@dataclass(frozen=True, slots=True)
class Fixes:
    gaps: tuple[GapFix, ...]
    documents: tuple[DocumentFix, ...]
    questions: tuple[QuestionFix, ...]


def _short(text: str, limit: int = 160) -> str:
    flat = _SPACES.sub(" ", mask_pii(text)).strip()
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def disliked_documents(week: Sequence[Inquiry], top: int = TOP) -> tuple[DocumentFix, ...]:
    counts = Counter(c for q in week if q.answered and q.thumbs_down for c in q.citations)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return tuple(DocumentFix(_short(title), url, n) for (title, url), n in ranked)


def low_confidence_questions(week: Sequence[Inquiry], top: int = TOP) -> tuple[QuestionFix, ...]:
    """Questions answered with low confidence, grouped by their words (case and spacing ignored)."""
    counts: Counter[str] = Counter()
    shown: dict[str, str] = {}
    for q in week:
        if q.outcome == Outcome.ANSWERED_OFFER.value and q.question.strip():
            key = _SPACES.sub(" ", q.question).strip().casefold()
            counts[key] += 1
            shown.setdefault(key, q.question)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return tuple(QuestionFix(_short(shown[key]), n) for key, n in ranked)


async def top_gaps(db: Database, top: int = TOP) -> tuple[GapFix, ...]:
    """Open gaps ranked by the number of distinct customers whose questions fell into them."""
    async with db.sessions() as session:
        gaps = (await session.execute(select(GapRow).where(GapRow.status == "open"))).scalars().all()
        turn_ids = sorted({int(t) for g in gaps for t in g.turn_ids})
        who: dict[int, str] = {}
        for start in range(0, len(turn_ids), CHUNK):
            rows = await session.execute(
                select(TurnRow.id, ConversationRow.requester, ConversationRow.id)
                .join(ConversationRow, ConversationRow.id == TurnRow.conversation_id)
                .where(TurnRow.id.in_(turn_ids[start : start + CHUNK]))
            )
            who.update({int(t): requester or f"conversation:{conv}" for t, requester, conv in rows.tuples()})
    fixes = []
    for gap in gaps:
        customers = len({who[int(t)] for t in gap.turn_ids if int(t) in who}) or int(gap.count)
        example = str(gap.examples[0]) if gap.examples else ""
        fixes.append((customers, -int(gap.id), GapFix(_short(gap.label), customers, _short(example), gap.trend)))
    fixes.sort(key=lambda f: (-f[0], -f[1]))
    return tuple(fix for _, _, fix in fixes[:top])
