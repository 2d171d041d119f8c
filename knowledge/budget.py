"""`LLM_DAILY_BUDGET_USD`: once today's model spend (UTC day, all replicas) reaches the budget, answers are
extractive until midnight, the `supportbot_llm_budget_exhausted` gauge is 1 and the alert of that name fires.

The spend comes from the turns the core records (each with its cost), through the `SpendMeter` port, read at most
every `refresh_seconds` so a burst of questions costs one query.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import structlog

from bot import metrics
from bot.ports import Clock, SpendMeter, SystemClock

log = structlog.get_logger(__name__)


class DailyBudget:
    """Allows model calls while today's spend is under `limit_usd` (0 or less: no limit)."""

    def __init__(
        self, limit_usd: float, spend: SpendMeter, clock: Clock | None = None, refresh_seconds: float = 30.0
    ) -> None:
        self._limit = limit_usd
        self._spend = spend
        self._clock = clock or SystemClock()
        self._refresh = refresh_seconds
        self._checked_at = float("-inf")
        self._allowed = True

    async def allows(self) -> bool:
        if self._limit <= 0:
            return True
        if time.monotonic() - self._checked_at < self._refresh:
            return self._allowed
        now = self._clock.now().astimezone(UTC)
        spent = await self._spend.spent_since(datetime(now.year, now.month, now.day, tzinfo=UTC))
        allowed = spent < self._limit
        if allowed != self._allowed:
            log.warning("knowledge.llm_budget", allowed=allowed, spent_usd=round(spent, 4), budget_usd=self._limit)
        self._allowed, self._checked_at = allowed, time.monotonic()
        metrics.LLM_BUDGET_EXHAUSTED.set(0 if allowed else 1)
        return allowed
