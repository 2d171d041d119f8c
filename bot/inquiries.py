"""The inquiry pipeline: from "an adapter accepted a message" to "its replies are in the outbox".

`accept()` records the message in the inbound ledger (a repeated key is dropped here, so retries and replicas
never answer twice) and schedules the work; the adapter can ack at once. A worker claims the message (a lease),
runs the conversation service, which settles the ledger and queues the replies in one transaction, and kicks
the outbox dispatcher. `recover()` picks up messages a crashed process left unanswered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

import structlog

from bot import metrics
from bot.conversation import ConversationService
from bot.messages import InboundMessage, Reply
from bot.store.ledger import InboundLedger

log = structlog.get_logger(__name__)


class InquiryPipeline:
    def __init__(
        self,
        ledger: InboundLedger,
        service: ConversationService,
        *,
        on_replies: Callable[[list[Reply]], Awaitable[None]] | None = None,
        concurrency: int = 8,
    ) -> None:
        self._ledger = ledger
        self._service = service
        self._on_replies = on_replies
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[list[Reply]]] = set()

    async def accept(self, msg: InboundMessage, keys: Sequence[str] = (), *, wait: bool = False) -> bool:
        """Record `msg` and schedule its answer; False when it was seen before (dropped)."""
        inbound_id = await self._ledger.record(msg, keys)
        if inbound_id is None:
            metrics.DUPLICATES.labels(msg.channel.value).inc()
            log.info("inbound.duplicate", message_id=msg.message_id, channel=msg.channel.value)
            return False
        if wait:
            await self.process(inbound_id)
        else:
            self._spawn(inbound_id)
        return True

    async def ask(self, msg: InboundMessage) -> list[Reply]:
        """Record and answer `msg` now, returning the replies (the JSON API and the CLI answer inline)."""
        inbound_id = await self._ledger.record(msg)
        if inbound_id is None:
            metrics.DUPLICATES.labels(msg.channel.value).inc()
            return []
        return await self.process(inbound_id)

    async def record_only(self, msg: InboundMessage, keys: Sequence[str], reason: str) -> bool:
        """Record a message we deliberately do not answer (auto-reply, bot message), so its keys dedupe."""
        return await self._ledger.record(msg, keys, status="ignored", reason=reason) is not None

    def _spawn(self, inbound_id: int) -> None:
        task = asyncio.create_task(self.process(inbound_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def process(self, inbound_id: int) -> list[Reply]:
        """Answer one recorded message if nobody else is; never raises."""
        async with self._slots:
            record = await self._ledger.claim(inbound_id)
            if record is None:
                return []
            try:
                replies = await self._service.handle(record.message)
            except Exception as exc:
                status = await self._ledger.fail(inbound_id, f"{type(exc).__name__}: {exc}")
                metrics.ERRORS.labels("pipeline").inc()
                log.exception("inbound.failed", message_id=record.message.message_id, status=status)
                return []
        if self._on_replies is not None and replies:
            await self._on_replies(replies)
        return replies

    async def recover(self, limit: int = 500) -> int:
        """Schedule every received-but-unanswered message whose lease has run out; returns how many."""
        ids = await self._ledger.due(limit)
        for inbound_id in ids:
            self._spawn(inbound_id)
        if ids:
            log.info("inbound.recovered", count=len(ids))
        return len(ids)

    async def drain(self) -> None:
        """Wait for work in flight (graceful shutdown, tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
