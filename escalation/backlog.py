"""The backlog: hand-offs waiting for a person, offers waiting for a yes, tickets that would not open, dead letters.

`HandoffLog` records each request for a person (a round) and when an agent claimed and resolved it, so time to first
human (hand-off -> claim) is measured (`handoff_times`, for the weekly report). `backlog_figures` computes the daily
digest's figures at one moment; `render_digest` writes them for the agents (plain text: it quotes conversation keys,
never customer text). The scheduler's `backlog_digest` job posts it through the outbox, once per period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, func, select, update

from bot.messages import Channel
from bot.ports import Clock
from bot.store.db import Database
from bot.store.ledger import DEAD_LETTER
from bot.store.outbox import DEAD
from bot.store.sql import insert_ignore
from bot.store.tables import (
    ConversationRow,
    HandoffRow,
    InboundRow,
    OutboxRow,
    PendingActionRow,
    handoff_conversation,
)
from bot.strings import for_agents
from escalation.actions import CONFIRMED, EXPIRED, PENDING
from escalation.handoff import LINK_LABELS, conversation_links

DAY = timedelta(days=1)
MAX_LISTED = 10


class HandoffLog:
    """Hand-off rounds and their claims (the `handoffs` table)."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def requested(self, channel: Channel, conversation_key: str, round_: int, agents_notified: bool) -> None:
        """Record a round once (a repeated request in the same round keeps the first time)."""
        values = {
            "channel": channel.value,
            "conversation_key": conversation_key,
            "round": round_,
            "agents_notified": agents_notified,
            "requested_at": self._clock.now(),
            "claimed_by": "",
        }
        async with self._db.transaction() as session:
            await session.execute(insert_ignore(self._db.dialect, HandoffRow.__table__, values))  # type: ignore[arg-type]

    async def claimed(self, channel: Channel, conversation_key: str, agent: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(HandoffRow)
                .where(_case(channel, conversation_key), HandoffRow.claimed_at.is_(None))
                .values(claimed_at=self._clock.now(), claimed_by=agent)
            )

    async def resolved(self, channel: Channel, conversation_key: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(
                update(HandoffRow)
                .where(_case(channel, conversation_key), HandoffRow.resolved_at.is_(None))
                .values(resolved_at=self._clock.now())
            )


def _case(channel: Channel, conversation_key: str) -> ColumnElement[bool]:
    return and_(HandoffRow.channel == channel.value, HandoffRow.conversation_key == conversation_key)


@dataclass(frozen=True, slots=True)
class WaitingCase:
    """A hand-off nobody claimed: where, since when, and the links an agent opens."""

    channel: str
    conversation_key: str
    requested_at: datetime
    waited: timedelta
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class BacklogFigures:
    """The digest at `at`: `waiting` (every unclaimed, unresolved hand-off, oldest first), of which `over_sla` waited
    longer than the SLA; hand-offs and claims of the last day with their median time to first human; offers pending,
    of which `offers_expiring` are past half their life; offers expired in the last day; tickets that failed to open
    (confirmed, not done); dead letters (inbound messages and replies given up)."""

    at: datetime
    sla: timedelta
    waiting: tuple[WaitingCase, ...]
    over_sla: int
    handoffs_last_day: int
    claimed_last_day: int
    median_to_first_human: timedelta | None
    offers_pending: int
    offers_expiring: int
    offers_expired_last_day: int
    tickets_failed: int
    dead_inbound: int
    dead_replies: int

    @property
    def longest_wait(self) -> timedelta | None:
        return self.waiting[0].waited if self.waiting else None


async def backlog_figures(db: Database, at: datetime, sla: timedelta) -> BacklogFigures:
    since = at - DAY
    async with db.sessions() as session:
        open_rows = (
            await session.execute(
                select(HandoffRow.channel, HandoffRow.conversation_key, HandoffRow.requested_at, ConversationRow.links)
                .outerjoin(ConversationRow, handoff_conversation())
                .where(HandoffRow.claimed_at.is_(None), HandoffRow.resolved_at.is_(None), HandoffRow.requested_at <= at)
                .order_by(HandoffRow.requested_at, HandoffRow.id)
            )
        ).all()
        day = (
            await session.execute(
                select(HandoffRow.requested_at, HandoffRow.claimed_at).where(
                    HandoffRow.requested_at > since, HandoffRow.requested_at <= at
                )
            )
        ).all()
        actions = (
            await session.execute(
                select(PendingActionRow.state, PendingActionRow.created_at, PendingActionRow.expires_at).where(
                    PendingActionRow.state.in_((PENDING, CONFIRMED))
                    | and_(PendingActionRow.state == EXPIRED, PendingActionRow.updated_at > since)
                )
            )
        ).all()
        dead_inbound = (
            await session.execute(select(func.count()).where(InboundRow.status == DEAD_LETTER))
        ).scalar_one()
        dead_replies = (await session.execute(select(func.count()).where(OutboxRow.status == DEAD))).scalar_one()
    waiting = tuple(
        WaitingCase(
            channel,
            key,
            requested,
            at - requested,
            tuple(
                (LINK_LABELS[name], url)
                for name, url in conversation_links(Channel(channel), key, links or {}).items()
                if name in LINK_LABELS
            ),
        )
        for channel, key, requested, links in open_rows
    )
    claims = sorted(claimed - requested for requested, claimed in day if claimed is not None and claimed <= at)
    pending = [(created, expires) for state, created, expires in actions if state == PENDING and expires > at]
    return BacklogFigures(
        at=at,
        sla=sla,
        waiting=waiting,
        over_sla=sum(1 for case in waiting if case.waited > sla),
        handoffs_last_day=len(day),
        claimed_last_day=len(claims),
        median_to_first_human=_median(claims),
        offers_pending=len(pending),
        offers_expiring=sum(1 for created, expires in pending if at >= created + (expires - created) / 2),
        offers_expired_last_day=sum(1 for state, _c, _e in actions if state == EXPIRED),
        tickets_failed=sum(1 for state, _c, _e in actions if state == CONFIRMED),
        dead_inbound=int(dead_inbound),
        dead_replies=int(dead_replies),
    )


@dataclass(frozen=True, slots=True)
class HandoffTimes:
    """Time to first human (hand-off -> claim) for the hand-offs requested in a window."""

    handoffs: int
    claimed: int
    median: timedelta | None
    p90: timedelta | None


async def handoff_times(db: Database, since: datetime, until: datetime) -> HandoffTimes:
    """For the weekly report: how many hand-offs were requested in [since, until), how many were claimed, and the
    median and 90th percentile (nearest rank) of hand-off -> claim."""
    async with db.sessions() as session:
        rows = (
            await session.execute(
                select(HandoffRow.requested_at, HandoffRow.claimed_at).where(
                    HandoffRow.requested_at >= since, HandoffRow.requested_at < until
                )
            )
        ).all()
    waits = sorted(claimed - requested for requested, claimed in rows if claimed is not None)
    return HandoffTimes(len(rows), len(waits), _median(waits), _nearest_rank(waits, 0.9))


def _median(values: Sequence[timedelta]) -> timedelta | None:
    if not values:
        return None
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def _nearest_rank(values: Sequence[timedelta], q: float) -> timedelta | None:
    if not values:
        return None
    rank = max(1, -(-int(q * 100) * len(values) // 100))  # ceil(q * n) without float error
    return values[rank - 1]


def duration(value: timedelta | None) -> str:
    """'3 h 05 min', '42 min', or '-'."""
    if value is None:
        return "-"
    minutes = int(value.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def render_digest(figures: BacklogFigures) -> str:
    """The digest as plain text for the agents' channel and ESCALATION_EMAIL."""
    f = figures
    lines = [
        for_agents.BACKLOG_TITLE.format(date=f.at.strftime("%Y-%m-%d %H:%M UTC")),
        "",
        for_agents.BACKLOG_WAITING.format(
            waiting=len(f.waiting), longest=duration(f.longest_wait), over=f.over_sla, sla=duration(f.sla)
        ),
        for_agents.BACKLOG_LAST_DAY.format(
            handoffs=f.handoffs_last_day, claimed=f.claimed_last_day, median=duration(f.median_to_first_human)
        ),
        for_agents.BACKLOG_OFFERS.format(
            pending=f.offers_pending, expiring=f.offers_expiring, expired=f.offers_expired_last_day
        ),
        for_agents.BACKLOG_FAILED.format(tickets=f.tickets_failed, inbound=f.dead_inbound, replies=f.dead_replies),
    ]
    over = [case for case in f.waiting if case.waited > f.sla]
    if over:
        lines += ["", for_agents.BACKLOG_OVER_SLA]
        for case in over[:MAX_LISTED]:
            links = "; ".join(f"{label}: {url}" for label, url in case.links)
            lines.append(
                f"- {case.channel} {case.conversation_key}: {duration(case.waited)}" + (f" ({links})" if links else "")
            )
        if len(over) > MAX_LISTED:
            lines.append(for_agents.BACKLOG_MORE.format(more=len(over) - MAX_LISTED))
    return "\n".join(lines)
