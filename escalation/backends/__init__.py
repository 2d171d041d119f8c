"""Ticket backends behind the `bot.ports.TicketBackend` port, chosen by `TICKET_BACKEND`."""

from __future__ import annotations

from bot.errors import ConfigError
from bot.ports import Clock, TicketBackend
from bot.settings import Settings, secret
from bot.store.db import Database
from escalation.backends.base import DEFAULT_RETRY, RetryPolicy, TicketBackendError
from escalation.backends.internal import InternalBackend
from escalation.backends.jira import JiraBackend
from escalation.backends.webhook import WebhookBackend
from escalation.backends.zendesk import ZendeskBackend

__all__ = [
    "InternalBackend",
    "JiraBackend",
    "RetryPolicy",
    "TicketBackendError",
    "WebhookBackend",
    "ZendeskBackend",
    "build_backend",
]


def _require(settings: Settings, *names: str) -> None:
    missing = [n.upper() for n in names if not getattr(settings, n)]
    if missing:
        raise ConfigError(f"TICKET_BACKEND={settings.ticket_backend} needs {', '.join(missing)}")


def build_backend(settings: Settings, db: Database, clock: Clock, retry: RetryPolicy = DEFAULT_RETRY) -> TicketBackend:
    """The configured backend, or a `ConfigError` naming the missing variables."""
    kind = settings.ticket_backend
    if kind == "webhook":
        _require(settings, "ticket_webhook_url", "ticket_webhook_secret")
        return WebhookBackend(settings.ticket_webhook_url, secret(settings.ticket_webhook_secret), retry=retry)
    if kind == "zendesk":
        _require(settings, "zendesk_url", "zendesk_email", "zendesk_api_token")
        return ZendeskBackend(
            settings.zendesk_url, settings.zendesk_email, secret(settings.zendesk_api_token), retry=retry
        )
    if kind == "jira":
        _require(settings, "jira_url", "jira_email", "jira_api_token", "jira_project")
        return JiraBackend(
            settings.jira_url,
            settings.jira_email,
            secret(settings.jira_api_token),
            settings.jira_project,
            settings.jira_issue_type,
            retry=retry,
        )
    return InternalBackend(db, clock)
