"""A customer can be forgotten, old message bodies are blanked, and logs never carry an address, phone or card.

Seeded through the real pipeline (the test bot: ledger, conversation service, escalation, outbox) on SQLite and
PostgreSQL; then every table is dumped as text and searched for the customer's address, phone and card.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import structlog
from sqlalchemy import select, text

from bot.logging import configure_logging
from bot.messages import Channel
from bot.pii import CARD_REMOVED, mask_pii, remove_card_numbers
from bot.store.db import Database
from bot.store.privacy import REDACTED, PrivacyStore
from bot.store.tables import Base, TurnRow
from tests.conftest import ManualClock
from tests.testbot import TestBot

ANN = "ann.customer@example.org"
PHONE = "+49 30 1234567"
CARD = "4111 1111 1111 1111"


async def _dump(db: Database) -> str:
    """Every row of every table, as one string."""
    parts = []
    async with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = (await conn.execute(text(f'SELECT * FROM "{table.name}"'))).all()
            parts += [json.dumps([str(v) for v in row]) for row in rows]
    return "\n".join(parts)


async def test_forget_erases_a_customer_everywhere_we_store_them(bot: TestBot) -> None:
    db = bot.services.db
    await bot.push(f"How often does the backup run? Call me on {PHONE}.", channel=Channel.EMAIL, sender=ANN)
    await bot.pop()
    await bot.push("Why was my card charged twice? It's " + CARD, channel=Channel.EMAIL, sender=ANN, conversation="c2")
    await bot.pop()
    await bot.push("How often does the backup run?", channel=Channel.EMAIL, sender="bob@example.org")
    await bot.pop()
    before = await _dump(db)
    assert ANN in before and "1234567" in before
    assert "4111" not in before  # a card number is never stored at all

    report = await PrivacyStore(db).forget(ANN.upper())  # addresses match whatever their case
    after = await _dump(db)
    assert ANN not in after.lower() and "1234567" not in after
    assert "bob@example.org" in after  # other customers stay
    assert report.rows["conversations"] == 2 and report.rows["inbound"] == 2 and report.rows["outbox"] >= 2
    assert any("Slack" in place for place in report.unreachable)


async def test_retention_blanks_old_bodies_but_keeps_the_figures(bot: TestBot, clock: ManualClock) -> None:
    db = bot.services.db
    await bot.push("How often does the backup run?", sender=ANN)
    await bot.pop()
    clock.advance(200 * 86400)
    await bot.push("How often does the backup run, again?", sender="bob@example.org")
    await bot.pop()
    counts = await PrivacyStore(db).purge(clock.now() - timedelta(days=180))
    assert counts["turns"] == 2 and counts["inbound"] == 1
    async with db.sessions() as session:
        turns = (await session.execute(select(TurnRow).order_by(TurnRow.id))).scalars().all()
    assert [t.text == REDACTED for t in turns] == [True, True, False, False]
    assert [t.outcome for t in turns[:2]] == ["", "answered"]  # outcomes, confidences, latencies stay for reports
    assert turns[1].confidence is not None
    assert turns[1].passages == [] and turns[3].passages  # the uncited passages of the trace go with the text
    assert ANN not in await _dump(db)
    assert (await PrivacyStore(db).purge(clock.now() - timedelta(days=180)))["turns"] == 0  # idempotent


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        (f"card {CARD} ok", f"card {CARD_REMOVED} ok"),
        ("card 4111-1111-1111-1112 fails Luhn", "card 4111-1111-1111-1112 fails Luhn"),
        (f"write to {ANN}", "write to ***@example.org"),
        (f"call {PHONE} or 030 1234567", "call [phone] or [phone]"),
        (
            "slack ts 1700000000.123456 on 2026-11-30, invoice 4412",
            "slack ts 1700000000.123456 on 2026-11-30, invoice 4412",
        ),
    ],
)
def test_pii_masking(raw: str, masked: str) -> None:
    assert mask_pii(raw) == masked
    assert CARD not in remove_card_numbers(raw)


def test_log_lines_mask_addresses_phones_and_cards(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    try:
        structlog.get_logger("test").warning(
            "email.ignored", sender=ANN, detail=f"from {ANN}, {PHONE}, card {CARD}", message_id="<q1@example.org>"
        )
        line = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    assert ANN not in line and "1234567" not in line and "4111" not in line
    assert json.loads(line)["message_id"] == "<q1@example.org>"  # ids that look like addresses stay readable
