"""Database-backed gauges are written by the service (not per scrape), and each alerted one gets a sample."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import REGISTRY

from app.build import build_service
from app.serve import SupportApp
from app.settings import Settings
from bot.messages import Channel, InboundMessage
from tests.conftest import ManualClock
from tests.doubles import ScriptedKnowledge


def _sample(name: str) -> float | None:
    return REGISTRY.get_sample_value(name)


async def test_dead_letter_and_outbox_gauges_follow_the_database(
    db_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    settings = Settings(database_url=db_url, data_dir=tmp_path)
    services = await build_service(settings, knowledge=ScriptedKnowledge(), clock=clock)
    try:
        msg = InboundMessage(Channel.API, "c1", "m1", "api:k", "hello", datetime(2026, 11, 16, 9, tzinfo=UTC))
        inbound_id = await services.ledger.record(msg)
        assert inbound_id is not None
        for _ in range(services.ledger.max_attempts):
            assert await services.ledger.claim(inbound_id) is not None
            await services.ledger.fail(inbound_id, "RuntimeError: boom")
            clock.advance(settings.processing_lease_seconds + 1)
        app = SupportApp(services)
        await app.refresh_gauges()
        assert _sample("supportbot_inbound_dead_letters") == 1.0
        assert _sample("supportbot_outbox_pending") == 0.0
        await services.ledger.requeue(inbound_id)
        await app.refresh_gauges()
        assert _sample("supportbot_inbound_dead_letters") == 0.0
    finally:
        await services.db.dispose()
