"""The webhook backend: a signed JSON POST to a URL the operator runs (a help desk bridge, a Zap, a queue).

Wire contract (documented for receivers):
- `POST <TICKET_WEBHOOK_URL>`, `Content-Type: application/json`, body = the ticket (see `payload()`).
- `X-Supportbot-Timestamp: <unix seconds>` and
  `X-Supportbot-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`; the timestamp is signed
  too, so a receiver can refuse stale replays (e.g. older than 5 minutes).
- `Idempotency-Key: <action token>`: the same key means the same ticket; a receiver returns the ticket it made.
- The response may be JSON `{"reference": "...", "url": "..."}` (or `id`); otherwise the reference is derived
  from the key. 5xx, 429 and connection errors are retried with backoff; other 4xx are final.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.messages import TicketRef, TicketRequest
from escalation.backends.base import DEFAULT_RETRY, RetryPolicy, TicketBackendError, plain_body, read_json, with_retries

SIGNATURE_HEADER = "X-Supportbot-Signature"
TIMESTAMP_HEADER = "X-Supportbot-Timestamp"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """Receiver side of `sign` (constant-time compare); used by tests and handy for receivers written in Python."""
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def payload(request: TicketRequest, idempotency_key: str) -> dict[str, Any]:
    return {
        "idempotency_key": idempotency_key,
        "subject": request.subject,
        "summary": request.summary,
        "description": plain_body(request),
        "requester": request.requester,
        "channel": request.channel.value,
        "conversation_key": request.conversation_key,
        "conversation_link": request.conversation_link,
        "transcript": [{"role": t.role.value, "text": t.text, "at": t.at.isoformat()} for t in request.transcript],
    }


class WebhookBackend:
    name = "webhook"

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        retry: RetryPolicy = DEFAULT_RETRY,
        timestamp: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._secret = secret
        self._retry = retry
        self._timestamp = timestamp

    async def create(self, request: TicketRequest, idempotency_key: str) -> TicketRef:
        body = json.dumps(payload(request, idempotency_key), separators=(",", ":")).encode()
        timeout = aiohttp.ClientTimeout(total=self._retry.timeout_seconds)
        async with aiohttp.ClientSession(timeout=timeout) as http:

            async def post() -> Any:
                stamp = str(int(self._timestamp()))
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": idempotency_key,
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: sign(self._secret, stamp, body),
                }
                async with http.post(self._url, data=body, headers=headers) as response:
                    return await read_json(response, "webhook")

            data = await with_retries(self._retry, post)
        if not isinstance(data, dict):
            raise TicketBackendError("webhook: response is not a JSON object")
        reference = str(data.get("reference") or data.get("id") or f"WH-{idempotency_key[:8]}")
        return TicketRef(self.name, reference, str(data.get("url") or ""))
