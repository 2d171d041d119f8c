"""Fixtures for escalation tests: settings, the stores a service needs, fake ticket systems, a service builder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from app.build import escalation_config
from app.settings import Settings
from bot.messages import Channel, InboundMessage, frozen_map
from bot.ports import TicketBackend
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.outbox import Outbox
from escalation.backends import InternalBackend, JiraBackend, RetryPolicy, WebhookBackend, ZendeskBackend
from escalation.intent import EmbeddingIntentClassifier
from escalation.service import EscalationService
from knowledge.embedding import DEFAULT_MODEL, FastEmbedEmbedding, load_text_embedding
from tests.conftest import ManualClock
from tests.fakes.ticket_servers import FakeJira, FakeZendesk, WebhookReceiver

FAST_RETRY = RetryPolicy(attempts=4, wait_initial=0.001, wait_max=0.01, timeout_seconds=5.0)
AGENT = "UAGENT1"


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "support_address": "Support <help@shop.example>",
        "slack_escalation_channel": "CAGENTS",
        "slack_agent_users": [AGENT],
        "confirmation_ttl_minutes": 30,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def email_msg(
    n: int = 1,
    *,
    sender: str = "ann@customer.example",
    text: str = "How do refunds work?",
    metadata: dict[str, str] | None = None,
    key: str = "<root-1@customer.example>",
) -> InboundMessage:
    return InboundMessage(
        channel=Channel.EMAIL,
        conversation_key=key,
        message_id=f"<m{n}@customer.example>",
        sender=sender,
        text=text,
        received_at=datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
        subject="Refund for order 1042",
        metadata=frozen_map(metadata),
    )


def slack_msg(n: int = 1, *, sender: str = "UREQ", text: str = "The export button does nothing") -> InboundMessage:
    return InboundMessage(
        channel=Channel.SLACK,
        conversation_key="C1:1700000000.000100",
        message_id=f"Ev{n}",
        sender=sender,
        text=text,
        received_at=datetime(2026, 11, 16, 9, 0, tzinfo=UTC),
        metadata=frozen_map({"permalink": "https://acme.slack.com/archives/C1/p1700000000000100"}),
    )


ServiceFactory = Callable[..., EscalationService]


@pytest.fixture
def outbox(db: Database, clock: ManualClock) -> Outbox:
    return Outbox(db, clock)


@pytest.fixture
def conversations(db: Database, clock: ManualClock, outbox: Outbox) -> ConversationStore:
    return ConversationStore(db, clock, outbox)


@pytest.fixture
def make_service(db: Database, clock: ManualClock, outbox: Outbox, conversations: ConversationStore) -> ServiceFactory:
    """Build a service on the test database (call again for a 'restarted' instance)."""

    def build(
        backend: TicketBackend | None = None, settings: Settings | None = None, **kwargs: Any
    ) -> EscalationService:
        return EscalationService(
            db,
            clock,
            outbox,
            conversations,
            backend or InternalBackend(db, clock),
            escalation_config(settings or make_settings()),
            **kwargs,
        )

    return build


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    server = WebhookReceiver()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def zendesk() -> AsyncIterator[FakeZendesk]:
    server = FakeZendesk()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def jira() -> AsyncIterator[FakeJira]:
    server = FakeJira()
    await server.start()
    yield server
    await server.stop()


def webhook_backend(server: WebhookReceiver) -> WebhookBackend:
    return WebhookBackend(server.hook_url, server.secret, retry=FAST_RETRY)


def zendesk_backend(server: FakeZendesk) -> ZendeskBackend:
    return ZendeskBackend(server.url, server.email, server.token, retry=FAST_RETRY)


def jira_backend(server: FakeJira) -> JiraBackend:
    return JiraBackend(server.url, server.email, server.token, server.project, retry=FAST_RETRY)


class ModelEmbedder:
    """The `Embedder` port over the bundled embedding model (what `KnowledgeService.embed` does, without an index)."""

    def __init__(self, model: FastEmbedEmbedding) -> None:
        self._model = model

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._model.embed_texts, list(texts))


@pytest.fixture(scope="session")
def intent_classifier(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingIntentClassifier:
    """The shipped intent classifier over the real all-MiniLM-L6-v2 (loaded once per test session)."""
    model = FastEmbedEmbedding(load_text_embedding(DEFAULT_MODEL, tmp_path_factory.mktemp("intent-model")))
    return EmbeddingIntentClassifier(ModelEmbedder(model))
