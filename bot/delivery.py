"""The outbox dispatcher: delivers queued replies through each channel's sender, with retries.

Before a resend (a row claimed before: its attempt failed or its process died mid-send) a sender that is also a
`DeliveryCheck` is asked whether the reply already went out; if so the row is marked sent without sending. A
failed send is rescheduled with backoff; `PermanentDeliveryError` (or too many attempts) marks it dead, for
`supportbot replay`. `kick()` wakes the loop at once after new replies; otherwise it polls on an interval, so
rows left by a crashed process (or another replica) go out too.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

import structlog

from bot import metrics
from bot.errors import PermanentDeliveryError
from bot.messages import Channel, Reply
from bot.ports import DeliveryCheck, ReplySender
from bot.reports import DELIVERY_KIND
from bot.store.outbox import DEAD, Outbox, OutboxItem

log = structlog.get_logger(__name__)


class OutboxDispatcher:
    def __init__(
        self,
        outbox: Outbox,
        senders: Mapping[Channel, ReplySender],
        *,
        interval: float = 5.0,
        send_timeout: float = 60.0,
    ) -> None:
        self._outbox = outbox
        self._senders: dict[tuple[Channel, str], ReplySender] = {(c, ""): s for c, s in senders.items()}
        self._interval = interval
        self._send_timeout = send_timeout  # a hung peer must not hold up every other reply
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    def register(self, channel: Channel, sender: ReplySender, *, kind: str = "") -> None:
        """Deliver the channel's replies through `sender`; with `kind`, only replies whose `metadata[DELIVERY_KIND]`
        is `kind` (the weekly report is not a customer reply, though it leaves by the same Slack or SMTP server)."""
        self._senders[(channel, kind)] = sender

    async def deliver_now(self, idempotency_key: str) -> bool:
        """Deliver one queued reply at once (a command that cannot wait for a service's loop); False when it is
        already sent, leased by another process, or failed (then it stays queued for a retry)."""
        item = await self._outbox.claim(idempotency_key)
        return item is not None and bool(await self._deliver(item))

    async def on_replies(self, _replies: list[Reply]) -> None:
        """Pipeline callback: new replies are in the outbox."""
        self.kick()

    def kick(self) -> None:
        self._wake.set()

    async def flush_once(self, limit: int = 8) -> int:
        """Deliver what is due now, `limit` at a time; returns how many were sent.

        Small rounds on purpose: a reply sent but not yet marked sent when the process dies is resent on restart
        (same idempotency key, same email Message-ID) unless its sender finds it delivered (`DeliveryCheck`), so
        fewer in flight means fewer such repeats.
        """
        async with self._flush_lock:
            sent = 0
            while True:
                items = await self._outbox.claim_due(limit)
                if not items:
                    break
                results = await asyncio.gather(*(self._deliver(item) for item in items))
                sent += sum(results)
                if len(items) < limit:
                    break
            pending, age, dead = await self._outbox.stats()
            metrics.OUTBOX_PENDING.set(pending)
            metrics.OUTBOX_OLDEST_AGE.set(age)
            metrics.OUTBOX_DEAD.set(dead)
            return sent

    async def _deliver(self, item: OutboxItem) -> int:
        reply = item.reply
        kind = reply.metadata.get(DELIVERY_KIND, "")
        sender = self._senders.get((reply.channel, kind)) if kind else self._senders.get((reply.channel, ""))
        log_ = log.bind(message_id=reply.in_reply_to, reply=reply.idempotency_key, attempt=item.attempts)
        if sender is None:
            if reply.channel in (Channel.API, Channel.CLI):  # answered in the request itself
                await self._outbox.mark_sent(item.id, "inline")
                return 1
            status = await self._outbox.mark_failed(item.id, f"no sender for channel {reply.channel.value}")
            log_.warning("outbox.no_sender", status=status)
            return 0
        if item.resend and isinstance(sender, DeliveryCheck):
            found = await self._delivered_ref(sender, item)
            if found is not None:
                await self._outbox.mark_sent(item.id, found)
                metrics.DELIVERIES.labels(reply.channel.value, "found").inc()
                log_.info("outbox.already_delivered")
                return 1
        try:
            ref = await asyncio.wait_for(sender.send(reply), self._send_timeout)
        except PermanentDeliveryError as exc:
            await self._outbox.mark_failed(item.id, str(exc), permanent=True)
            metrics.DELIVERIES.labels(reply.channel.value, "dead").inc()
            log_.error("outbox.dead", error=type(exc).__name__)
            return 0
        except Exception as exc:
            status = await self._outbox.mark_failed(item.id, f"{type(exc).__name__}: {exc}")
            metrics.DELIVERIES.labels(reply.channel.value, "dead" if status == DEAD else "retry").inc()
            log_.warning("outbox.retry", status=status, error=type(exc).__name__)
            return 0
        await self._outbox.mark_sent(item.id, ref)
        metrics.DELIVERIES.labels(reply.channel.value, "sent").inc()
        return 1

    async def _delivered_ref(self, check: DeliveryCheck, item: OutboxItem) -> str | None:
        """The reference a resend already went out under, or None; a failed look-up is "not found" (at least
        once beats at most once)."""
        try:
            return await asyncio.wait_for(check.delivered_ref(item.reply, item.created_at), self._send_timeout)
        except Exception as exc:
            log.warning("outbox.check_failed", reply=item.reply.idempotency_key, error=type(exc).__name__)
            return None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before flushing: a kick during the flush must trigger another round
            try:
                await self.flush_once()
            except Exception:
                metrics.ERRORS.labels("outbox").inc()
                log.exception("outbox.flush_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
