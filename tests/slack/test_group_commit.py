"""Group commit of the inbound ledger (`record_many`, and the pipeline's batching intake) on SQLite and PostgreSQL:
the same duplicates drop as with one `record()` per message, within a batch, across batches, and across two
replicas writing batches at the same time."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from app.build import build_service
from bot.messages import Channel, InboundMessage
from bot.store.db import Database
from bot.store.ledger import ANSWERED, IGNORED, RECEIVED, InboundLedger, LedgerEntry
from tests.conftest import ManualClock
from tests.fakes.slack_server import FakeSlack
from tests.slack.conftest import TestKnowledge, slack_settings


def _msg(n: int | str) -> InboundMessage:
    return InboundMessage(
        channel=Channel.SLACK,
        conversation_key=f"C1:{n}",
        message_id=f"m{n}",
        sender="U1",
        text=f"question {n}",
        received_at=datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
    )


def _entry(n: int | str, *keys: str, status: str = RECEIVED) -> LedgerEntry:
    return LedgerEntry(_msg(n), tuple(keys), status=status)


async def _owners(db: Database) -> dict[str, str]:
    """key -> message id of the one inbound row that owns it."""
    from sqlalchemy import select

    from bot.store.tables import InboundKeyRow, InboundRow

    async with db.sessions() as session:
        rows = await session.execute(
            select(InboundKeyRow.key, InboundRow.message_id).join(InboundRow, InboundRow.id == InboundKeyRow.inbound_id)
        )
        return {key: mid for key, mid in rows.tuples()}


async def test_duplicates_within_one_batch_drop_like_sequential_records(db: Database, clock: ManualClock) -> None:
    ledger = InboundLedger(db, clock)
    results = await ledger.record_many(
        [
            _entry(1, "slack:event:E1", "slack:ts:C1:1"),
            _entry(2, "slack:event:E2", "slack:ts:C1:1"),  # the message twin of 1: shares the ts key
            _entry(1, "slack:event:E1", "slack:ts:C1:1"),  # Slack's retry of 1
            _entry(1),  # same message id, no keys
            _entry(3, "slack:event:E3"),
            _entry(4, "slack:event:E4", status=IGNORED),
        ]
    )
    assert [r is not None for r in results] == [True, False, False, False, True, True]
    assert len({r for r in results if r is not None}) == 3
    assert await ledger.count_by_status() == {RECEIVED: 2, IGNORED: 1}
    owners = await _owners(db)
    assert owners["slack:ts:C1:1"] == owners["slack:event:E1"] == "m1"
    assert "slack:event:E2" not in owners  # a duplicate leaves no key behind
    record = await ledger.get(results[0] or 0)
    assert record is not None and record.message == _msg(1)


async def test_an_entry_that_only_overlapped_a_duplicate_is_kept(db: Database, clock: ManualClock) -> None:
    """As with `record()` in order: A fails on a stored key, so B, which shares only A's other key, is new."""
    ledger = InboundLedger(db, clock)
    assert await ledger.record(_msg(0), ["old"]) is not None
    a, b, c = await ledger.record_many([_entry("a", "old", "shared"), _entry("b", "shared"), _entry("c", "shared")])
    assert a is None and b is not None and c is None
    assert (await _owners(db))["shared"] == "mb"


async def test_duplicates_across_batches_and_single_records(db: Database, clock: ManualClock) -> None:
    ledger = InboundLedger(db, clock)
    assert await ledger.record(_msg(1), ["k1"]) is not None
    first = await ledger.record_many([_entry(1, "k1"), _entry(2, "k1"), _entry(3, "k3"), _entry(4, "k4")])
    assert [r is not None for r in first] == [False, False, True, True]
    second = await ledger.record_many([_entry(5, "k3"), _entry(6, "k6"), _entry(4)])
    assert [r is not None for r in second] == [False, True, False]
    assert await ledger.record(_msg(7), ["k6"]) is None
    assert await ledger.record_many([]) == []
    assert await ledger.count_by_status() == {RECEIVED: 4}


async def test_two_replicas_writing_batches_at_once_keep_each_key_once(
    db: Database, db_url: str, clock: ManualClock
) -> None:
    """Two Database objects (two replicas), each writing several batches concurrently, the same 60 events in
    different orders and twins mixed in: each event's keys end up owned by exactly one message, and exactly one
    of all the deliveries of an event was accepted."""
    other = Database(db_url)
    try:
        ledgers = [InboundLedger(db, clock), InboundLedger(other, clock)]
        events = range(60)
        rng = random.Random(7)

        def deliveries() -> list[LedgerEntry]:
            out = [_entry(f"{n}", f"event:{n}", f"ts:{n}") for n in events]
            out += [_entry(f"{n}-twin", f"event:{n}-twin", f"ts:{n}") for n in events]
            rng.shuffle(out)
            return out

        batches = [(ledger, chunk) for ledger in ledgers for d in [deliveries()] for chunk in (d[:50], d[50:])]
        batches += [(ledger, deliveries()[:40]) for ledger in ledgers]
        results = await asyncio.gather(*(ledger.record_many(chunk) for ledger, chunk in batches))
        accepted = [
            entry.message.message_id
            for (_ledger, chunk), ids in zip(batches, results, strict=True)
            for entry, inbound_id in zip(chunk, ids, strict=True)
            if inbound_id is not None
        ]
        assert len(accepted) == len(events)  # one per event: either the event or its twin, once
        assert {mid.removesuffix("-twin") for mid in accepted} == {f"m{n}" for n in events}
        owners = await _owners(db)
        for n in events:
            assert owners[f"ts:{n}"].removesuffix("-twin") == f"m{n}"
        assert await ledgers[1].count_by_status() == {RECEIVED: len(events)}
    finally:
        await other.dispose()


async def test_the_pipeline_batches_concurrent_accepts_and_answers_each_once(
    db_url: str, tmp_path: Path, fake_slack: FakeSlack, clock: ManualClock
) -> None:
    """100 concurrent `accept`s (each message twice, as Slack's twin events) become a few transactions; each
    returns only once its record is committed, and each message is answered once."""
    settings = slack_settings(tmp_path, fake_slack, database_url=db_url)
    services = await build_service(settings, knowledge=TestKnowledge(), clock=clock)
    batches: list[int] = []
    record_many = services.ledger.record_many

    async def counting(entries: Sequence[LedgerEntry]) -> list[int | None]:
        batches.append(len(entries))
        return await record_many(entries)

    services.ledger.record_many = counting  # type: ignore[method-assign]
    try:
        pipeline = services.pipeline

        async def accept(n: int, twin: bool) -> bool:
            msg = _msg(n)
            keys = [f"slack:ts:C1:{n}", f"slack:event:{'M' if twin else 'A'}{n}"]
            accepted = await pipeline.accept(msg, keys)
            assert await services.ledger.seen(f"slack:ts:C1:{n}")  # durable before accept returns
            return accepted

        results = await asyncio.gather(*(accept(n, twin) for n in range(50) for twin in (False, True)))
        assert sum(results) == 50
        assert sum(batches) == 100 and len(batches) < 20
        await pipeline.drain()
        assert await services.ledger.count_by_status() == {ANSWERED: 50}
    finally:
        await services.db.dispose()
