"""The aiohttp server: health, metrics, Slack HTTP events and a small JSON API.

`/health/ready` checks the database, the vector store and the index, and answers 503 while the process drains
(after SIGTERM) so load balancers stop sending work before shutdown. `POST /api/ask` takes one of several API
keys (rotation) compared in constant time, with a per-key rate limit.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiohttp import web
from aiolimiter import AsyncLimiter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import metrics
from bot.messages import Channel, InboundMessage, Reply
from bot.services import Services
from bot.store.codec import citation_to_json

log = structlog.get_logger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


class ApiKeys:
    """Bearer keys from API_KEYS. Comparison touches every key (constant time); limits are per key."""

    def __init__(self, keys: Sequence[str], per_minute: int) -> None:
        self._keys = [k.encode() for k in keys if k]
        self._limiters = {self._id(k): AsyncLimiter(per_minute, 60) for k in self._keys}

    @staticmethod
    def _id(key: bytes) -> str:
        return hashlib.sha256(key).hexdigest()[:12]

    def match(self, header: str) -> str | None:
        """The key's id (a hash prefix, safe to log) when `header` is `Bearer <a valid key>`."""
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not presented:
            return None
        candidate = presented.strip().encode()
        found: str | None = None
        for key in self._keys:
            if hmac.compare_digest(candidate, key):
                found = self._id(key)
        return found

    async def allow(self, key_id: str) -> bool:
        """Take one request from the key's leaky bucket, or False at once when it is full."""
        limiter = self._limiters[key_id]
        if not limiter.has_capacity():
            return False
        await limiter.acquire()  # returns at once: capacity was just checked
        return True


class Readiness:
    """Readiness state: flips to draining on SIGTERM."""

    def __init__(self) -> None:
        self.draining = False


def build_http_app(
    services: Services,
    readiness: Readiness,
    *,
    slack_handler: Handler | None = None,
    local_key: str = "",
) -> web.Application:
    """The service's routes. `local_key` is the per-run key `supportbot ask` reads from DATA_DIR (mode 0600)."""
    settings = services.settings
    keys = ApiKeys([*settings.api_keys, local_key], settings.api_rate_limit_per_minute)
    app = web.Application(client_max_size=1024 * 1024)
    app[SERVICES] = services

    async def live(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(_request: web.Request) -> web.Response:
        if readiness.draining:
            metrics.READY.set(0)
            return web.json_response({"status": "draining"}, status=503)
        db_ok, index_ok = await asyncio.gather(services.db.ping(), _knowledge_ready(services))
        checks = {"database": db_ok, "vector_store_and_index": index_ok}
        ok = all(checks.values())
        metrics.READY.set(1 if ok else 0)
        return web.json_response({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)

    async def prometheus(_request: web.Request) -> web.Response:
        pending, age, dead = await services.outbox.stats()
        metrics.OUTBOX_PENDING.set(pending)
        metrics.OUTBOX_OLDEST_AGE.set(age)
        metrics.OUTBOX_DEAD.set(dead)
        body = generate_latest()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def ask(request: web.Request) -> web.Response:
        key_id = keys.match(request.headers.get("Authorization", ""))
        if key_id is None:
            return _error(401, "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
        if not await keys.allow(key_id):
            return _error(429, "rate limit exceeded; slow down", {"Retry-After": "60"})
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, 'body must be JSON: {"question": "..."}')
        question = body.get("question") if isinstance(body, dict) else None
        if not isinstance(question, str):
            return _error(400, 'body must be JSON: {"question": "..."}')
        conversation = body.get("conversation_id")
        conversation_id = conversation if isinstance(conversation, str) and conversation else uuid.uuid4().hex
        msg = InboundMessage(
            channel=Channel.API,
            conversation_key=f"{key_id}:{conversation_id}",
            message_id=f"{key_id}:{uuid.uuid4().hex}",
            sender=f"api:{key_id}",
            text=question,
            received_at=services.clock.now(),
        )
        try:
            replies = await services.pipeline.ask(msg)
        except Exception:
            reference = secrets.token_hex(4)
            log.exception("api.ask_failed", message_id=msg.message_id, reference=reference)
            return _error(500, f"internal error (reference: {reference})")
        if not replies:
            return _error(503, "no answer could be produced; try again")
        return web.json_response(_reply_json(replies[0], conversation_id))

    async def slack(request: web.Request) -> web.StreamResponse:
        if slack_handler is None:
            return _error(404, "Slack HTTP events are not enabled (set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN)")
        return await slack_handler(request)

    app.router.add_get("/health/live", live)
    app.router.add_get("/health/ready", ready)
    app.router.add_get("/metrics", prometheus)
    app.router.add_post("/api/ask", ask)
    app.router.add_post("/slack/events", slack)
    return app


async def _knowledge_ready(services: Services) -> bool:
    try:
        return await services.knowledge.ready()
    except Exception:
        log.exception("health.knowledge_failed")
        return False


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def _reply_json(reply: Reply, conversation_id: str) -> dict[str, Any]:
    return {
        "answer": reply.text,
        "outcome": reply.outcome.value,
        "confidence": reply.confidence,
        "low_confidence": reply.low_confidence,
        "citations": [citation_to_json(c) for c in reply.citations],
        "actions": [{"kind": a.kind.value, "label": a.label} for a in reply.actions],
        "reference_id": reply.reference_id,
        "conversation_id": conversation_id,
    }
