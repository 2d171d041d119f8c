"""Local ticket systems for tests: real aiohttp servers on ephemeral ports that speak the wire protocols.

- `WebhookReceiver`: the signed-webhook contract of `escalation.backends.webhook` (verifies the HMAC).
- `FakeZendesk`: `GET/POST /api/v2/tickets.json` (Tickets API, `external_id` lookups, API-token basic auth).
- `FakeJira`: `POST /rest/api/3/issue` and `GET /rest/api/3/search/jql` (labels JQL, ADF descriptions).

Each records every request (`.requests`) so tests assert exactly what was sent, can fail the next N requests
(`fail_next`), and can "lose" responses after creating (`lose_next_create_response`: the ticket is made but the
client sees a 502, as after a timeout), which is what idempotency must survive.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from escalation.backends.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class FakeTicketServer:
    """Base: start/stop, request recording, injected failures, an optional delay on creates."""

    requests: list[RecordedRequest] = field(default_factory=list)
    create_delay: float = 0.0
    _fail: list[int] = field(default_factory=list)
    _lose_creates: int = 0
    _runner: web.AppRunner | None = None
    url: str = ""

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def fail_next(self, n: int, status: int = 503) -> None:
        """The next `n` requests (of any kind) answer `status` without doing anything."""
        self._fail.extend([status] * n)

    def lose_next_create_response(self, n: int = 1) -> None:
        """The next `n` creates succeed on the server but the client gets a 502."""
        self._lose_creates += n

    def creates(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST"]

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(request.method, request.path, dict(request.query), dict(request.headers), body)
        )
        if self._fail:
            return web.json_response({"error": "injected"}, status=self._fail.pop(0))
        response: web.StreamResponse = await handler(request)
        return response

    async def _created(self, payload: dict[str, Any], status: int = 201) -> web.Response:
        if self.create_delay:
            await asyncio.sleep(self.create_delay)
        if self._lose_creates:
            self._lose_creates -= 1
            return web.json_response({"error": "bad gateway"}, status=502)
        return web.json_response(payload, status=status)

    async def start(self) -> str:
        app = web.Application(middlewares=[self._record])
        self.routes(app)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _basic(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return ""
    return base64.b64decode(header.removeprefix("Basic ")).decode()


@dataclass
class WebhookReceiver(FakeTicketServer):
    """Receives signed ticket webhooks at `/hooks/tickets`; one ticket per Idempotency-Key."""

    secret: str = "whsec-test"
    tickets: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hooks/tickets"

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hooks/tickets", self._hook)

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        if not verify(self.secret, stamp, body, request.headers.get(SIGNATURE_HEADER, "")):
            return web.json_response({"error": "bad signature"}, status=401)
        key = request.headers.get("Idempotency-Key", "")
        if not key:
            return web.json_response({"error": "missing Idempotency-Key"}, status=400)
        if key in self.tickets:
            return web.json_response(self.tickets[key], status=200)
        ticket = {"reference": f"WH-{len(self.tickets) + 1}", "url": f"{self.url}/t/{len(self.tickets) + 1}"}
        self.tickets[key] = ticket
        return await self._created(ticket)


@dataclass
class FakeZendesk(FakeTicketServer):
    """The Zendesk Tickets API subset we use, with API-token basic auth."""

    email: str = "bot@example.com"
    token: str = "zd-token"
    tickets: list[dict[str, Any]] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v2/tickets.json", self._list)
        app.router.add_post("/api/v2/tickets.json", self._create)

    def _authorised(self, request: web.Request) -> bool:
        return _basic(request) == f"{self.email}/token:{self.token}"

    async def _list(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "Couldn't authenticate you"}, status=401)
        external_id = request.query.get("external_id")
        found = [t for t in self.tickets if external_id is None or t.get("external_id") == external_id]
        return web.json_response({"tickets": found, "count": len(found), "next_page": None})

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"error": "Couldn't authenticate you"}, status=401)
        body = await request.json()
        ticket = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket, dict) or not ticket.get("comment", {}).get("body"):
            return web.json_response({"error": "RecordInvalid", "details": {"base": ["comment required"]}}, status=422)
        stored = {**ticket, "id": 35436 + len(self.tickets), "status": "new"}
        stored["description"] = ticket["comment"]["body"]
        self.tickets.append(stored)
        return await self._created({"ticket": stored})


_LABEL_JQL = re.compile(r'^labels\s*=\s*"([^"]+)"$')


@dataclass
class FakeJira(FakeTicketServer):
    """Jira Cloud's create-issue and JQL search endpoints, with basic auth (email, API token)."""

    email: str = "bot@example.com"
    token: str = "jira-token"
    project: str = "SUP"
    issues: list[dict[str, Any]] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/rest/api/3/issue", self._create)
        app.router.add_get("/rest/api/3/search/jql", self._search)

    def _authorised(self, request: web.Request) -> bool:
        return _basic(request) == f"{self.email}:{self.token}"

    async def _search(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errorMessages": ["unauthorised"]}, status=401)
        match = _LABEL_JQL.match(request.query.get("jql", ""))
        if match is None:
            return web.json_response({"errorMessages": ["unsupported JQL in the fake"]}, status=400)
        found = [{"id": i["id"], "key": i["key"]} for i in self.issues if match.group(1) in i["fields"]["labels"]]
        return web.json_response({"issues": found[: int(request.query.get("maxResults", "50"))], "isLast": True})

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            return web.json_response({"errorMessages": ["unauthorised"]}, status=401)
        fields = (await request.json()).get("fields", {})
        errors: dict[str, str] = {}
        if fields.get("project", {}).get("key") != self.project:
            errors["project"] = "valid project is required"
        if not fields.get("issuetype", {}).get("name"):
            errors["issuetype"] = "valid issue type is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        description = fields.get("description")
        if not isinstance(description, dict) or description.get("type") != "doc" or description.get("version") != 1:
            errors["description"] = "Operation value must be an Atlassian Document"
        if errors:
            return web.json_response({"errorMessages": [], "errors": errors}, status=400)
        number = len(self.issues) + 1
        issue = {"id": str(10000 + number), "key": f"{self.project}-{number}", "fields": fields}
        self.issues.append(issue)
        return await self._created(
            {"id": issue["id"], "key": issue["key"], "self": f"{self.url}/rest/api/3/issue/{issue['id']}"}
        )
