"""The inquiry pipeline: from "an adapter accepted a message" to "its replies are in the outbox".

`accept()` records the message in the inbound ledger (a repeated key is dropped here, so retries and replicas
never answer twice) and schedules the work; the adapter can ack as soon as it returns, the commit is done.
Records go through `LedgerBatcher`, a group commit: whatever arrived while the previous transaction ran is
written in the next one, so a burst of 100 events costs a handful of transactions instead of 100 competing ones.
A worker claims the message (a lease), runs the conversation service, which settles the ledger and queues the
replies in one transaction, and kicks the outbox dispatcher. `recover()` picks up messages a crashed process
left unanswered.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog

from bot import metrics
from bot.messages import InboundMessage, Reply, clean_text
from bot.pii import remove_card_numbers
from bot.ports import MessageHandler
from bot.store.ledger import IGNORED, RECEIVED, InboundLedger, LedgerEntry

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Pending:
    entry: LedgerEntry
    result: asyncio.Future[int | None]
    then: Callable[[int], None] | None  # runs right after the commit, even if the waiting caller went away


def storable(msg: InboundMessage) -> InboundMessage:
    """`msg` with text and subject every database and wire can carry (the adapters clean at the edge too), and
    without card numbers: no answer needs one, so none is stored, traced, logged or sent to a model."""
    text, subject = remove_card_numbers(clean_text(msg.text)), remove_card_numbers(clean_text(msg.subject))
    if text == msg.text and subject == msg.subject:
        return msg
    return dataclasses.replace(msg, text=text, subject=subject)


class LedgerBatcher:
    """Group commit in front of `InboundLedger.record_many`.

    `record()` queues an entry and waits for its commit; one writer task drains the queue every time it is free,
    so under load each transaction carries everything that arrived during the previous one, and when idle a
    message is written at once (no timer, no added latency). Durability is unchanged: `record()` returns only
    after the transaction holding its entry committed. A failed batch is retried entry by entry, so one bad
    message fails alone. `quiet()` lets other work (answering) wait until a burst of records is over.
    """

    def __init__(self, ledger: InboundLedger, *, max_batch: int = 200) -> None:
        self._ledger = ledger
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._last_record = float("-inf")  # loop time of the latest record() call

    async def record(self, entry: LedgerEntry, then: Callable[[int], None] | None = None) -> int | None:
        """The entry's inbound id once committed, or None when it is a duplicate; `then(id)` runs on success."""
        loop = asyncio.get_running_loop()
        self._last_record = loop.time()
        pending = _Pending(entry, loop.create_future(), then)
        self._queue.append(pending)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return await pending.result

    async def quiet(self, settle: float, limit: float) -> None:
        """Return once nothing is being written and no record came in for `settle` seconds, or after `limit`
        seconds at most (so a steady stream of events cannot starve the caller)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while True:
            now = loop.time()
            wait = settle if self._writer is not None else self._last_record + settle - now
            if wait <= 0 or now >= deadline:
                return
            await asyncio.sleep(min(wait, deadline - now))

    async def drain(self) -> None:
        """Wait until everything queued is written."""
        while self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
                await self._commit(batch)
        finally:
            self._writer = None

    async def _commit(self, batch: list[_Pending]) -> None:
        try:
            ids = await self._ledger.record_many([p.entry for p in batch])
        except Exception as exc:
            if len(batch) > 1:
                log.warning("inbound.batch_failed", size=len(batch), error=type(exc).__name__)
                for pending in batch:
                    await self._commit([pending])
                return
            if not batch[0].result.done():
                batch[0].result.set_exception(exc)
            return
        for pending, inbound_id in zip(batch, ids, strict=True):
            if inbound_id is not None and pending.then is not None:
                pending.then(inbound_id)
            if not pending.result.done():
                pending.result.set_result(inbound_id)
        log.debug("inbound.batch_committed", size=len(batch))


class InquiryPipeline:
    """Intake (group-committed, durable before `accept` returns) and answering (at most `concurrency` at once).

    Answers scheduled by `accept`/`recover` yield to intake: each waits, holding its slot, until no event was
    recorded for `yield_to_intake[0]` seconds (at most `yield_to_intake[1]`), so a burst of events is recorded
    and acked before answering work competes with it for the event loop, the GIL and the database.
    """

    def __init__(
        self,
        ledger: InboundLedger,
        service: MessageHandler,
        *,
        on_replies: Callable[[list[Reply]], Awaitable[None]] | None = None,
        concurrency: int = 8,
        yield_to_intake: tuple[float, float] = (0.01, 0.5),
    ) -> None:
        self._ledger = ledger
        self._service = service
        self._on_replies = on_replies
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[list[Reply]]] = set()
        self.intake = LedgerBatcher(ledger)
        self._yield = yield_to_intake  # (settle, limit) seconds: answers start when intake paused this long

    async def accept(self, msg: InboundMessage, keys: Sequence[str] = (), *, wait: bool = False) -> bool:
        """Record `msg` and schedule its answer; False when it was seen before (dropped). Returns after the commit,
        so the caller may ack; the answer is scheduled right at the commit (`wait=True`: answered before return)."""
        entry = LedgerEntry(storable(msg), tuple(keys), RECEIVED)
        inbound_id = await self.intake.record(entry, None if wait else self._spawn)
        if inbound_id is None:
            metrics.DUPLICATES.labels(msg.channel.value).inc()
            log.info("inbound.duplicate", message_id=msg.message_id, channel=msg.channel.value)
            return False
        if wait:
            await self.process(inbound_id)
        return True

    async def ask(self, msg: InboundMessage) -> list[Reply]:
        """Record and answer `msg` now, returning the replies (the JSON API and the CLI answer inline)."""
        inbound_id = await self.intake.record(LedgerEntry(storable(msg)))
        if inbound_id is None:
            metrics.DUPLICATES.labels(msg.channel.value).inc()
            return []
        return await self.process(inbound_id)

    async def record_only(self, msg: InboundMessage, keys: Sequence[str], reason: str) -> bool:
        """Record a message we deliberately do not answer (auto-reply, bot message), so its keys dedupe."""
        return await self.intake.record(LedgerEntry(storable(msg), tuple(keys), IGNORED, reason)) is not None

    async def seen(self, key: str) -> bool:
        """True when `key` was recorded before (by any message)."""
        return await self._ledger.seen(key)

    def _spawn(self, inbound_id: int) -> None:
        task = asyncio.create_task(self._process(inbound_id, background=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def process(self, inbound_id: int) -> list[Reply]:
        """Answer one recorded message if nobody else is; never raises."""
        return await self._process(inbound_id, background=False)

    async def _process(self, inbound_id: int, *, background: bool) -> list[Reply]:
        async with self._slots:
            if background:  # acks first: a scheduled answer starts once a burst of intake is recorded
                await self.intake.quiet(*self._yield)
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
        await self.intake.drain()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
            await self.intake.drain()
