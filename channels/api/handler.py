"""`POST /api/ask` and `POST /api/actions/{token}/confirm`: a bearer key (one of several, for rotation) compared in
constant time, a per-key rate limit, and the request translated to an `InboundMessage` (a question, or a click on
the offer's Confirm) that the core records and answers before the response. An offer carries its token; the core
confirms it only for the key and the conversation it was made in."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiolimiter import AsyncLimiter

from bot import metrics
from bot.messages import Action, ActionKind, Channel, InboundAction, InboundMessage, Outcome, Reply, clean_text
from bot.offers import offer_reference
from bot.ports import Clock, InlineIntake
from bot.store.codec import citation_to_json

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """The keys that may call the API (several at once for rotation), the per-key limit, and how many failed key
    attempts one client address may make per minute before it is refused without a check. A question longer than
    `max_question_chars` is refused at the edge (413), before it is recorded or stored anywhere."""

    keys: tuple[str, ...] = ()
    rate_limit_per_minute: int = 60
    failed_auth_per_minute: int = 10
    max_question_chars: int = 4000


class ApiKeys:
    """Bearer keys. Comparison touches every key (constant time); limits are per key."""

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


class ApiGate:
    """Key check, brute-force limit and per-key rate limit, shared by every API route (one budget per key)."""

    def __init__(self, config: ApiConfig) -> None:
        self._keys = ApiKeys(config.keys, config.rate_limit_per_minute)
        self._failures = FailureLimiter(config.failed_auth_per_minute)

    async def admit(self, request: web.Request) -> str | web.Response:
        """The caller's key id, or the refusal to return."""
        remote = request.remote or "unknown"
        if self._failures.exhausted(remote):
            return refused(request, 429, "too_many_failures", "too many failed attempts; wait a minute")
        key_id = self._keys.match(request.headers.get("Authorization", ""))
        if key_id is None:
            await self._failures.record(remote)
            return refused(request, 401, "unauthorized", "missing or invalid API key", {"WWW-Authenticate": "Bearer"})
        if not await self._keys.allow(key_id):
            return refused(request, 429, "rate_limited", "rate limit exceeded; slow down", {"Retry-After": "60"})
        return key_id


async def json_body(request: web.Request) -> dict[str, Any] | None:
    """The JSON object in the body, or None. Bytes that are not UTF-8 become U+FFFD: invalid text is cleaned here,
    never a 5xx or a dead letter."""
    try:
        body = json.loads((await request.read()).decode("utf-8", errors="replace"))
    except (json.JSONDecodeError, RecursionError):
        return None
    return body if isinstance(body, dict) else None


class AskEndpoint:
    """The aiohttp handler for `POST /api/ask`."""

    def __init__(self, gate: ApiGate, intake: InlineIntake, clock: Clock, max_chars: int) -> None:
        self._gate = gate
        self._intake = intake
        self._clock = clock
        self._max_chars = max_chars

    async def __call__(self, request: web.Request) -> web.Response:
        key_id = await self._gate.admit(request)
        if isinstance(key_id, web.Response):
            return key_id
        body = await json_body(request)
        question = body.get("question") if body is not None else None
        if body is None or not isinstance(question, str):
            return refused(request, 400, "bad_request", 'body must be JSON: {"question": "..."}')
        if len(question) > self._max_chars:
            return refused(request, 413, "too_long", f"the question is longer than {self._max_chars} characters")
        question = clean_text(question)
        conversation = body.get("conversation_id")
        conversation_id = (
            clean_text(conversation) if isinstance(conversation, str) and conversation else uuid.uuid4().hex
        )
        msg = InboundMessage(
            channel=Channel.API,
            conversation_key=f"{key_id}:{conversation_id}",
            message_id=f"{key_id}:{uuid.uuid4().hex}",
            sender=f"api:{key_id}",
            text=question,
            received_at=self._clock.now(),
        )
        return await answer(self._intake, msg, conversation_id)


