"""The knowledge-gap backlog: questions the bot handled badly, clustered into gaps and merged run after run.

A candidate is a bot turn (in the last `lookback_days`) that abstained, answered below the low-confidence
threshold, got a 👎, or handed off to a person, or that a reviewer judged wrong or should-have-abstained in the
console (whenever it was answered, if the verdict is recent); a reviewer's "correct" takes a turn out. New
candidates (turns not yet in any gap) are embedded and clustered (`knowledge.gaps`); each cluster joins the stored
gap whose centroid is most similar (cosine at least `merge_similarity`) or becomes a new gap if it has at least
`min_new_gap` questions (a lone question waits for company in later runs; a cluster holding a reviewer's verdict is
a gap at once: a person already judged it). Trends compare the last 7 days with the 7 before. An open gap whose
central questions the knowledge engine now answers confidently is marked covered; a covered gap that fails again
reopens.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import structlog
from sqlalchemy import and_, or_, select, update

from bot.confidence import LOW_CONFIDENCE_THRESHOLD
from bot.messages import Outcome, Role
from bot.ports import Clock, KnowledgeEngine
from bot.store.db import Database
from bot.store.reviews import GAP_VERDICTS
from bot.store.sql import rowcount
from bot.store.tables import FeedbackRow, GapRow, ReviewVerdictRow, TurnRow
from knowledge.gaps import DEFAULT_DISTANCE, cluster_questions, label_for, normalize
from scheduler.config import ReportConfig
from scheduler.jobs import JobFn
from scheduler.publish import ReportPublisher

log = structlog.get_logger(__name__)

EmbedFn = Callable[[Sequence[str]], Awaitable[list[list[float]]]]
AnswersFn = Callable[[str], Awaitable[bool]]
OPEN, COVERED, DISMISSED = "open", "covered", "dismissed"
MAX_EXAMPLES = 5
WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class GapCandidate:
    turn_id: int
    question: str
    reason: str  # reviewed | downvoted | abstained | escalated | low_confidence
    at: datetime


@dataclass(frozen=True, slots=True)
class Gap:
    """A knowledge gap as people see it."""

    id: int
    label: str
    status: str
    count: int
    examples: tuple[str, ...]
    trend: str
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class BacklogRun:
    """What one refresh did."""

    candidates: int
    new_gaps: int
    merged: int
    covered: int
    waiting: int  # lone questions left for a later run

    def __str__(self) -> str:
        return (
            f"{self.candidates} new questions: {self.new_gaps} new gaps, {self.merged} merged, "
            f"{self.covered} covered, {self.waiting} waiting"
        )


def confident_with(engine: KnowledgeEngine, threshold: float) -> AnswersFn:
    """`answers_confidently` from a knowledge engine: not abstained and confidence at least `threshold`."""

    async def answers(question: str) -> bool:
        answer = await engine.answer(question)
        return not answer.abstained and answer.confidence >= threshold

    return answers


async def list_gaps(db: Database, *, include_closed: bool = False) -> list[Gap]:
    """Stored gaps by size (open only unless `include_closed`); needs no embedding model."""
    query = select(GapRow).order_by(GapRow.count.desc(), GapRow.id)
    if not include_closed:
        query = query.where(GapRow.status == OPEN)
    async with db.sessions() as session:
        rows = (await session.execute(query)).scalars().all()
    return [Gap(r.id, r.label, r.status, r.count, tuple(r.examples), r.trend, r.first_seen, r.last_seen) for r in rows]


class GapBacklog:
    """Finds, merges and lists knowledge gaps (the `knowledge_gaps` table)."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        embed: EmbedFn,
        answers_confidently: AnswersFn | None = None,
        *,
        low_confidence: float = LOW_CONFIDENCE_THRESHOLD,
        lookback_days: int = 28,
        distance_threshold: float = DEFAULT_DISTANCE,
        merge_similarity: float = 0.6,
        min_new_gap: int = 2,
    ) -> None:
        self._db = db
        self._clock = clock
        self._embed = embed
        self._answers = answers_confidently
        self._low = low_confidence
        self._lookback = timedelta(days=lookback_days)
        self._distance = distance_threshold
        self._merge = merge_similarity
        self._min_new = min_new_gap

    async def candidates(self, since: datetime, until: datetime) -> list[GapCandidate]:
        """Bot turns in [since, until) that abstained, answered with low confidence, got 👎 or escalated, and turns
        a reviewer judged wrong or should-have-abstained in that window; never one a reviewer judged correct."""
        downvoted = select(FeedbackRow.reply_ref).where(FeedbackRow.value == -1)
        reviewed = select(ReviewVerdictRow.turn_id).where(
            ReviewVerdictRow.verdict.in_(GAP_VERDICTS),
            ReviewVerdictRow.created_at >= since,
            ReviewVerdictRow.created_at < until,
        )
        judged_correct = select(ReviewVerdictRow.turn_id).where(ReviewVerdictRow.verdict.not_in(GAP_VERDICTS))
        answered = (Outcome.ANSWERED.value, Outcome.ANSWERED_OFFER.value)
        columns = (TurnRow.id, TurnRow.question, TurnRow.outcome, TurnRow.message_id, TurnRow.created_at)
        query = (
            select(*columns)
            .where(TurnRow.role == Role.BOT.value, TurnRow.created_at >= since, TurnRow.created_at < until)
            .where(TurnRow.question != "", TurnRow.id.not_in(judged_correct))
            .where(
                or_(
                    TurnRow.outcome.in_((Outcome.ABSTAINED.value, Outcome.HANDOFF.value)),
                    and_(TurnRow.outcome.in_(answered), TurnRow.confidence < self._low),
                    and_(TurnRow.message_id != "", TurnRow.message_id.in_(downvoted)),
                )
            )
            .order_by(TurnRow.id)
        )
        by_review = select(*columns).where(TurnRow.id.in_(reviewed), TurnRow.question != "").order_by(TurnRow.id)
        async with self._db.sessions() as session:
            rows = list((await session.execute(query)).tuples().all())
            judged = list((await session.execute(by_review)).tuples().all())
            flagged = {int(r[0]) for r in judged}
            rows = sorted([r for r in rows if r[0] not in flagged] + judged, key=lambda r: r[0])
            refs = [r[3] for r in rows if r[3]]
            down: set[str] = set()
            for start in range(0, len(refs), 500):
                chunk = downvoted.where(FeedbackRow.reply_ref.in_(refs[start : start + 500]))
                down.update(r for (r,) in (await session.execute(chunk)).tuples())
        out = []
        for turn_id, question, outcome, message_id, at in rows:
            reason = (
                "reviewed"
                if turn_id in flagged
                else "downvoted"
                if message_id and message_id in down
                else "abstained"
                if outcome == Outcome.ABSTAINED.value
                else "escalated"
                if outcome == Outcome.HANDOFF.value
                else "low_confidence"
            )
            out.append(GapCandidate(int(turn_id), str(question), reason, at))
        return out

    async def refresh(self) -> BacklogRun:
        """Cluster new candidates, merge them into the backlog, update trends and coverage."""
        now = self._clock.now()
        async with self._db.sessions() as session:
            gaps = list((await session.execute(select(GapRow).order_by(GapRow.id))).scalars())
        assigned = {int(t) for g in gaps for t in g.turn_ids}
        fresh = [c for c in await self.candidates(now - self._lookback, now) if c.turn_id not in assigned]
        new_gaps = merged = waiting = 0
        if fresh:
            vectors = await self._embed([c.question for c in fresh])
            clusters = cluster_questions(vectors, distance_threshold=self._distance)
            centroids = normalize([g.centroid for g in gaps]) if gaps else np.zeros((0, len(vectors[0])))
            for cluster in clusters:
                members = [fresh[i] for i in cluster.members]
                target = self._closest(gaps, centroids, cluster.centroid)
                if target is not None:
                    _absorb(target, members, cluster.centroid, now)
                    merged += 1
                elif len(members) >= self._min_new or any(c.reason == "reviewed" for c in members):
                    gaps.append(_new_gap(members, fresh[cluster.medoid].question, cluster.centroid, now))
                    new_gaps += 1
                else:
                    waiting += len(members)
        await self._update_trends(gaps, now)
        covered = await self._mark_covered(gaps)
        async with self._db.transaction() as session:
            for gap in gaps:
                gap.updated_at = now
                await session.merge(gap)
        run = BacklogRun(len(fresh), new_gaps, merged, covered, waiting)
        log.info("gaps.refreshed", summary=str(run))
        return run

    def _closest(self, gaps: list[GapRow], centroids: np.ndarray, centroid: Sequence[float]) -> GapRow | None:
        if not len(centroids):
            return None
        similarity = centroids @ np.asarray(centroid)
        best = int(np.argmax(similarity))
        return gaps[best] if similarity[best] >= self._merge else None

    async def _update_trends(self, gaps: list[GapRow], now: datetime) -> None:
        ids = sorted({int(t) for g in gaps for t in g.turn_ids})
        times: dict[int, datetime] = {}
        async with self._db.sessions() as session:
            for start in range(0, len(ids), 500):
                rows = await session.execute(
                    select(TurnRow.id, TurnRow.created_at).where(TurnRow.id.in_(ids[start : start + 500]))
                )
                times.update({int(i): at for i, at in rows.tuples()})
        for gap in gaps:
            stamps = [times[int(t)] for t in gap.turn_ids if int(t) in times]
            recent = sum(now - WEEK <= at < now + timedelta(seconds=1) for at in stamps)
            prior = sum(now - 2 * WEEK <= at < now - WEEK for at in stamps)
            gap.trend = _trend(gap.first_seen, now, recent, prior)

    async def _mark_covered(self, gaps: list[GapRow]) -> int:
        if self._answers is None:
            return 0
        covered = 0
        for gap in gaps:
            if gap.status != OPEN:
                continue
            probes = list(dict.fromkeys([gap.label, *gap.examples[:2]]))
            answered = [await self._answers(q) for q in probes]
            if sum(answered) * 2 > len(answered):
                gap.status = COVERED
                covered += 1
                log.info("gaps.covered", gap_id=gap.id, label=gap.label)
        return covered

    async def list(self, *, include_closed: bool = False) -> list[Gap]:
        """Gaps by size (open only unless `include_closed`)."""
        return await list_gaps(self._db, include_closed=include_closed)

    async def set_status(self, gap_id: int, status: str) -> bool:
        """Dismiss (or reopen) a gap by hand; False when there is no such gap."""
        if status not in (OPEN, COVERED, DISMISSED):
            raise ValueError(f"status must be {OPEN}, {COVERED} or {DISMISSED}")
        async with self._db.transaction() as session:
            result = await session.execute(
                update(GapRow).where(GapRow.id == gap_id).values(status=status, updated_at=self._clock.now())
            )
            return rowcount(result) > 0


