"""Jira Cloud: create an issue (`POST /rest/api/3/issue`, description in Atlassian Document Format).

Idempotency: every issue carries the label `supportbot-<token>`; before creating, a JQL search
(`GET /rest/api/3/search/jql`) for that label finds an issue an earlier attempt made. Jira's search index can
lag a few seconds, so this guards crash-retries; concurrent confirmations never get here twice because the
escalation service lets one worker run the backend per action.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.messages import TicketRef, TicketRequest
from escalation.backends.base import DEFAULT_RETRY, RetryPolicy, TicketBackendError, plain_body, read_json, with_retries

LABEL_PREFIX = "supportbot-"


def token_label(token: str) -> str:
    return f"{LABEL_PREFIX}{token}"


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document: one paragraph per block, hard breaks per line."""
    paragraphs: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        content: list[dict[str, Any]] = []
        for i, line in enumerate(block.split("\n")):
            if i:
                content.append({"type": "hardBreak"})
            if line:
                content.append({"type": "text", "text": line})
        paragraphs.append({"type": "paragraph", "content": content})
    return {"type": "doc", "version": 1, "content": paragraphs}


class JiraBackend:
    name = "jira"

    def __init__(
        self,
        base_url: str,
        email: str,
        api_token: str,
        project: str,
        issue_type: str = "Task",
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._auth = aiohttp.BasicAuth(email, api_token)
        self._project = project
        self._issue_type = issue_type
        self._retry = retry

    async def create(self, request: TicketRequest, idempotency_key: str) -> TicketRef:
        timeout = aiohttp.ClientTimeout(total=self._retry.timeout_seconds)
        headers = {"Accept": "application/json"}
        async with aiohttp.ClientSession(auth=self._auth, timeout=timeout, headers=headers) as http:

            async def find_or_create() -> str:
                found = await self._find(http, idempotency_key)
                return found if found is not None else await self._post(http, request, idempotency_key)

            key = await with_retries(self._retry, find_or_create)
        return TicketRef(self.name, key, f"{self._base}/browse/{key}")

    async def _find(self, http: aiohttp.ClientSession, token: str) -> str | None:
        jql = f'labels = "{token_label(token)}"'
        params = {"jql": jql, "fields": "key", "maxResults": "1"}
        async with http.get(f"{self._base}/rest/api/3/search/jql", params=params) as response:
            data = await read_json(response, "jira search")
        issues = data.get("issues") if isinstance(data, dict) else None
        if isinstance(issues, list) and issues and isinstance(issues[0], dict) and issues[0].get("key"):
            return str(issues[0]["key"])
        return None

    async def _post(self, http: aiohttp.ClientSession, request: TicketRequest, token: str) -> str:
        fields = {
            "project": {"key": self._project},
            "issuetype": {"name": self._issue_type},
            "summary": request.subject[:250] or "Support request",
            "description": adf(plain_body(request)),
            "labels": ["supportbot", token_label(token)],
        }
        async with http.post(f"{self._base}/rest/api/3/issue", json={"fields": fields}) as response:
            data = await read_json(response, "jira create")
        if not isinstance(data, dict) or not data.get("key"):
            raise TicketBackendError("jira create: no issue key in the response")
        return str(data["key"])
