"""The confirm-before-act state machine on SQLite and PostgreSQL: races, restarts, expiry, crash recovery."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from app.build import escalation_config
from bot import metrics
from bot.errors import InvalidTransition, NotAllowed, UserFacingError
from bot.messages import Channel
from bot.ports import TicketBackend
from bot.store.conversations import ConversationStore
from bot.store.db import Database
from bot.store.outbox import Outbox
from bot.store.tables import TicketRow
from bot.strings import for_customers
from escalation import build_escalation
from escalation.actions import ActionStore
from escalation.service import EscalationService
from escalation.tickets import TicketExecutor
from tests.conftest import ManualClock
from tests.escalation.conftest import (
    AGENT,
    ServiceFactory,
    email_msg,
    jira_backend,
    make_settings,
    slack_msg,
    webhook_backend,
    zendesk_backend,
)
from tests.fakes.ticket_servers import FakeJira, FakeTicketServer, FakeZendesk, WebhookReceiver


async def ticket_count(db: Database) -> int:
    async with db.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(TicketRow))).scalar_one())


async def test_fifty_concurrent_confirmations_open_one_ticket(db: Database, make_service: ServiceFactory) -> None:
    service = make_service()
    preview = await service.propose_ticket(slack_msg(), "abstained")
    assert preview.state == "pending" and preview.kind == "create_ticket"
    actors = ["UREQ", AGENT] * 25
    refs = await asyncio.gather(*(service.confirm(preview.token, actor) for actor in actors))
    assert len(set(refs)) == 1
    assert refs[0].backend == "internal" and refs[0].reference.startswith("#")
    assert await ticket_count(db) == 1
    done = await service.preview(preview.token)
    assert done.state == "done" and done.ticket == refs[0]
    [view] = await service.list_tickets()
    assert view.state == "open" and view.reference == refs[0].reference


@pytest.mark.parametrize("kind", ["webhook", "zendesk", "jira"])
async def test_fifty_concurrent_confirmations_make_one_backend_request(
    db: Database,
    make_service: ServiceFactory,
    webhook: WebhookReceiver,
    zendesk: FakeZendesk,
    jira: FakeJira,
    kind: str,
) -> None:
    server: FakeTicketServer
    backend: TicketBackend
    if kind == "webhook":
        server, backend = webhook, webhook_backend(webhook)
    elif kind == "zendesk":
        server, backend = zendesk, zendesk_backend(zendesk)
    else:
        server, backend = jira, jira_backend(jira)
    server.create_delay = 0.05  # the others arrive while the one request is in flight
    service = make_service(backend)
    preview = await service.propose_ticket(email_msg(), "low confidence")
    refs = await asyncio.gather(*(service.confirm(preview.token, "ann@customer.example") for _ in range(50)))
    assert len(set(refs)) == 1 and refs[0].backend == kind
    assert len(server.creates()) == 1
    assert await ticket_count(db) == 1


async def test_a_restarted_service_confirms_a_proposal(
    db: Database, db_url: str, clock: ManualClock, make_service: ServiceFactory
) -> None:
    preview = await make_service().propose_ticket(email_msg(), "abstained")
    fresh_db = Database(db_url)  # a new process: new engine, new service, same database
    try:
        outbox = Outbox(fresh_db, clock)
        restarted = build_escalation(
            escalation_config(make_settings()), fresh_db, clock, outbox, ConversationStore(fresh_db, clock, outbox)
        )
        ref = await restarted.confirm(preview.token, "ann@customer.example")
    finally:
        await fresh_db.dispose()
    assert ref.reference == "#1"
    assert await ticket_count(db) == 1


async def test_confirming_after_expiry_says_ask_again_and_opens_nothing(
    db: Database, clock: ManualClock, make_service: ServiceFactory
) -> None:
    service = make_service()
    preview = await service.propose_ticket(slack_msg(), "abstained")
    clock.advance(31 * 60)  # ttl is 30 minutes
    with pytest.raises(InvalidTransition) as raised:
        await service.confirm(preview.token, "UREQ")
    assert raised.value.message == for_customers.EXPIRED
    assert (await service.preview(preview.token)).state == "expired"
    assert await ticket_count(db) == 0


async def test_expire_due_expires_overdue_offers_and_updates_the_gauge(
    clock: ManualClock, make_service: ServiceFactory
) -> None:
    service = make_service()
    old = [await service.propose_ticket(slack_msg(n), "abstained") for n in range(2)]
    clock.advance(20 * 60)
    young = await service.propose_ticket(slack_msg(3), "abstained")
    clock.advance(11 * 60)
    assert await service.expire_due() == 2
    assert {(await service.preview(p.token)).state for p in old} == {"expired"}
    assert (await service.preview(young.token)).state == "pending"
    assert metrics.PENDING_ACTIONS.labels("expired")._value.get() == 2
    assert metrics.PENDING_ACTIONS.labels("pending")._value.get() == 1


async def test_only_the_requester_or_an_agent_may_confirm(db: Database, make_service: ServiceFactory) -> None:
    service = make_service()
    preview = await service.propose_ticket(slack_msg(), "abstained")
    with pytest.raises(NotAllowed):
        await service.confirm(preview.token, "USTRANGER")
    with pytest.raises(NotAllowed):
        await service.cancel(preview.token, "USTRANGER")
    assert await ticket_count(db) == 0
    assert (await service.confirm(preview.token, AGENT)).reference == "#1"


async def test_cancel_and_confirm_exclude_each_other(make_service: ServiceFactory) -> None:
    service = make_service()
    cancelled = await service.propose_ticket(slack_msg(1), "abstained")
    await service.cancel(cancelled.token, "UREQ")
    await service.cancel(cancelled.token, "UREQ")  # a double click is harmless
    with pytest.raises(InvalidTransition) as raised:
        await service.confirm(cancelled.token, "UREQ")
    assert raised.value.message == for_customers.CANCELLED

    confirmed = await service.propose_ticket(slack_msg(2), "abstained")
    ref = await service.confirm(confirmed.token, "UREQ")
    with pytest.raises(InvalidTransition) as raised:
        await service.cancel(confirmed.token, "UREQ")
    assert raised.value.message == f"This was already confirmed: ticket {ref.reference}."


async def test_unknown_token_is_a_clear_refusal(make_service: ServiceFactory) -> None:
    with pytest.raises(InvalidTransition) as raised:
        await make_service().confirm("not-a-token", "UREQ")
    assert raised.value.message == for_customers.UNKNOWN_ACTION


async def test_a_failed_backend_is_retried_by_the_next_confirmation_without_a_second_ticket(
    db: Database, make_service: ServiceFactory, webhook: WebhookReceiver
) -> None:
    service = make_service(webhook_backend(webhook))
    preview = await service.propose_ticket(email_msg(), "abstained")
    webhook.fail_next(4)  # every retry of the first attempt fails
    with pytest.raises(UserFacingError) as raised:
        await service.confirm(preview.token, "ann@customer.example")
    assert raised.value.message == for_customers.ACTION_FAILED
    assert (await service.preview(preview.token)).state == "confirmed"
    ref = await service.confirm(preview.token, "ann@customer.example")
    assert ref.reference == "WH-1"
    assert len(webhook.tickets) == 1 and await ticket_count(db) == 1


async def test_a_crash_between_confirmed_and_done_is_finished_later(
    db: Database,
    clock: ManualClock,
    outbox: Outbox,
    make_service: ServiceFactory,
    webhook: WebhookReceiver,
) -> None:
    backend = webhook_backend(webhook)
    service = make_service(backend, wait_seconds=0.2)
    preview = await service.propose_ticket(email_msg(), "abstained")
    # A replica confirms, the backend even creates the ticket, and the replica dies before recording it.
    executor = TicketExecutor(db, clock, outbox, backend, "CAGENTS")
    store = ActionStore(db, clock)
    assert await store.confirm(preview.token, "ann@customer.example", executor.on_confirmed)
    action = await store.get(preview.token)
    assert action is not None
    await executor.execute(action)
    # While its lease is fresh, another click waits and then says the ticket is on its way.
    with pytest.raises(UserFacingError) as raised:
        await service.confirm(preview.token, "ann@customer.example")
    assert raised.value.message == for_customers.IN_PROGRESS
    clock.advance(5 * 60)  # the lease lapsed: the sweep (or the next click) finishes it
    assert await service.expire_due() == 0
    assert (await service.preview(preview.token)).state == "done"
    ref = await service.confirm(preview.token, "ann@customer.example")
    assert ref.reference == "WH-1"
    assert len(webhook.tickets) == 1 and await ticket_count(db) == 1


async def test_state_survives_on_any_service_instance(db: Database, make_service: ServiceFactory) -> None:
    first, second = make_service(), make_service()
    preview = await first.propose_ticket(slack_msg(), "abstained")
    refs = await asyncio.gather(first.confirm(preview.token, "UREQ"), second.confirm(preview.token, "UREQ"))
    assert refs[0] == refs[1]
    assert isinstance(second, EscalationService) and await ticket_count(db) == 1
    assert (await second.preview(preview.token)).channel is Channel.SLACK