def _trend(first_seen: datetime, now: datetime, recent: int, prior: int) -> str:
    if first_seen >= now - WEEK:
        return "new"
    if recent > prior * 1.25 and recent > prior:
        return "rising"
    if recent < prior * 0.75:
        return "falling"
    return "steady"


def _new_gap(members: list[GapCandidate], central: str, centroid: Sequence[float], now: datetime) -> GapRow:
    examples = list(dict.fromkeys(c.question for c in members))[:MAX_EXAMPLES]
    return GapRow(
        label=label_for(central),
        status=OPEN,
        count=len(members),
        examples=examples,
        turn_ids=[c.turn_id for c in members],
        centroid=list(centroid),
        trend="new",
        first_seen=min(c.at for c in members),
        last_seen=max(c.at for c in members),
        updated_at=now,
    )


def _absorb(gap: GapRow, members: list[GapCandidate], centroid: Sequence[float], now: datetime) -> None:
    old, new = gap.count, len(members)
    mixed = normalize([np.asarray(gap.centroid) * old + np.asarray(centroid) * new])[0]
    gap.centroid = [float(x) for x in mixed]
    gap.count = old + new
    gap.turn_ids = [*gap.turn_ids, *(c.turn_id for c in members)]
    gap.examples = list(dict.fromkeys([*gap.examples, *(c.question for c in members)]))[:MAX_EXAMPLES]
    gap.first_seen = min(gap.first_seen, *(c.at for c in members))
    latest = max(c.at for c in members)
    if gap.status == COVERED and latest > gap.updated_at:
        gap.status = OPEN  # asked again and still not answered well after it was covered
    gap.last_seen = max(gap.last_seen, latest)


