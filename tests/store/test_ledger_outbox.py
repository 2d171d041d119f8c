"""The exactly-once backbone on SQLite and PostgreSQL: duplicates dropped, leases, retries, dead letters."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from bot.messages import Channel, InboundMessage, Outcome, Reply
from bot.store.db import Database
from bot.store.ledger import ANSWERED, DEAD_LETTER, RECEIVED, InboundLedger
from bot.store.outbox import DEAD, Outbox
from tests.conftest import ManualClock


def _msg(n: int, channel: Channel = Channel.SLACK) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        conversation_key=f"C1:{n}",
        message_id=f"m{n}",
        sender="U1",
        text=f"question {n}",
        received_at=datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
    )


def _reply(key: str) -> Reply:
    return Reply(Channel.SLACK, "C1:1", "m1", "hello", Outcome.ANSWERED, key)


async def test_repeated_key_is_dropped(db: Database, clock: ManualClock) -> None:
    ledger = InboundLedger(db, clock)
    first = await ledger.record(_msg(1), ["slack:event:Ev1"])
    assert first is not None
    assert await ledger.record(_msg(1)) is None  # same message id
    assert await ledger.record(_msg(2), ["slack:event:Ev1"]) is None  # other message, same event key
    assert await ledger.seen("slack:event:Ev1")
    assert await ledger.count_by_status() == {RECEIVED: 1}


async def test_concurrent_records_of_one_key_keep_exactly_one(db: Database, clock: ManualClock) -> None:
    ledger = InboundLedger(db, clock)
    results = await asyncio.gather(*(ledger.record(_msg(7), ["k7"]) for _ in range(20)))
    assert sum(r is not None for r in results) == 1


async def test_claim_is_a_lease(db: Database, clock: ManualClock) -> None:
    ledger = InboundLedger(db, clock, lease_seconds=60)
    inbound_id = await ledger.record(_msg(1))
    assert inbound_id is not None
    assert await ledger.claim(inbound_id) is not None
    assert await ledger.claim(inbound_id) is None  # held
    assert await ledger.due() == []
    clock.advance(61)  # the holder died
    assert await ledger.due() == [inbound_id]
    again = await ledger.claim(inbound_id)
    assert again is not None and again.attempts == 2
    await ledger.settle(inbound_id, ANSWERED)
    assert await ledger.claim(inbound_id) is None


async def test_failures_end_in_dead_letter_and_replay(db: Database, clock: ManualClock) -> None:
    ledger = InboundLedger(db, clock, max_attempts=2)
    inbound_id = await ledger.record(_msg(1))
    assert inbound_id is not None
    await ledger.claim(inbound_id)
    assert await ledger.fail(inbound_id, "boom") == RECEIVED
    await ledger.claim(inbound_id)
    assert await ledger.fail(inbound_id, "boom") == DEAD_LETTER
    assert [r.id for r in await ledger.dead_letters()] == [inbound_id]
    assert await ledger.requeue(inbound_id)
    assert await ledger.claim(inbound_id) is not None


async def test_outbox_is_idempotent_and_retries(db: Database, clock: ManualClock) -> None:
    outbox = Outbox(db, clock, max_attempts=2)
    await outbox.enqueue(_reply("r1"), _reply("r1"), _reply("r2"))
    items = await outbox.claim_due()
    assert sorted(i.reply.idempotency_key for i in items) == ["r1", "r2"]
    assert await outbox.claim_due() == []  # leased
    first, second = sorted(items, key=lambda i: i.reply.idempotency_key)
    await outbox.mark_sent(first.id, "ts1")
    assert await outbox.mark_failed(second.id, "500") == "pending"
    assert await outbox.claim_due() == []  # backing off
    clock.advance(3600)
    retry = await outbox.claim_due()
    assert [i.reply.idempotency_key for i in retry] == ["r2"]
    assert await outbox.mark_failed(retry[0].id, "500") == DEAD
    pending, _age, dead = await outbox.stats()
    assert (pending, dead) == (0, 1)
    assert await outbox.requeue_dead() == 1
    assert [r.text for r in await outbox.sent_for("C1:1")] == ["hello"]


async def test_outbox_stats_report_the_oldest_pending_age(db: Database, clock: ManualClock) -> None:
    outbox = Outbox(db, clock)
    assert await outbox.stats() == (0, 0.0, 0)
    await outbox.enqueue(_reply("r1"))
    clock.advance(90)
    await outbox.enqueue(_reply("r2"))
    pending, age, dead = await outbox.stats()
    assert (pending, dead) == (2, 0) and age == 90.0
