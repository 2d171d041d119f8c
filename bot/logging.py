"""JSON logs with structlog, and a redactor so no secret value ever reaches a log line.

Every log call binds the message id where there is one. The redactor masks values of keys that look secret
(token, password, secret, api_key, authorization) and any occurrence of a configured secret's value.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

from bot.pii import mask_pii

_SECRET_KEY = re.compile(r"(token|password|secret|api_key|apikey|authorization|signature)", re.IGNORECASE)
MASK = "***"
WIRE_LOGGERS = ("imapclient", "slack_sdk", "slack_bolt", "aiosqlite")


class Redactor:
    """A structlog processor that masks secrets by key name and by value."""

    def __init__(self, secret_values: Iterable[str] = ()) -> None:
        self._values = sorted({v for v in secret_values if v and len(v) >= 6}, key=len, reverse=True)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._values:
                if secret in value:
                    value = value.replace(secret, MASK)
        return value

    def __call__(self, _logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key in list(event):
            if _SECRET_KEY.search(key) and key not in ("event",):
                event[key] = MASK
            else:
                event[key] = self._clean(event[key])
        return event


# Identifiers we log on purpose: they look like addresses (a Message-ID is <local@domain>) but name no person.
_NOT_PII = frozenset(
    {"timestamp", "level", "logger", "event", "message_id", "event_id", "in_reply_to", "reference", "run_key"}
)


def mask_pii_values(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: card numbers, email addresses and phone numbers in logged values are masked."""
    for key, value in event.items():
        if key not in _NOT_PII and isinstance(value, str):
            event[key] = mask_pii(value)
        elif key not in _NOT_PII and isinstance(value, list | tuple):
            event[key] = [mask_pii(v) if isinstance(v, str) else v for v in value]
    return event


def configure_logging(level: str = "INFO", fmt: str = "json", secret_values: Iterable[str] = ()) -> None:
    """Route structlog and the standard library's logging through one JSON (or console) renderer."""
    redactor = Redactor(secret_values)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())  # no colour codes in files and pipes
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.add_logger_name,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redactor,
            mask_pii_values,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiohttp.access", "httpx", "httpcore", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # These log whole payloads at DEBUG (IMAP FETCH literals: raw customer mail; Slack request bodies; SQLite
    # statements with their parameters), so even LOG_LEVEL=DEBUG keeps them at WARNING: our own debug lines
    # name message ids and never carry bodies. (SQLAlchemy keeps its own WARN default: INFO would echo SQL.)
    for wire in WIRE_LOGGERS:
        logging.getLogger(wire).setLevel(max(logging.WARNING, logging.getLevelName(level)))