def format_gaps(gaps: Sequence[Gap]) -> str:
    """The `supportbot gaps` listing."""
    if not gaps:
        return "No knowledge gaps in the backlog.\n"
    lines = []
    for g in gaps:
        lines.append(
            f"#{g.id:<4} {g.count:>4}x  {g.trend:<7} {g.status:<9} "
            f"{g.first_seen:%Y-%m-%d}..{g.last_seen:%Y-%m-%d}  {g.label}"
        )
        lines += [f"        - {example}" for example in g.examples if example != g.label][:3]
    return "\n".join(lines) + "\n"


def backlog_blocks(gaps: Sequence[Gap], limit: int = 15) -> list[dict[str, Any]]:
    """Slack Block Kit for the backlog post."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Knowledge-gap backlog"}},
    ]
    if not gaps:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "No open knowledge gaps."}})
    for g in gaps[:limit]:
        examples = "\n".join(f"> {e}" for e in g.examples[:2] if e != g.label)
        text = f"*{g.label}*\n{g.count} questions · {g.trend} · since {g.first_seen:%Y-%m-%d}\n{examples}"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text.strip()[:3000]}})
    return blocks


def gaps_job(backlog: GapBacklog, config: ReportConfig, publisher: ReportPublisher | None) -> JobFn:
    """The `knowledge_gaps` job: refresh the backlog and post the open gaps to `SLACK_REPORT_CHANNEL`."""

    async def run() -> str:
        result = await backlog.refresh()
        gaps = await backlog.list()
        if publisher is not None and config.slack_report_channel:
            await publisher.post_report(config.slack_report_channel, format_gaps(gaps), backlog_blocks(gaps), None, "")
        return str(result)

    return run
