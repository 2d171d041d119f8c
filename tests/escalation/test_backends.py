"""Each ticket backend against a local server that speaks its API: what is sent, retries, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.build import escalation_config
from bot.errors import ConfigError
from bot.messages import Channel, Role, TicketRequest, Turn
from bot.store.db import Database
from escalation.backends import InternalBackend, JiraBackend, TicketBackendError, WebhookBackend, build_backend
from escalation.backends.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.conftest import ManualClock
from tests.escalation.conftest import FAST_RETRY, jira_backend, make_settings, webhook_backend, zendesk_backend
from tests.fakes.ticket_servers import FakeJira, FakeZendesk, WebhookReceiver

REQUEST = TicketRequest(
    subject="Refund for order 1042",
    summary="Why: abstained\n\ncustomer: How do refunds work for opened items?",
    requester="ann@customer.example",
    channel=Channel.EMAIL,
    conversation_key="<root-1@customer.example>",
    conversation_link="",
    transcript=(Turn(Role.CUSTOMER, "How do refunds work for opened items?", datetime(2026, 11, 16, 9, tzinfo=UTC)),),
)
TOKEN = "tok_" + "A" * 28


async def test_webhook_posts_a_signed_idempotent_json_body(webhook: WebhookReceiver) -> None:
    backend = WebhookBackend(webhook.hook_url, webhook.secret, retry=FAST_RETRY, timestamp=lambda: 1_800_000_000)
    ref = await backend.create(REQUEST, TOKEN)
    assert ref.backend == "webhook" and ref.reference == "WH-1" and ref.url.endswith("/t/1")
    [sent] = webhook.requests
    assert sent.headers["Idempotency-Key"] == TOKEN
    assert sent.headers[TIMESTAMP_HEADER] == "1800000000"
    assert sent.headers[SIGNATURE_HEADER] == sign(webhook.secret, "1800000000", sent.body)
    body = sent.json()
    assert body["idempotency_key"] == TOKEN and body["subject"] == REQUEST.subject
    assert body["requester"] == "ann@customer.example" and body["channel"] == "email"
    assert body["transcript"][0]["role"] == "customer"
    assert await backend.create(REQUEST, TOKEN) == ref  # the receiver answers a repeated key with the same ticket
    assert len(webhook.tickets) == 1


async def test_webhook_retries_server_errors_then_succeeds(webhook: WebhookReceiver) -> None:
    webhook.fail_next(2, status=503)
    ref = await webhook_backend(webhook).create(REQUEST, TOKEN)
    assert ref.reference == "WH-1" and len(webhook.requests) == 3


async def test_webhook_does_not_retry_a_rejection(webhook: WebhookReceiver) -> None:
    backend = WebhookBackend(webhook.hook_url, "wrong-secret", retry=FAST_RETRY)
    with pytest.raises(TicketBackendError) as raised:
        await backend.create(REQUEST, TOKEN)
    assert raised.value.status == 401 and not raised.value.retryable
    assert len(webhook.requests) == 1


async def test_webhook_gives_up_after_its_attempts(webhook: WebhookReceiver) -> None:
    webhook.fail_next(10, status=500)
    with pytest.raises(TicketBackendError):
        await webhook_backend(webhook).create(REQUEST, TOKEN)
    assert len(webhook.requests) == FAST_RETRY.attempts


async def test_webhook_retries_a_refused_connection() -> None:
    server = WebhookReceiver()
    await server.start()
    url = server.hook_url
    await server.stop()  # nothing listens there any more
    with pytest.raises(TicketBackendError) as raised:
        await WebhookBackend(url, server.secret, retry=FAST_RETRY).create(REQUEST, TOKEN)
    assert raised.value.retryable


async def test_zendesk_creates_with_external_id_and_finds_it_again(zendesk: FakeZendesk) -> None:
    backend = zendesk_backend(zendesk)
    ref = await backend.create(REQUEST, TOKEN)
    assert ref.backend == "zendesk" and ref.reference == "#35436"
    assert ref.url == f"{zendesk.url}/agent/tickets/35436"
    lookup, create = zendesk.requests
    assert (lookup.method, lookup.path, lookup.query) == ("GET", "/api/v2/tickets.json", {"external_id": TOKEN})
    ticket = create.json()["ticket"]
    assert ticket["external_id"] == TOKEN and ticket["subject"] == REQUEST.subject
    assert ticket["requester"]["email"] == "ann@customer.example"
    assert "How do refunds work" in ticket["comment"]["body"] and ticket["comment"]["public"] is False
    assert create.headers["Idempotency-Key"] == TOKEN
    assert await backend.create(REQUEST, TOKEN) == ref  # a repeat finds it by external_id
    assert len(zendesk.tickets) == 1 and len(zendesk.creates()) == 1


async def test_zendesk_lost_response_is_found_on_retry_not_created_twice(zendesk: FakeZendesk) -> None:
    zendesk.lose_next_create_response()
    ref = await zendesk_backend(zendesk).create(REQUEST, TOKEN)
    assert ref.reference == "#35436"
    assert len(zendesk.tickets) == 1
    assert [r.method for r in zendesk.requests] == ["GET", "POST", "GET"]


async def test_zendesk_slack_requester_is_not_sent_as_an_email(zendesk: FakeZendesk) -> None:
    slack = TicketRequest("Export broken", "Why: abstained", "U123", Channel.SLACK, "C1:1.2")
    await zendesk_backend(zendesk).create(slack, TOKEN)
    assert "requester" not in zendesk.creates()[0].json()["ticket"]


async def test_zendesk_bad_credentials_fail_without_retry(zendesk: FakeZendesk) -> None:
    backend = zendesk_backend(zendesk)
    zendesk.token = "rotated"
    with pytest.raises(TicketBackendError) as raised:
        await backend.create(REQUEST, TOKEN)
    assert raised.value.status == 401 and len(zendesk.requests) == 1


async def test_jira_creates_an_issue_with_adf_and_a_token_label(jira: FakeJira) -> None:
    backend = jira_backend(jira)
    ref = await backend.create(REQUEST, TOKEN)
    assert ref.backend == "jira" and ref.reference == "SUP-1" and ref.url == f"{jira.url}/browse/SUP-1"
    search, create = jira.requests
    assert search.path == "/rest/api/3/search/jql" and search.query["jql"] == f'labels = "supportbot-{TOKEN}"'
    fields = create.json()["fields"]
    assert fields["project"] == {"key": "SUP"} and fields["issuetype"] == {"name": "Task"}
    assert fields["summary"] == REQUEST.subject and f"supportbot-{TOKEN}" in fields["labels"]
    doc = fields["description"]
    assert doc["type"] == "doc" and doc["version"] == 1
    texts = [n["text"] for p in doc["content"] for n in p["content"] if n["type"] == "text"]
    assert any("How do refunds work" in t for t in texts)
    assert await backend.create(REQUEST, TOKEN) == ref
    assert len(jira.issues) == 1


async def test_jira_retries_and_survives_a_lost_response(jira: FakeJira) -> None:
    jira.fail_next(1, status=503)
    jira.lose_next_create_response()
    ref = await jira_backend(jira).create(REQUEST, TOKEN)
    assert ref.reference == "SUP-1" and len(jira.issues) == 1


async def test_jira_rejects_a_wrong_project_without_retry(jira: FakeJira) -> None:
    backend = JiraBackend(jira.url, jira.email, jira.token, "NOPE", retry=FAST_RETRY)
    with pytest.raises(TicketBackendError) as raised:
        await backend.create(REQUEST, TOKEN)
    assert raised.value.status == 400 and jira.issues == []


async def test_internal_backend_is_idempotent(db: Database, clock: ManualClock) -> None:
    backend = InternalBackend(db, clock)
    first = await backend.create(REQUEST, TOKEN)
    assert first.reference == "#1" and await backend.create(REQUEST, TOKEN) == first
    assert (await backend.create(REQUEST, "another-token")).reference == "#2"


async def test_build_backend_names_missing_settings(sqlite_db: Database, clock: ManualClock) -> None:
    assert build_backend(escalation_config(make_settings()).backend, sqlite_db, clock).name == "internal"
    with pytest.raises(ConfigError, match="ZENDESK_URL"):
        build_backend(escalation_config(make_settings(ticket_backend="zendesk")).backend, sqlite_db, clock)
    with pytest.raises(ConfigError, match="JIRA_PROJECT"):
        build_backend(
            escalation_config(
                make_settings(ticket_backend="jira", jira_url="http://j", jira_email="a@b.c", jira_api_token="t")
            ).backend,
            sqlite_db,
            clock,
        )
    hook = make_settings(ticket_backend="webhook", ticket_webhook_url="http://h", ticket_webhook_secret="s")
    assert build_backend(escalation_config(hook).backend, sqlite_db, clock).name == "webhook"
