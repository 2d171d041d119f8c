"""Zendesk Tickets API: `external_id` carries the action token, so a retry finds the ticket it already made.

Before creating, `GET /api/v2/tickets.json?external_id=<token>` looks for an earlier ticket (a crash after
Zendesk answered but before we stored the reference); only if there is none does `POST /api/v2/tickets.json`
create one (also sending Zendesk's `Idempotency-Key` header). The lookup is part of every retry.
Auth is API-token basic auth (`{email}/token:{api_token}`).
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.messages import TicketRef, TicketRequest
from escalation.backends.base import (
    DEFAULT_RETRY,
    RetryPolicy,
    TicketBackendError,
    looks_like_email,
    plain_body,
    read_json,
    with_retries,
)


class ZendeskBackend:
    name = "zendesk"

    def __init__(self, base_url: str, email: str, api_token: str, *, retry: RetryPolicy = DEFAULT_RETRY) -> None:
        self._base = base_url.rstrip("/")
        self._auth = aiohttp.BasicAuth(f"{email}/token", api_token)
        self._retry = retry

    async def create(self, request: TicketRequest, idempotency_key: str) -> TicketRef:
        timeout = aiohttp.ClientTimeout(total=self._retry.timeout_seconds)
        async with aiohttp.ClientSession(auth=self._auth, timeout=timeout) as http:

            async def find_or_create() -> dict[str, Any]:
                # The lookup is repeated on every attempt: a POST that timed out may have created the ticket.
                existing = await self._find(http, idempotency_key)
                return existing if existing is not None else await self._post(http, request, idempotency_key)

            ticket = await with_retries(self._retry, find_or_create)
        return self._ref(ticket)

    async def _find(self, http: aiohttp.ClientSession, external_id: str) -> dict[str, Any] | None:
        url = f"{self._base}/api/v2/tickets.json"
        async with http.get(url, params={"external_id": external_id}) as response:
            data = await read_json(response, "zendesk lookup")
        tickets = data.get("tickets") if isinstance(data, dict) else None
        if isinstance(tickets, list) and tickets and isinstance(tickets[0], dict):
            return tickets[0]
        return None

    async def _post(self, http: aiohttp.ClientSession, request: TicketRequest, external_id: str) -> dict[str, Any]:
        ticket: dict[str, Any] = {
            "subject": request.subject,
            "comment": {"body": plain_body(request), "public": False},
            "external_id": external_id,
            "tags": ["supportbot", f"supportbot_{request.channel.value}"],
        }
        if looks_like_email(request.requester):
            ticket["requester"] = {"email": request.requester, "name": request.requester.split("@", 1)[0]}
        async with http.post(
            f"{self._base}/api/v2/tickets.json", json={"ticket": ticket}, headers={"Idempotency-Key": external_id}
        ) as response:
            data = await read_json(response, "zendesk create")
        created = data.get("ticket") if isinstance(data, dict) else None
        if not isinstance(created, dict) or "id" not in created:
            raise TicketBackendError("zendesk create: no ticket in the response")
        return created

    def _ref(self, ticket: dict[str, Any]) -> TicketRef:
        ticket_id = ticket["id"]
        return TicketRef(self.name, f"#{ticket_id}", f"{self._base}/agent/tickets/{ticket_id}")
