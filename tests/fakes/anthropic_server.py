"""A local HTTP server that speaks the Anthropic Messages API (JSON and SSE streaming) and records every request.

Tests point the real `anthropic` client at it (`ANTHROPIC_BASE_URL`). Script replies with `reply()` / `fail()`;
unscripted requests get `default_text`. Errors use the API's own shapes: 429 `rate_limit_error` (with
`retry-after`), 529 `overloaded_error`, 500 `api_error`.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


def presented_key(request: web.Request) -> str:
    """The API key a client sent: `x-api-key`, or `Authorization: Bearer` (newer SDKs send that)."""
    bearer = request.headers.get("Authorization", "")
    return request.headers.get("x-api-key") or bearer.removeprefix("Bearer ").strip()


ERROR_TYPES = {400: "invalid_request_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


@dataclass
class Scripted:
    status: int = 200
    text: str = ""
    input_tokens: int = 120
    output_tokens: int = 30


@dataclass
class FakeAnthropic:
    """The fake server's state: scripted replies, recorded requests, and the base URL once started."""

    default_text: str = "Here is the answer [1]."
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    script: deque[Scripted] = field(default_factory=deque)
    base_url: str = ""
    valid_keys: set[str] | None = None  # None: every key is accepted; else others get 401 authentication_error
    _runner: web.AppRunner | None = None

    def reply(self, text: str, input_tokens: int = 120, output_tokens: int = 30) -> None:
        self.script.append(Scripted(200, text, input_tokens, output_tokens))

    def fail(self, status: int, times: int = 1) -> None:
        for _ in range(times):
            self.script.append(Scripted(status))

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/messages", self._messages)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        if self.valid_keys is not None and presented_key(request) not in self.valid_keys:
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            return web.json_response({"type": "error", "error": error}, status=401)
        model = {"type": "model", "id": "claude-test", "display_name": "Claude", "created_at": "2026-01-01T00:00:00Z"}
        page = {"data": [model], "has_more": False, "first_id": "claude-test", "last_id": "claude-test"}
        return web.json_response(page)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        step = self.script.popleft() if self.script else Scripted(200, self.default_text)
        if step.status != 200:
            kind = ERROR_TYPES.get(step.status, "api_error")
            payload = {"type": "error", "error": {"type": kind, "message": f"fake {kind}"}}
            headers = {"retry-after": "0"} if step.status == 429 else {}
            return web.json_response(payload, status=step.status, headers=headers)
        model = body.get("model", "claude-test")
        if body.get("stream"):
            return await self._stream(request, step, model)
        return web.json_response(
            {
                "id": f"msg_{len(self.requests)}",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": step.text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": step.input_tokens, "output_tokens": step.output_tokens},
            }
        )

    async def _stream(self, request: web.Request, step: Scripted, model: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await response.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        message = {
            "id": f"msg_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": step.input_tokens, "output_tokens": 1},
        }
        await send("message_start", {"type": "message_start", "message": message})
        await send(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        )
        words = step.text.split(" ")
        for position, word in enumerate(words):
            piece = word if position == 0 else " " + word
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
            await send("content_block_delta", delta)
        await send("content_block_stop", {"type": "content_block_stop", "index": 0})
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": step.output_tokens},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        await response.write_eof()
        return response
