"""Review verdicts: a reviewer's judgement of one bot answer (correct, wrong, should_abstain), one per turn.

The console's review queue writes them; `supportbot eval export-verdicts` turns them into a labelled set
(question, expected page, verdict) for the answer eval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select

from bot.ports import Clock
from bot.store.db import Database
from bot.store.tables import ReviewVerdictRow, TurnRow

VERDICTS = ("correct", "wrong", "should_abstain")
GAP_VERDICTS = ("wrong", "should_abstain")  # a question answered like this is a knowledge gap (scheduler/gaps.py)
MAX_NOTE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class LabelledAnswer:
    """One exported verdict: what was asked, what the bot said and cited, and what the reviewer decided."""

    turn_id: int
    question: str
    answer: str
    cited: tuple[str, ...]
    verdict: str
    expected_source: str
    note: str
    reviewer: str
    reviewed_at: datetime


class ReviewStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self, turn_id: int, verdict: str, reviewer: str, note: str = "", expected_source: str = ""
    ) -> bool:
        """Store (or replace) the verdict on a bot turn; False when there is no such bot turn."""
        if verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
        async with self._db.transaction() as session:
            turn = await session.get(TurnRow, turn_id)
            if turn is None or turn.role != "bot":
                return False
            await session.execute(delete(ReviewVerdictRow).where(ReviewVerdictRow.turn_id == turn_id))
            session.add(
                ReviewVerdictRow(
                    turn_id=turn_id,
                    verdict=verdict,
                    note=note[:MAX_NOTE_CHARS],
                    expected_source=expected_source[:512],
                    reviewer=reviewer[:320],
                    created_at=self._clock.now(),
                )
            )
        return True

    async def labelled(self, batch: int = 500) -> AsyncIterator[LabelledAnswer]:
        """Every verdict with its turn, oldest first, read in keyset batches (the export streams them)."""
        after = 0
        while True:
            query = (
                select(ReviewVerdictRow, TurnRow)
                .join(TurnRow, TurnRow.id == ReviewVerdictRow.turn_id)
                .where(ReviewVerdictRow.id > after)
                .order_by(ReviewVerdictRow.id)
                .limit(batch)
            )
            async with self._db.sessions() as session:
                rows = (await session.execute(query)).tuples().all()
            if not rows:
                return
            for verdict, turn in rows:
                cited = tuple(str(c.get("url") or c.get("source") or "") for c in turn.citations if isinstance(c, dict))
                yield LabelledAnswer(
                    turn.id,
                    turn.question,
                    turn.text,
                    cited,
                    verdict.verdict,
                    verdict.expected_source,
                    verdict.note,
                    verdict.reviewer,
                    verdict.created_at,
                )
            after = rows[-1][0].id