class ConfirmEndpoint:
    """`POST /api/actions/{token}/confirm` with `{"conversation_id": ...}`: the offer's Confirm, pressed over the
    API. Confirming twice returns the same ticket; another key or another conversation is refused (403)."""

    def __init__(self, gate: ApiGate, intake: InlineIntake, clock: Clock) -> None:
        self._gate = gate
        self._intake = intake
        self._clock = clock

    async def __call__(self, request: web.Request) -> web.Response:
        key_id = await self._gate.admit(request)
        if isinstance(key_id, web.Response):
            return key_id
        body = await json_body(request)
        conversation_id = body.get("conversation_id") if body is not None else None
        if not isinstance(conversation_id, str) or not conversation_id:
            return refused(request, 400, "bad_request", 'body must be JSON: {"conversation_id": "..."}')
        msg = InboundMessage(
            channel=Channel.API,
            conversation_key=f"{key_id}:{conversation_id}",
            message_id=f"{key_id}:{uuid.uuid4().hex}",
            sender=f"api:{key_id}",
            text="",
            received_at=self._clock.now(),
            action=InboundAction(ActionKind.CONFIRM, clean_text(request.match_info["token"])),
        )
        return await answer(self._intake, msg, conversation_id)


async def answer(intake: InlineIntake, msg: InboundMessage, conversation_id: str) -> web.Response:
    """Have the core record and answer `msg`; its first reply as JSON (a refusal by the core is a 403)."""
    try:
        replies = await intake.ask(msg)
    except Exception:
        reference = secrets.token_hex(4)
        log.exception("api.ask_failed", message_id=msg.message_id, reference=reference)
        return error(500, f"internal error (reference: {reference})")
    if not replies:
        return error(503, "no answer could be produced; try again")
    reply = replies[0]
    if reply.outcome is Outcome.REJECTED and msg.action is not None:
        return web.json_response({**reply_json(reply, conversation_id), "error": reply.text}, status=403)
    return web.json_response(reply_json(reply, conversation_id))


class FailureLimiter:
    """Failed key attempts per client address, in a one-minute leaky bucket each (brute force is refused early).
    Buckets are dropped once they have drained, so the table stays small."""

    def __init__(self, per_minute: int) -> None:
        self._per_minute = per_minute
        self._buckets: dict[str, AsyncLimiter] = {}

    def exhausted(self, remote: str) -> bool:
        bucket = self._buckets.get(remote)
        return bucket is not None and not bucket.has_capacity()

    async def record(self, remote: str) -> None:
        bucket = self._buckets.setdefault(remote, AsyncLimiter(self._per_minute, 60))
        if bucket.has_capacity():
            await bucket.acquire()  # returns at once: capacity was just checked
        if len(self._buckets) > 10_000:
            self._buckets = {k: b for k, b in self._buckets.items() if not b.has_capacity(self._per_minute)}


def refused(
    request: web.Request, status: int, reason: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A refused request: counted by reason and logged as an access line (no key, no body)."""
    metrics.API_REFUSED.labels(reason).inc()
    log.info("api.refused", status=status, reason=reason, path=request.path, remote=request.remote)
    return error(status, message, headers)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


def reply_json(reply: Reply, conversation_id: str) -> dict[str, Any]:
    return {
        "answer": reply.text,
        "outcome": reply.outcome.value,
        "confidence": reply.confidence,
        "low_confidence": reply.low_confidence,
        "citations": [citation_to_json(c) for c in reply.citations],
        "actions": [_action_json(a) for a in reply.actions],
        "reference_id": reply.reference_id,
        "conversation_id": conversation_id,
    }


def _action_json(action: Action) -> dict[str, str]:
    """An offer carries its token (what `POST /api/actions/{token}/confirm` takes) and its reference."""
    if action.kind is ActionKind.OFFER_TICKET and action.value:
        return {
            "kind": action.kind.value,
            "label": action.label,
            "token": action.value,
            "reference": offer_reference(action.value),
            "confirm": f"/api/actions/{action.value}/confirm",
        }
    return {"kind": action.kind.value, "label": action.label}
