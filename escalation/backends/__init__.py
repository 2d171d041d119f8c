"""Ticket backends behind the `bot.ports.TicketBackend` port, chosen by `TICKET_BACKEND`."""

from __future__ import annotations

from bot.errors import ConfigError
from bot.ports import Clock, TicketBackend
from bot.store.db import Database
from escalation.backends.base import DEFAULT_RETRY, RetryPolicy, TicketBackendError
from escalation.backends.internal import InternalBackend
from escalation.backends.jira import JiraBackend
from escalation.backends.webhook import WebhookBackend
from escalation.backends.zendesk import ZendeskBackend
from escalation.config import TicketBackendConfig

__all__ = [
    "InternalBackend",
    "JiraBackend",
    "RetryPolicy",
    "TicketBackendError",
    "WebhookBackend",
    "ZendeskBackend",
    "build_backend",
]


def _require(config: TicketBackendConfig, **values: str) -> None:
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ConfigError(f"TICKET_BACKEND={config.kind} needs {', '.join(missing)}")


def build_backend(
    config: TicketBackendConfig, db: Database, clock: Clock, retry: RetryPolicy = DEFAULT_RETRY
) -> TicketBackend:
    """The configured backend, or a `ConfigError` naming the missing variables."""
    c = config
    if c.kind == "webhook":
        _require(c, TICKET_WEBHOOK_URL=c.webhook_url, TICKET_WEBHOOK_SECRET=c.webhook_secret)
        return WebhookBackend(c.webhook_url, c.webhook_secret, retry=retry)
    if c.kind == "zendesk":
        _require(c, ZENDESK_URL=c.zendesk_url, ZENDESK_EMAIL=c.zendesk_email, ZENDESK_API_TOKEN=c.zendesk_api_token)
        return ZendeskBackend(c.zendesk_url, c.zendesk_email, c.zendesk_api_token, retry=retry)
    if c.kind == "jira":
        _require(
            c,
            JIRA_URL=c.jira_url,
            JIRA_EMAIL=c.jira_email,
            JIRA_API_TOKEN=c.jira_api_token,
            JIRA_PROJECT=c.jira_project,
        )
        return JiraBackend(c.jira_url, c.jira_email, c.jira_api_token, c.jira_project, c.jira_issue_type, retry=retry)
    return InternalBackend(db, clock)
