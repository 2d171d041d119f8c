"""An errbot-style test bot: `await bot.push("text")`, then `await bot.pop()` returns the reply as delivered.

It runs the real service graph from the composition root (`app.build.build_service`): the inbound ledger, the
conversation service, escalation, the outbox and its dispatcher, on a real SQLite or PostgreSQL database. Only the
channel's wire is replaced by a collecting sender (a port implementation, not a mock of our code), so a test
reads exactly what a channel would have been asked to send, in order, once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from app.build import build_service
from app.settings import Settings
from app.wiring import Wiring
from bot.messages import Channel, InboundMessage, Reply, frozen_map
from bot.ports import Clock, KnowledgeEngine


class CollectingSender:
    """A `ReplySender` that keeps what it is asked to send."""

    def __init__(self) -> None:
        self.sent: asyncio.Queue[Reply] = asyncio.Queue()

    async def send(self, reply: Reply) -> str:
        await self.sent.put(reply)
        return f"sent:{reply.idempotency_key}"


class TestBot:
    """Push messages in as a channel would; pop the replies the outbox delivered."""

    __test__ = False  # not a pytest class

    def __init__(self, services: Wiring) -> None:
        self.services = services
        self.sender = CollectingSender()
        for channel in Channel:
            services.dispatcher.register(channel, self.sender)

    async def push(
        self,
        text: str,
        *,
        channel: Channel = Channel.API,
        sender: str = "customer@example.com",
        conversation: str = "",
        metadata: Mapping[str, str] | None = None,
        keys: tuple[str, ...] = (),
    ) -> bool:
        """Record and answer one message, then deliver its replies; False when it was a duplicate."""
        msg = InboundMessage(
            channel=channel,
            conversation_key=conversation or f"conv-{uuid.uuid4().hex[:8]}",
            message_id=f"msg-{uuid.uuid4().hex}",
            sender=sender,
            text=text,
            received_at=self.services.clock.now(),
            metadata=frozen_map(dict(metadata or {})),
        )
        accepted = await self.services.pipeline.accept(msg, keys, wait=True)
        while await self.services.dispatcher.flush_once():
            pass
        return accepted

    async def pop(self, timeout: float = 5.0) -> Reply:
        """The next delivered reply (waits up to `timeout` seconds, then fails the test)."""
        return await asyncio.wait_for(self.sender.sent.get(), timeout)

    def empty(self) -> bool:
        return self.sender.sent.empty()


@asynccontextmanager
async def running_bot(
    database_url: str,
    data_dir: Path,
    *,
    knowledge: KnowledgeEngine | None = None,
    clock: Clock | None = None,
    **settings: object,
) -> AsyncIterator[TestBot]:
    """A `TestBot` over a fresh service graph; `knowledge=None` builds the real engine on `data_dir`."""
    config = Settings(database_url=database_url, data_dir=data_dir, **settings)  # type: ignore[arg-type]
    services = await build_service(config, knowledge=knowledge, clock=clock)
    try:
        yield TestBot(services)
    finally:
        await services.pipeline.drain()
        if services.index is not None:
            await services.index.close()
        await services.db.dispose()
