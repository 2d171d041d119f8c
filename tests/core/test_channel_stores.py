"""The core stores behind the channel ports: sender policy, mailbox positions and parse marker, thread index,
and the migration that creates their tables (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.messages import Channel, InboundMessage, Outcome, Reply, frozen_map
from bot.ports import MailboxPosition
from bot.senders import ANSWERED, SenderGuard, SenderLimits
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.ledger import InboundLedger
from bot.store.mailboxes import MailboxStore
from bot.store.outbox import Outbox
from bot.store.threads import ThreadStore
from tests.conftest import ManualClock

EMAIL = Channel.EMAIL


async def test_a_sender_is_throttled_after_the_hourly_limit_and_free_again_after_the_window(
    db: Database, clock: ManualClock
) -> None:
    policy = SenderGuard(db, SenderLimits(per_sender=3, per_recipient=10))
    for _ in range(3):
        assert await policy.check(EMAIL, "Ann@Example.org", clock.now()) is None
        await policy.count(EMAIL, "ann@example.org", ANSWERED, clock.now())
        clock.advance(60)
    assert await policy.check(EMAIL, "ann@example.org", clock.now()) == "throttled"
    assert await policy.check(EMAIL, "bob@example.org", clock.now()) is None  # others are not affected
    assert await policy.check(Channel.SLACK, "ann@example.org", clock.now()) is None  # nor other channels
    clock.advance(3600)
    assert await policy.check(EMAIL, "ann@example.org", clock.now()) is None


async def test_a_flooding_sender_is_a_loop(db: Database, clock: ManualClock) -> None:
    policy = SenderGuard(db, SenderLimits(per_sender=2, per_recipient=100))
    for kind in [ANSWERED, ANSWERED, "throttled", "throttled"]:
        await policy.count(EMAIL, "bot@example.org", kind, clock.now())
    assert await policy.check(EMAIL, "bot@example.org", clock.now()) == "loop"
    clock.advance(11 * 60)  # the loop window is ten minutes; the hourly throttle still holds
    assert await policy.check(EMAIL, "bot@example.org", clock.now()) == "throttled"


async def test_one_recipient_shared_by_many_senders_is_limited_and_so_is_the_channel(
    db: Database, clock: ManualClock
) -> None:
    policy = SenderGuard(db, SenderLimits(per_sender=5, per_recipient=2, global_limit=4))
    for i in range(2):
        await policy.count(EMAIL, f"spam{i}@evil.example", ANSWERED, clock.now(), recipient="victim@third.example")
    held = await policy.check(EMAIL, "spam9@evil.example", clock.now(), recipient="victim@third.example")
    assert held == "throttled"
    assert await policy.check(EMAIL, "spam9@evil.example", clock.now()) is None
    for i in range(2):
        await policy.count(EMAIL, f"c{i}@example.org", ANSWERED, clock.now())
    assert await policy.check(EMAIL, "new@example.org", clock.now()) == "throttled"  # 4 answers this hour


async def test_mailbox_positions_and_the_parse_marker(db: Database, clock: ManualClock) -> None:
    store = MailboxStore(db, clock)
    assert await store.get("a/INBOX") is None
    await store.set("a/INBOX", MailboxPosition(7, 10))
    await store.set("a/INBOX", MailboxPosition(7, 12))
    assert await store.get("a/INBOX") == MailboxPosition(7, 12)
    assert await store.get("b/INBOX") is None
    assert await store.begin_parse("a/INBOX", 7, 13) == 1
    assert await store.begin_parse("a/INBOX", 7, 13) == 2  # the first attempt never got past the parse
    assert await store.begin_parse("a/INBOX", 7, 14) == 1
    assert await store.begin_parse("a/INBOX", 8, 14) == 1  # a new UIDVALIDITY is another message
    assert await store.begin_parse("b/INBOX", 7, 14) == 1


def _msg(n: int, sender: str, key: str) -> InboundMessage:
    return InboundMessage(
        EMAIL, key, f"<m{n}@example.org>", sender, "hi", datetime(2026, 11, 16, 9, tzinfo=UTC), metadata=frozen_map()
    )


async def test_threads_are_found_by_message_id_only_for_their_participants(db: Database, clock: ManualClock) -> None:
    ledger = InboundLedger(db, clock)
    outbox = Outbox(db, clock)
    threads = ThreadStore(db)
    conversations = ConversationStore(db, clock, outbox)
    await conversations.ensure(EMAIL, "<m1@example.org>", "ann@example.org", "Backups")
    await ledger.record(_msg(1, "ann@example.org", "<m1@example.org>"), [threads.message_key("<m1@example.org>")])
    await ledger.record(_msg(2, "tom@example.org", "<m1@example.org>"), [threads.message_key("<m2@example.org>")])
    reply = Reply(EMAIL, "<m1@example.org>", "<m1@example.org>", "answer", Outcome.ANSWERED, "email:<m1>:0")
    await outbox.enqueue(reply)
    item = (await outbox.claim_due())[0]
    await outbox.mark_sent(item.id, "<r-random@acme.test>")

    assert await threads.conversation_for(EMAIL, ["<m1@example.org>"], "ANN@example.org") == "<m1@example.org>"
    assert await threads.conversation_for(EMAIL, ["<r-random@acme.test>"], "ann@example.org") == "<m1@example.org>"
    assert await threads.conversation_for(EMAIL, ["<x@y>", "<m2@example.org>"], "tom@example.org") == (
        "<m1@example.org>"
    )  # tom wrote in it, so he is a participant
    assert await threads.conversation_for(EMAIL, ["<m1@example.org>"], "mallory@evil.example") is None
    assert await threads.conversation_for(EMAIL, ["<r-random@acme.test>"], "mallory@evil.example") is None
    assert await threads.conversation_for(EMAIL, ["<unknown@x>"], "ann@example.org") is None
    assert await threads.conversation_for(EMAIL, [], "ann@example.org") is None
