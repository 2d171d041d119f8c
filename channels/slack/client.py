"""The Slack Web API client, with slack_sdk's own retry handlers, and the mapping of its errors onto ours.

429 answers are retried after their `Retry-After`, 500/503 with exponential backoff, dropped connections once;
what still fails becomes a `DeliveryError` (the outbox retries later) or, for errors that no retry can fix
(`channel_not_found`, `is_archived`, ...), a `PermanentDeliveryError` (the outbox dead-letters it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import BackoffRetryIntervalCalculator
from slack_sdk.web.async_client import AsyncWebClient

from bot.errors import DeliveryError, PermanentDeliveryError
from channels.slack.config import SlackConfig

# Errors that mean "this message can never be delivered as it is"; everything else is worth another try.
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_blocks_format",
        "invalid_arguments",
        "restricted_action",
        "restricted_action_read_only_channel",
        "restricted_action_thread_only_channel",
        "restricted_action_non_threadable_channel",
        "cannot_reply_to_message",
        "user_not_in_channel",
        "ekm_access_denied",
    }
)

TRANSPORT_ERRORS = (SlackClientError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard the client itself retries before an error reaches the outbox."""

    rate_limited: int = 3  # 429: waits Retry-After each time
    server_errors: int = 2  # 500/503
    backoff_factor: float = 0.5  # seconds; doubles per retry
    timeout_seconds: int = 30


def build_web_client(config: SlackConfig, retry: RetryPolicy = RetryPolicy()) -> AsyncWebClient:
    """An AsyncWebClient for the bot token at the configured API URL with rate-limit and server-error retries."""
    base_url = config.api_url if config.api_url.endswith("/") else config.api_url + "/"
    handlers: list[AsyncRetryHandler] = [
        AsyncConnectionErrorRetryHandler(max_retry_count=1),
        AsyncRateLimitErrorRetryHandler(max_retry_count=retry.rate_limited),
        AsyncServerErrorRetryHandler(
            max_retry_count=retry.server_errors,
            interval_calculator=BackoffRetryIntervalCalculator(backoff_factor=retry.backoff_factor),
        ),
    ]
    return AsyncWebClient(
        token=config.bot_token or None,
        base_url=base_url,
        timeout=retry.timeout_seconds,
        retry_handlers=handlers,
    )


def error_code(exc: BaseException) -> str:
    """Slack's error code (`channel_not_found`), or the exception type for transport errors. Never a token."""
    if isinstance(exc, SlackApiError):
        code = exc.response.get("error") if exc.response is not None else None
        return str(code or f"http_{getattr(exc.response, 'status_code', 'error')}")
    return type(exc).__name__


def delivery_error(exc: BaseException) -> DeliveryError:
    """The outbox error for a failed Web API call: permanent when no retry can help."""
    code = error_code(exc)
    if isinstance(exc, SlackApiError) and code in PERMANENT_ERRORS:
        return PermanentDeliveryError(f"slack: {code}")
    return DeliveryError(f"slack: {code}")
