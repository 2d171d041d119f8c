"""What the HTTP ticket backends share: errors, retries (tenacity) and the ticket's plain-text body."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from bot.errors import SupportbotError
from bot.messages import TicketRequest

T = TypeVar("T")


class TicketBackendError(SupportbotError):
    """A ticket backend refused or failed a request. `retryable` errors (5xx, 429, network) are retried."""

    def __init__(self, message: str, *, status: int = 0, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently an HTTP backend retries transient failures."""

    attempts: int = 4
    wait_initial: float = 0.5
    wait_max: float = 8.0
    timeout_seconds: float = 15.0


DEFAULT_RETRY = RetryPolicy()


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, TicketBackendError):
        return exc.retryable
    return isinstance(exc, aiohttp.ClientConnectionError | TimeoutError)


async def with_retries(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """Run `call`, retrying connection errors, timeouts and retryable statuses with exponential backoff."""
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(policy.attempts),
            wait=wait_exponential(multiplier=policy.wait_initial, max=policy.wait_max),
            retry=retry_if_exception(_transient),
            reraise=True,
        ):
            with attempt:
                return await call()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TicketBackendError(f"unreachable: {type(exc).__name__}", retryable=True) from exc
    raise AssertionError("unreachable: tenacity either returns or reraises")


async def read_json(response: aiohttp.ClientResponse, what: str) -> Any:
    """The JSON body of a successful response; a `TicketBackendError` (retryable for 5xx and 429) otherwise."""
    if response.status >= 400:
        retryable = response.status >= 500 or response.status == 429
        raise TicketBackendError(f"{what}: HTTP {response.status}", status=response.status, retryable=retryable)
    if response.status == 204 or response.content_length == 0:
        return {}
    try:
        return await response.json(content_type=None)
    except ValueError as exc:
        raise TicketBackendError(f"{what}: response is not JSON", status=response.status) from exc


def plain_body(request: TicketRequest) -> str:
    """The ticket's description: the summary, where the conversation lives, and the transcript."""
    lines = [request.summary.strip(), "", f"Requester: {request.requester}", f"Channel: {request.channel.value}"]
    if request.conversation_link:
        lines.append(f"Conversation: {request.conversation_link}")
    if request.transcript:
        lines += ["", "Transcript:"]
        lines += [f"[{t.at:%Y-%m-%d %H:%M} UTC] {t.role.value}: {t.text}" for t in request.transcript]
    return "\n".join(lines).strip()


def looks_like_email(value: str) -> bool:
    local, _, domain = value.partition("@")
    return bool(local) and "." in domain and " " not in value
